"""dispositions.csv and contact_attempts.csv: written by the bundle export without free
text, imported THROUGH the disposition service (consent, schedule and reminders follow
the date as in the admin, history by the importer with her reason), refused whole with
file, line, column and value; round-tripped byte for byte."""

import csv
import datetime
from pathlib import Path

import pytest
from django.utils import timezone

from registry.models import (
    ContactAttempt,
    Disposition,
    DispositionStatus,
    Patient,
    ReminderLog,
    Visit,
    VisitStatus,
)
from registry.services import reminders
from registry.services.audit import system_user
from registry.services.bundles import CONTACT_ATTEMPTS, DISPOSITIONS, PATIENTS, bundle_export
from registry.services.disposition import (
    contact_attempt_record,
    disposition_record,
    follow_up_ends_on,
)
from registry.services.imports import bundle_import
from tests.commands.test_export_registry import empty_the_registry, files
from tests.factories import make_implant, make_patient
from tests.mailserver import smtp_server_fixture  # noqa: F401 (the smtp_server fixture)

D = datetime.date
DEATH = {"death_cause": "cancer", "death_device_relatedness": "not_related",
         "death_procedure_relatedness": "possible"}


def record(patient, status, on, actor, note="", **fields):
    return disposition_record(disposition=Disposition(patient=patient, status=status, date=on,
                                                      note=note, **fields),
                              actor=actor, reason=f"{status} (source registry)")


def attempt(patient, on, actor, outcome="no_answer", method="phone", note=""):
    return contact_attempt_record(attempt=ContactAttempt(patient=patient, date=on, method=method,
                                                         outcome=outcome, note=note), actor=actor)


@pytest.fixture
def courses(site_a, site_b, nurse):
    """Five patients with a course each: deceased, withdrawn, lost then found then moved to
    BBB, transferred out, follow-up completed; two attempts on the same day (one row each)."""
    made = {}
    for name in ("deceased", "withdrawn", "lost", "moved_out", "completed"):
        patient = make_patient(site_a, actor=nurse)
        make_implant(patient, actor=nurse)
        made[name] = patient
    record(made["deceased"], "deceased", D(2021, 5, 10), nurse, note="GP letter, hospice", **DEATH)
    record(made["withdrawn"], "withdrawn", D(2020, 9, 1), nurse, note="moved in with her daughter",
           withdrawal_level="no_data", withdrawal_reason="lack_of_efficacy")
    lost = made["lost"]
    attempt(lost, D(2020, 6, 1), nurse, note="number unobtainable")
    attempt(lost, D(2020, 6, 8), nurse, method="letter")
    attempt(lost, D(2020, 6, 8), nurse, method="letter")
    record(lost, "lost_to_follow_up", D(2020, 6, 20), nurse)
    attempt(lost, D(2020, 8, 1), nurse, outcome="reached")
    record(lost, "active", D(2020, 8, 1), nurse, note="called back")
    record(lost, "transferred", D(2020, 8, 1), nurse, transferred_to=site_b)
    record(made["moved_out"], "transferred", D(2021, 1, 4), nurse)
    record(made["completed"], "completed", D(2022, 3, 1), nurse)
    return made


def test_export_import_export_keeps_every_course_without_free_text(courses, data_manager,
                                                                   tmp_path):
    counts = bundle_export(target=tmp_path / "first", actor=data_manager)
    assert (counts["dispositions"], counts["contact_attempts"]) == (7, 4)
    text = (tmp_path / "first" / "dispositions.csv").read_text()
    for free in ("hospice", "daughter", "called back"):
        assert free not in text
    assert "unobtainable" not in (tmp_path / "first" / "contact_attempts.csv").read_text()
    rows = list(csv.DictReader(text.splitlines()))
    assert [r["status"] for r in rows if r["registry_id"] == courses["lost"].registry_id] == [
        "lost_to_follow_up", "active", "transferred"]  # same day: in the order recorded
    death = next(r for r in rows if r["status"] == "deceased")
    assert (death["date"], death["death_cause"], death["death_procedure_relatedness"],
            death["note"]) == ("2021-05-10", "cancer", "possible", "")
    assert next(r for r in rows if r["status"] == "transferred" and r["transferred_to"]
                )["transferred_to"] == "BBB"

    same = bundle_import(source=tmp_path / "first", actor=data_manager, reason="same registry")
    assert same.ok, same.errors  # the withheld notes are not a difference
    assert (same.count("dispositions", "unchanged"), same.count("contact_attempts", "unchanged"),
            same.count("dispositions", "new")) == (7, 4, 0)

    before = sorted(Disposition.objects.values_list(
        "patient__registry_id", "status", "date", "withdrawal_level", "withdrawal_reason",
        "transferred_to__code", "death_cause", "death_device_relatedness",
        "death_procedure_relatedness"))
    empty_the_registry()
    report = bundle_import(source=tmp_path / "first", actor=data_manager, reason="round trip")
    assert report.ok, report.errors
    assert report.count("dispositions") == 7 and report.count("contact_attempts") == 4
    assert sorted(Disposition.objects.values_list(
        "patient__registry_id", "status", "date", "withdrawal_level", "withdrawal_reason",
        "transferred_to__code", "death_cause", "death_device_relatedness",
        "death_procedure_relatedness")) == before
    # Recorded through the service, as the admin records: history by the importer, the
    # consent follows the withdrawal, the schedule stops from each date.
    for row in Disposition.history.all():
        assert (row.history_user, row.history_change_reason) == (data_manager, "round trip")
    withdrawn = Patient.objects.get(registry_id=courses["withdrawn"].registry_id)
    assert (withdrawn.consent_status, withdrawn.withdrawal_date) == ("withdrawn", D(2020, 9, 1))
    deceased = Patient.objects.get(registry_id=courses["deceased"].registry_id)
    assert follow_up_ends_on(deceased) == D(2021, 5, 10)
    lost = Patient.objects.get(registry_id=courses["lost"].registry_id)
    assert follow_up_ends_on(lost) is None  # found again, then followed at BBB
    bundle_export(target=tmp_path / "second", actor=data_manager)
    assert files(tmp_path / "second") == files(tmp_path / "first")


def write(folder: Path, spec, rows):
    folder.mkdir(exist_ok=True)
    with open(folder / spec.name, "w", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows([spec.column_names, *rows])


def test_an_imported_death_stops_the_schedule_and_the_reminders(site_a, data_manager, tmp_path,
                                                                 smtp_server):
    # Implanted 100 days ago: m3's window is open today. One patient died 20 days ago.
    today = timezone.localdate()
    implanted, died = today - datetime.timedelta(days=100), today - datetime.timedelta(days=20)
    source = tmp_path / "source"
    source.mkdir()
    patients, implants = [], []
    for n in (1, 2):
        patients.append([f"AAA-{n:04d}", "AAA", "F", "1960", "traumatic", "pn",
                         (implanted - datetime.timedelta(days=60)).isoformat()])
        implants.append([f"AAA-{n:04d}-I1", f"AAA-{n:04d}", "SCS",
                         (implanted - datetime.timedelta(days=20)).isoformat(),
                         (implanted - datetime.timedelta(days=10)).isoformat(), "yes",
                         implanted.isoformat(), "", "", ""])
    with open(source / "patients.csv", "w", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(
            [["registry_id", "site", "sex", "birth_year", "etiology", "diagnosis", "consent_date"],
             *patients])
    with open(source / "implants.csv", "w", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(
            [["implant_ref", "registry_id", "therapy", "trial_start", "trial_end", "trial_success",
              "implant_date", "explant_date", "explant_reason", "explant_reason_code"], *implants])
    write(source, DISPOSITIONS, [["AAA-0001", "deceased", died.isoformat(), "", "", "",
                                  "cardiovascular", "not_related", "not_related", ""]])
    report = bundle_import(source=source, actor=data_manager, reason="archive of the clinic")
    assert report.ok, report.errors
    dead, alive = Patient.objects.get(registry_id="AAA-0001"), Patient.objects.get(
        registry_id="AAA-0002")
    assert not Visit.objects.filter(patient=dead, status=VisitStatus.SCHEDULED,
                                    window_end__gte=died).exists()
    assert Visit.objects.filter(patient=dead, status=VisitStatus.NOT_APPLICABLE,
                                window_start__gt=died).exists()
    m3 = Visit.objects.get(patient=dead, timepoint="m3")
    assert m3.status == VisitStatus.NOT_APPLICABLE
    assert m3.history.first().history_user == data_manager
    assert Visit.objects.get(patient=alive, timepoint="m3").status == VisitStatus.SCHEDULED
    result = reminders.site_digest_send(site=site_a, actor=system_user(),
                                        day=today + datetime.timedelta(days=10))
    assert result.sent
    assert "AAA-0002" in smtp_server.text() and "AAA-0001" not in smtp_server.text()
    assert not ReminderLog.objects.filter(visit__patient=dead).exists()
    assert ReminderLog.objects.filter(visit__patient=alive).exists()


def test_bad_dispositions_are_named_by_file_line_column_and_value_and_nothing_is_saved(
        courses, data_manager, tmp_path, settings):
    settings.REGISTRY_LOST_TO_FOLLOW_UP_ATTEMPTS = 2
    folder = tmp_path / "bad"
    patient = make_patient(courses["completed"].site)
    bundle_export(target=folder, actor=data_manager)  # the registry as it is, then bad rows
    rid, dead = patient.registry_id, courses["deceased"].registry_id
    write(folder, CONTACT_ATTEMPTS, [[rid, "2020-05-01", "phone", "no_answer", ""],
                                     [rid, "2020-05-02", "fax", "no_answer", ""]])
    write(folder, DISPOSITIONS, [
        [rid, "withdrawn", "2020-04-01", "", "", "", "", "", "", ""],           # 2: no level
        [rid, "lost_to_follow_up", "2020-05-03", "", "", "", "", "", "", ""],   # 3: 1 attempt
        [rid, "gone", "2020-05-04", "", "", "", "", "", "", ""],                # 4: bad code
        [rid, "transferred", "2020-05-05", "", "", "ZZZ", "", "", "", ""],      # 5: no site
        [dead, "active", "2021-06-01", "", "", "", "", "", "", ""],             # 6: after death
        [rid, "deceased", "2020-05-06", "", "", "", "cancer", "", "possible", ""],  # 7
        ["NOPE-0001", "active", "2020-05-06", "", "", "", "", "", "", ""],      # 8
        [rid, "active", "2031-01-01", "", "", "", "", "", "", ""],              # 9: future
    ])
    held = (Disposition.objects.count(), ContactAttempt.objects.count())
    history = Disposition.history.count()
    report = bundle_import(source=folder, actor=data_manager, reason="bad")
    assert not report.ok
    assert {e.file for e in report.errors} == {"contact_attempts.csv", "dispositions.csv"}
    said = {(e.file, e.line, e.column, e.value): e.message for e in report.errors}
    assert said[("contact_attempts.csv", 3, "method", "fax")]
    assert "what the withdrawal covers" in said[("dispositions.csv", 2, "withdrawal_level", "")]
    assert "needs 2 recorded contact attempts" in said[("dispositions.csv", 3, "status",
                                                        "lost_to_follow_up")]
    assert said[("dispositions.csv", 4, "status", "gone")]
    assert "unknown site" in said[("dispositions.csv", 5, "transferred_to", "ZZZ")]
    assert "died on 2021-05-10" in said[("dispositions.csv", 6, "status", "active")]
    assert "device" in said[("dispositions.csv", 7, "death_device_relatedness", "")]
    assert "unknown registry_id" in said[("dispositions.csv", 8, "registry_id", "NOPE-0001")]
    assert "future" in said[("dispositions.csv", 9, "date", "2031-01-01")]
    assert (Disposition.objects.count(), ContactAttempt.objects.count()) == held
    assert Disposition.history.count() == history
    assert Patient.objects.get(pk=patient.pk).consent_status == "consented"


def test_lost_to_follow_up_counts_the_attempts_of_the_bundle_and_of_the_registry(
        site_a, nurse, data_manager, tmp_path, settings):
    settings.REGISTRY_LOST_TO_FOLLOW_UP_ATTEMPTS = 3
    patient = make_patient(site_a, actor=nurse)
    implant = make_implant(patient, actor=nurse)
    attempt(patient, D(2020, 6, 1), nurse)
    folder = tmp_path / "lost"
    bundle_export(target=folder, actor=data_manager)  # the registry as it is, then new rows
    write(folder, CONTACT_ATTEMPTS, [[patient.registry_id, "2020-06-05", "email", "no_answer", ""],
                                     [patient.registry_id, "2020-06-09", "gp", "wrong_details",
                                      "new address unknown"]])
    write(folder, DISPOSITIONS, [[patient.registry_id, "lost_to_follow_up", "2020-06-10", "", "",
                                  "", "", "", "", ""]])
    dry = bundle_import(source=folder, actor=data_manager, reason="tracing", dry_run=True)
    assert dry.ok, dry.errors
    assert not Disposition.objects.exists()
    report = bundle_import(source=folder, actor=data_manager, reason="tracing")
    assert report.ok, report.errors
    row = Disposition.objects.get(patient=patient)
    assert (row.status, row.date) == (DispositionStatus.LOST, D(2020, 6, 10))
    assert ContactAttempt.objects.get(method="gp").note == "new address unknown"
    assert Visit.objects.get(implant=implant, timepoint="m6").status == VisitStatus.NOT_APPLICABLE
    stopped = Visit.objects.get(implant=implant, timepoint="m6").history.first()
    assert stopped.history_user == data_manager and "tracing" in stopped.history_change_reason


def test_a_refusal_of_the_service_while_writing_rolls_the_whole_import_back(
        site_a, nurse, data_manager, tmp_path, monkeypatch):
    # Should the bundle check ever miss a rule, the service still refuses, by line and
    # column, and nothing of the bundle stays (not the new patient, not the attempts).
    from registry.services.imports import checks

    monkeypatch.setattr(checks._Course, "errors", lambda self, disposition: {})
    patient = make_patient(site_a, actor=nurse)
    folder = tmp_path / "slipped"
    bundle_export(target=folder, actor=data_manager)
    width = len(PATIENTS.column_names)  # the first seven columns, then empty cells
    with open(folder / "patients.csv", "a", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerow(
            ["AAA-0099", "AAA", "F", "1950", "traumatic", "pn", "2020-01-01"] + [""] * (width - 7))
    write(folder, CONTACT_ATTEMPTS, [[patient.registry_id, "2020-06-05", "email", "no_answer", ""]])
    write(folder, DISPOSITIONS, [
        ["AAA-0099", "active", "2020-02-01", "", "", "", "", "", "", ""],
        [patient.registry_id, "lost_to_follow_up", "2020-06-10", "", "", "", "", "", "", ""]])
    report = bundle_import(source=folder, actor=data_manager, reason="slipped")
    assert not report.ok
    (error,) = report.errors
    assert (error.file, error.line, error.column, error.value) == (
        "dispositions.csv", 3, "status", "lost_to_follow_up")
    assert "needs 3 recorded contact attempts" in error.message
    assert not Patient.objects.filter(registry_id="AAA-0099").exists()
    assert not ContactAttempt.objects.exists() and not Disposition.objects.exists()

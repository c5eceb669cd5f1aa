"""bundle_import: the whole bundle validated first, every error reported, one transaction,
history with user and reason, re-import a no-op, folder and zip."""

import csv
import datetime
import io
import shutil
import statistics
import zipfile
from pathlib import Path

import pytest
from django.core.exceptions import PermissionDenied
from django.db.models import F

from registry.models import (
    AdverseEvent,
    Implant,
    ImportRun,
    PainScore,
    Patient,
    Site,
    Visit,
    VisitStatus,
)
from registry.services.audit import record_save, system_user
from registry.services.bundles import FILES, code_labels_markdown, format_reference_markdown
from registry.services.imports import (
    REFERENCE_BUNDLE,
    bundle_import,
    reference_cohort_load,
)
from tests.factories import make_implant, make_patient

DOC = Path(__file__).resolve().parents[2] / "docs" / "import-format.md"
CLINICAL = [Site, Patient, Implant, Visit, PainScore, AdverseEvent]


def snapshot():
    """Rows and history rows of every clinical model."""
    return {m.__name__: (m.objects.count(), m.history.count()) for m in CLINICAL}


def bundle_copy(tmp_path, name="bundle") -> Path:
    target = tmp_path / name
    shutil.copytree(REFERENCE_BUNDLE, target)
    return target


def read(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        return list(csv.reader(fh))


def write(path: Path, rows: list[list[str]]):
    with open(path, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)


def edit(folder: Path, name: str, line: int, **changes):
    """Change cells of a file's row by CSV line number (1 = header)."""
    rows = read(folder / name)
    header = rows[0]
    for column, value in changes.items():
        rows[line - 1][header.index(column)] = value
    write(folder / name, rows)


def append(folder: Path, name: str, **values) -> int:
    rows = read(folder / name)
    rows.append([values.get(h, "") for h in rows[0]])
    write(folder / name, rows)
    return len(rows)


def line_of(folder: Path, name: str, **match) -> int:
    rows = read(folder / name)
    header = rows[0]
    for number, row in enumerate(rows[1:], start=2):
        if all(row[header.index(k)] == v for k, v in match.items()):
            return number
    raise LookupError(match)


@pytest.fixture
def actor(data_manager):
    return data_manager


def test_the_reference_bundle_gives_the_papers_raw_figures(db, actor):
    report = bundle_import(source=REFERENCE_BUNDLE, actor=actor, reason="Reference cohort")
    assert report.ok, report.errors
    patients = Patient.objects.filter(site__code="RAD")
    assert patients.count() == 15
    assert patients.filter(sex="M").count() == 8
    assert set(Implant.objects.filter(patient__in=patients).values_list("therapy", flat=True)) \
        == {"SCS"}
    baseline = dict(Visit.objects.filter(patient__in=patients, timepoint="baseline")
                    .values_list("patient__registry_id", "nrs"))
    last = {}
    for registry_id, nrs, _done in (Visit.objects.filter(
            patient__in=patients, status=VisitStatus.COMPLETED, implant__isnull=False,
            nrs__isnull=False).order_by("date_done")
            .values_list("patient__registry_id", "nrs", "date_done")):
        last[registry_id] = nrs
    ids = sorted(baseline)
    before, after = [baseline[i] for i in ids], [last[i] for i in ids]
    assert round(statistics.mean(before), 1) == 8.1
    assert round(statistics.mean(after), 1) == 3.0
    assert sum((b - a) / b >= 0.5 for b, a in zip(before, after, strict=True)) == 10
    assert list(AdverseEvent.objects.filter(patient__in=patients)
                .values_list("category", flat=True)) == ["infection_superficial"]
    # Retrospective: the baselines are years before consent, and that is allowed.
    assert Visit.objects.filter(patient__in=patients, timepoint="baseline",
                                date_done__lt=F("patient__consent_date")).count() == 15


def test_a_good_bundle_imports_with_history_by_user_and_reason(db, actor):
    report = bundle_import(source=REFERENCE_BUNDLE, actor=actor, reason="Chart review 2024")
    assert report.ok
    assert report.count("patients") == 15 and report.count("visits") == 30
    for model, name in ((Site, "sites"), (Patient, "patients"), (Implant, "implants"),
                        (AdverseEvent, "adverse_events")):
        history = model.history.filter(history_user=actor)
        assert history.count() == report.count(name) > 0
        assert set(history.values_list("history_change_reason", flat=True)) == {
            "Chart review 2024"}
        assert not model.objects.exclude(pk__in=model.history.values("id")).exists()
    imported = Visit.history.filter(history_change_reason="Chart review 2024")
    assert imported.count() == 30
    assert set(imported.values_list("history_user_id", flat=True)) == {actor.pk}
    assert set(Visit.objects.filter(pk__in=imported.values("id")).values_list(
        "status", flat=True)) == {VisitStatus.COMPLETED}
    run = ImportRun.objects.get()
    assert (run.user, run.succeeded, run.dry_run, run.counts["patients"]["new"]) == (
        actor, True, False, 15)


def test_the_next_registry_id_continues_after_the_imported_ones(db, actor):
    from registry.services.patients import registry_id_next

    bundle_import(source=REFERENCE_BUNDLE, actor=actor, reason="import")
    assert registry_id_next(site=Site.objects.get(code="RAD")) == "RAD-0016"


def test_imported_implants_get_a_schedule_and_completed_timepoints_stay_completed(db, actor):
    report = bundle_import(source=REFERENCE_BUNDLE, actor=actor, reason="import")
    implant = Implant.objects.get(ref="RAD-0015-I1")
    visits = dict(implant.visits.values_list("timepoint", "status"))
    assert visits["m24"] == VisitStatus.COMPLETED
    assert len(visits) > 1 and report.scheduled


def test_reimporting_the_same_bundle_adds_nothing(db, actor, tmp_path):
    bundle = bundle_copy(tmp_path)
    append(bundle, "pain_scores.csv", registry_id="RAD-0001", implant_ref="RAD-0001-I1",
           timepoint="m216", visit_date="2023-01-03", pain_site="back", recall="avg_7d",
           score="2") if (bundle / "pain_scores.csv").exists() else write(
        bundle / "pain_scores.csv",
        [["registry_id", "implant_ref", "timepoint", "visit_date", "pain_site", "recall", "score"],
         ["RAD-0001", "RAD-0001-I1", "m216", "2023-01-03", "back", "avg_7d", "2"]])
    assert bundle_import(source=bundle, actor=actor, reason="first").ok
    before = snapshot()
    again = bundle_import(source=bundle, actor=actor, reason="second")
    assert again.ok, again.errors
    assert snapshot() == before
    assert again.count("patients", "unchanged") == 15
    assert again.count("visits", "unchanged") == 30
    assert again.count("pain_scores", "unchanged") == 1
    assert sum(c["new"] for c in again.counts.values()) == 0


def test_a_conflicting_reimport_is_an_error_naming_the_registry_value(db, actor, tmp_path):
    assert bundle_import(source=REFERENCE_BUNDLE, actor=actor, reason="first").ok
    bundle = bundle_copy(tmp_path)
    line = line_of(bundle, "visits.csv", registry_id="RAD-0003", timepoint="m192")
    edit(bundle, "visits.csv", line, nrs="6")
    before = snapshot()
    report = bundle_import(source=bundle, actor=actor, reason="second")
    assert [(e.file, e.line, e.column, e.value) for e in report.errors] == [
        ("visits.csv", line, "nrs", "6")]
    assert "'4'" in report.errors[0].message
    assert snapshot() == before


def test_a_bundle_with_ten_kinds_of_error_reports_every_one_and_writes_nothing(db, actor,
                                                                              tmp_path):
    b = bundle_copy(tmp_path)
    expected = {}  # (file, line, column, value) -> part of the message

    def bad(name, line, column, expect, **changes):
        edit(b, name, line, **changes)
        expected[(name, line, column, changes[column])] = expect

    # RAD-0002 is faulty (a code), and so are its implant and one of its visits, each
    # for a reason of its own: all three are reported.
    bad("patients.csv", 3, "sex", "expected one of M, F, X, U", sex="male")
    bad("implants.csv", 3, "trial_end", "before the trial start", trial_end="2006-05-01")
    bad_date = line_of(b, "visits.csv", registry_id="RAD-0002", timepoint="m204")
    bad("visits.csv", bad_date, "visit_date", "expected a date as YYYY-MM-DD",
        visit_date="10/06/2023")
    # RAD-0004's enrolment is unknown; its visits years before consent are not reported
    # again as "before consent" (that would only repeat the enrolment error).
    bad("patients.csv", 5, "enrolment", "expected one of", enrolment="prospektive")
    # A patient of an unknown site is still checked.
    unknown_site = append(b, "patients.csv", registry_id="RAD-0016", site="XYZ", sex="F",
                          birth_year="1850", etiology="traumatic", diagnosis="pn",
                          consent_date="2023-01-01", enrolment="retrospective")
    expected[("patients.csv", unknown_site, "site", "XYZ")] = "unknown site"
    expected[("patients.csv", unknown_site, "birth_year", "1850")] = "between 1900 and"
    # An implant of an unknown patient is still checked.
    bad("implants.csv", 7, "registry_id", "unknown registry_id", registry_id="RAD-0999",
        explant_reason="infection")
    bad("implants.csv", 7, "explant_date", "before the implant date", explant_date="2010-01-01")
    bad("implants.csv", 10, "explant_reason", "Give the reason for the explant",
        explant_date="2020-01-01", explant_reason="")
    # RAD-0005 made prospective: its baseline (2009) is before consent (2023).
    edit(b, "patients.csv", 6, enrolment="prospective")
    expected[("visits.csv", 10, "visit_date", "2009-07-18")] = "before the patient's consent"
    # ... and so is its trial (2009), which only a retrospective patient may have.
    expected[("implants.csv", 6, "trial_start", "2009-08-17")] = "before the patient's consent"
    nrs = line_of(b, "visits.csv", registry_id="RAD-0001", timepoint="m216")
    bad("visits.csv", nrs, "nrs", "expected a whole number from 0 to 10", nrs="11")
    sat = line_of(b, "visits.csv", registry_id="RAD-0003", timepoint="m192")
    bad("visits.csv", sat, "satisfaction", "expected a whole number from 1 to 5",
        satisfaction="6")
    unknown_ref = line_of(b, "visits.csv", registry_id="RAD-0007", timepoint="m144")
    bad("visits.csv", unknown_ref, "implant_ref", "unknown implant_ref",
        implant_ref="RAD-0007-I9")
    second = append(b, "visits.csv", registry_id="RAD-0010", timepoint="baseline",
                    visit_date="2014-08-29", nrs="8")
    expected[("visits.csv", second, "timepoint", "baseline")] = \
        "a second baseline for RAD-0010 (first on line 20)"
    bad("adverse_events.csv", 2, "resolved_on", "before the onset", resolved_on="2011-07-01")
    before = snapshot()

    report = bundle_import(source=b, actor=actor, reason="should fail")

    found = {(e.file, e.line, e.column, e.value): e.message for e in report.errors}
    assert set(found) == set(expected), "\n".join(map(str, report.errors))
    assert len(report.errors) == len(expected) == 16
    for where, expect in expected.items():
        assert expect in found[where], (where, found[where])
    assert snapshot() == before
    run = ImportRun.objects.get()
    assert run.succeeded is False
    assert len(run.errors) == 16


def test_visits_before_consent_are_refused_unless_the_patient_is_retrospective(db, actor,
                                                                                tmp_path):
    b = bundle_copy(tmp_path)
    edit(b, "patients.csv", 2, enrolment="prospective")
    report = bundle_import(source=b, actor=actor, reason="x", dry_run=True)
    errors = [(e.file, e.column) for e in report.errors]
    # RAD-0001: trial 2004, baseline 2004 and m216 on 2023-01-03, consent 2022-12-20.
    assert errors == [("implants.csv", "trial_start"), ("visits.csv", "visit_date")]
    assert all("consent" in e.message for e in report.errors)


def test_it_reports_unknown_and_missing_columns_and_unknown_files(db, actor, tmp_path):
    b = bundle_copy(tmp_path)
    rows = read(b / "implants.csv")
    rows[0][rows[0].index("therapy")] = "modality"
    write(b / "implants.csv", rows)
    (b / "notes.csv").write_text("a,b\n1,2\n")
    report = bundle_import(source=b, actor=actor, reason="x")
    found = {(e.file, e.line, e.column) for e in report.errors}
    assert found == {("implants.csv", 1, "modality"), ("implants.csv", 1, "therapy"),
                     ("notes.csv", None, "")}
    assert Patient.objects.count() == 0


def test_a_zip_with_a_folder_inside_and_a_bom_imports_like_the_folder(db, actor, tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(REFERENCE_BUNDLE.glob("*.csv")):
            archive.writestr(f"cohort/{path.name}", b"\xef\xbb\xbf" + path.read_bytes())
        archive.writestr("__MACOSX/cohort/._patients.csv", b"\x00\x01junk")
    zip_path = tmp_path / "cohort.zip"
    zip_path.write_bytes(buffer.getvalue())
    report = bundle_import(source=zip_path, actor=actor, reason="zip")
    assert report.ok, report.errors
    assert Patient.objects.count() == 15 and Visit.objects.filter(
        status=VisitStatus.COMPLETED).count() == 30
    buffer.seek(0)
    again = bundle_import(source=buffer, actor=actor, reason="zip object", dry_run=True)
    assert again.ok and again.count("patients", "unchanged") == 15


def test_a_file_that_is_not_utf8_is_reported(db, actor, tmp_path):
    b = bundle_copy(tmp_path)
    (b / "sites.csv").write_bytes(
        "code,name,country,timezone\nRAD,Radboud é,NL,Europe/Amsterdam\n".encode("latin-1"))
    report = bundle_import(source=b, actor=actor, reason="x")
    assert [(e.file, e.line) for e in report.errors][:1] == [("sites.csv", 2)]
    assert "UTF-8" in report.errors[0].message


def test_a_dry_run_writes_nothing_and_counts_what_would_be_imported(db, actor):
    before = snapshot()
    report = bundle_import(source=REFERENCE_BUNDLE, actor=actor, reason="x", dry_run=True)
    assert report.ok and report.count("patients") == 15 and report.count("adverse_events") == 1
    assert snapshot() == before
    assert ImportRun.objects.get().dry_run is True


def test_a_scheduled_visit_is_filled_in_from_the_bundle(db, actor, site_a, tmp_path):
    patient = make_patient(site_a, birth_year=1960)
    implant = make_implant(patient)
    scheduled = Visit.objects.get(implant=implant, timepoint="m3")
    b = late_chart_entry(tmp_path, patient, implant)
    report = bundle_import(source=b, actor=actor, reason="late chart entry")
    assert report.ok, report.errors
    assert report.count("visits", "updated") == 1 and report.count("patients", "unchanged") == 1
    before = scheduled.updated_at
    scheduled.refresh_from_db()
    assert (scheduled.status, scheduled.nrs, scheduled.date_done) == (
        VisitStatus.COMPLETED, 3, datetime.date(2020, 6, 2))
    assert scheduled.history.first().history_change_reason == "late chart entry"
    # The API's updated_since finds it.
    assert scheduled.updated_at > before
    assert scheduled.history.first().updated_at == scheduled.updated_at


def test_a_scheduled_visit_a_nurse_changed_after_validation_refuses_the_import(
        db, actor, nurse, site_a, tmp_path):
    patient = make_patient(site_a, birth_year=1960)
    implant = make_implant(patient)
    m3 = Visit.objects.get(implant=implant, timepoint="m3")
    b = late_chart_entry(tmp_path, patient, implant)

    def nurse_saves_meanwhile(stage, done, total):
        if stage == "validating visits.csv" and done == total:
            visit = Visit.objects.get(pk=m3.pk)
            visit.notes = "called: comes next week"
            record_save(visit, actor=nurse, reason="")
            before.update(snapshot())  # the nurse's save is kept, nothing else

    before = {}
    report = bundle_import(source=b, actor=actor, reason="late chart entry",
                           progress=nurse_saves_meanwhile)
    assert [(e.file, e.line, e.column, e.value) for e in report.errors] == [
        ("visits.csv", 2, "timepoint", "m3")]
    assert "changed in the registry" in report.errors[0].message
    m3.refresh_from_db()
    assert (m3.status, m3.notes, m3.version) == (VisitStatus.SCHEDULED,
                                                 "called: comes next week", 2)
    assert snapshot() == before
    assert ImportRun.objects.get().succeeded is False


def late_chart_entry(tmp_path, patient, implant) -> Path:
    """A bundle filling in the patient's scheduled m3 visit."""
    b = tmp_path / "more"
    b.mkdir()
    write(b / "patients.csv", [
        ["registry_id", "site", "sex", "birth_year", "etiology", "diagnosis", "consent_date"],
        [patient.registry_id, "AAA", "M", "1960", "traumatic", "pn", "2020-01-01"]])
    write(b / "visits.csv", [
        ["registry_id", "implant_ref", "timepoint", "visit_date", "nrs", "satisfaction", "pgic"],
        [patient.registry_id, implant.ref, "m3", "2020-06-02", "3", "4", "2"]])
    return b


def test_it_refuses_actors_who_are_not_data_managers(db, nurse, investigator):
    for user in (nurse, investigator, None):
        with pytest.raises(PermissionDenied):
            bundle_import(source=REFERENCE_BUNDLE, actor=user, reason="x")
    assert Patient.objects.count() == 0


def test_the_reference_cohort_loads_once(db):
    first = reference_cohort_load(actor=system_user())
    assert "15 new" in first
    assert "already loaded" in reference_cohort_load(actor=system_user())
    assert Patient.objects.filter(site__code="RAD").count() == 15


def test_the_format_document_is_generated_from_the_choices(db):
    text = DOC.read_text(encoding="utf-8")
    assert format_reference_markdown() in text, (
        "docs/import-format.md is out of date: paste the output of "
        "`manage.py export_registry --format-reference` between its markers")
    assert code_labels_markdown() in text
    for spec in FILES:
        for column in spec.columns:
            assert f"`{column.name}`" in text
            for code in column.codes:
                assert f"`{code}`" in text, (spec.name, column.name, code)


def test_semicolon_and_tab_separated_files_are_read_and_said(db, actor, tmp_path):
    # Dutch Excel saves "CSV" with semicolons (issue 19: 44 "unknown column" errors).
    b = bundle_copy(tmp_path)
    for name, separator in (("patients.csv", ";"), ("visits.csv", "\t")):
        rows = read(b / name)
        with open(b / name, "w", newline="", encoding="utf-8") as fh:
            csv.writer(fh, delimiter=separator, lineterminator="\r\n").writerows(rows)
    report = bundle_import(source=b, actor=actor, reason="Excel NL", dry_run=True)
    assert report.ok, report.errors[:3]
    assert report.count("patients") == 15 and report.count("visits") == 30
    assert report.notes == [
        "patients.csv: columns separated by semicolons (;), not commas; read as such.",
        "visits.csv: columns separated by tabs, not commas; read as such."]
    assert ImportRun.objects.get().counts["notes"] == report.notes


def test_the_separator_is_the_one_the_header_holds_most():
    from registry.services.imports.reading import separator_of

    assert separator_of("code,name,country") == ","
    assert separator_of("code;name;country") == ";"
    assert separator_of("code\tname\tcountry") == "\t"
    assert separator_of("code") == ","

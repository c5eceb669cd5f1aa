"""What the questionnaire links add to the data: the bundle's epro_consent_date, the
visits dataset's entered_by, and the digest's count of links."""

import csv
import datetime
import io

from registry.models import EnteredBy, EproLink, Patient, Visit
from registry.services import bundles, epro, reminders
from registry.services.audit import system_user
from registry.services.datasets import VISITS, typed_rows
from registry.services.dates import site_today
from registry.services.imports import bundle_import
from tests.epro.conftest import answers, open_m3
from tests.factories import make_visit
from tests.mailserver import smtp_server_fixture  # noqa: F401 (the smtp_server fixture)


def test_the_bundle_writes_and_reads_the_consent_to_links(site_a, tmp_path):
    patient, _ = open_m3(site_a)
    no_consent, _ = open_m3(site_a, consent=False)
    bundles.bundle_export(target=tmp_path / "out", actor=system_user())
    rows = {r["registry_id"]: r for r in csv.DictReader(io.StringIO(
        (tmp_path / "out" / "patients.csv").read_text(encoding="utf-8")))}
    assert rows[patient.registry_id]["epro_consent_date"] == patient.epro_consent_date.isoformat()
    assert rows[no_consent.registry_id]["epro_consent_date"] == ""

    text = (tmp_path / "out" / "patients.csv").read_text(encoding="utf-8")
    changed = text.replace(patient.registry_id, "AAA-0100").replace(no_consent.registry_id, "AAA-0101")
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "patients.csv").write_text(changed, encoding="utf-8")
    report = bundle_import(source=folder, actor=system_user(), reason="test")
    assert not report.errors, report.errors
    assert Patient.objects.get(registry_id="AAA-0100").epro_consent_date == patient.epro_consent_date
    assert Patient.objects.get(registry_id="AAA-0101").epro_consent_date is None


def test_the_consent_to_links_is_recorded_with_history(site_a, nurse):
    from registry.services.patients import patient_save

    patient, _ = open_m3(site_a, consent=False)
    patient.epro_consent_date, patient.epro_channel = site_today(site_a.timezone), "both"
    patient_save(patient=patient, actor=nurse, reason="consented to questionnaire links in clinic")
    last = Patient.objects.get(pk=patient.pk).history.first()
    assert last.history_user == nurse and last.epro_consent_date == patient.epro_consent_date
    assert last.epro_channel == "both"
    assert last.history_change_reason == "consented to questionnaire links in clinic"


def test_a_bad_consent_date_in_the_bundle_is_named(site_a, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "patients.csv").write_text(
        "registry_id,site,sex,birth_year,etiology,diagnosis,consent_date,epro_consent_date\n"
        "AAA-0200,AAA,F,1960,traumatic,pn,2020-01-01,2020-13-40\n", encoding="utf-8")
    report = bundle_import(source=folder, actor=system_user(), reason="test", dry_run=True)
    assert any("epro_consent_date" in str(e) and "2020-13-40" in str(e) for e in report.errors)


def test_every_visit_row_says_who_entered_it(site_a, nurse, client):
    patient, visit = open_m3(site_a)
    make_visit(patient, actor=nurse, date_done=patient.consent_date)  # the nurse's baseline
    link, _ = epro.link_create(visit=visit, channel=EproLink.Channel.PRINTED)
    epro.answers_submit(link=link, data=answers(visit, nrs=2, satisfaction=4, pgic=2))
    visits = Visit.objects.filter(patient=patient)
    rows = {r["timepoint"]: r["entered_by"] for r in typed_rows(VISITS, visits)}
    assert rows["baseline"] == EnteredBy.NURSE and rows["m3"] == EnteredBy.PATIENT
    assert rows["m6"] is None  # scheduled: nobody entered anything yet
    assert "entered_by" in [c.name for c in VISITS.columns]


def test_imported_visits_are_marked_as_imported(db):
    from registry.services.imports import REFERENCE_BUNDLE  # the seed paper's cohort

    bundle_import(source=REFERENCE_BUNDLE, actor=system_user(), reason="test")
    done = Visit.objects.filter(status="completed")
    assert done.exists() and set(done.values_list("entered_by", flat=True)) == {EnteredBy.IMPORT}


def test_the_digest_counts_the_links(site_a, nurse, smtp_server):
    _, visit = open_m3(site_a)
    epro.link_create(visit=visit, channel=EproLink.Channel.PRINTED, actor=nurse)
    _, answered = open_m3(site_a)
    link, _ = epro.link_create(visit=answered, channel=EproLink.Channel.PRINTED, actor=nurse)
    epro.answers_submit(link=link, data=answers(answered, nrs=2, satisfaction=4, pgic=2))
    summary = epro.digest_summary(site=site_a, day=site_today(site_a.timezone))
    assert (summary["out"], summary["submitted"]) == (1, 1)
    reminders.site_digest_send(site=site_a, actor=system_user(),
                               day=site_today(site_a.timezone) - datetime.timedelta(days=0))
    text = smtp_server.text()
    assert "Patient questionnaires (links): 1 sent, not opened" in text and "1 submitted" in text

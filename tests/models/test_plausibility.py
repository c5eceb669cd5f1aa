"""Plausibility in every channel: each rule refused in the admin and in a bundle import
with the same message, naming the field and the value (the rules are the models'
clean(), see registry/models/plausibility.py); "future" is the site's own day; soft
warnings ask the admin user to confirm and are reported by the import."""

import csv
import datetime
from unittest import mock

import pytest
from django.urls import reverse
from django.utils import timezone

from registry.models import AdverseEvent, Implant, Revision, Visit
from registry.models.plausibility import today_at
from registry.services.imports import bundle_import
from tests.admin.conftest import post_form
from tests.conftest import PASSWORD
from tests.factories import make_event, make_implant, make_patient, make_visit

FUTURE = (timezone.now() + datetime.timedelta(days=40)).date().isoformat()

PATIENT_COLUMNS = ["registry_id", "site", "sex", "birth_year", "etiology", "diagnosis",
                   "consent_date", "enrolment"]
IMPLANT_COLUMNS = ["implant_ref", "registry_id", "therapy", "trial_start", "trial_end",
                   "trial_success", "implant_date", "explant_date", "explant_reason"]
EVENT_COLUMNS = ["registry_id", "implant_ref", "onset_date", "category", "serious",
                 "serious_criterion", "severity", "device_relatedness", "procedure_relatedness",
                 "action", "outcome", "resolved_on"]
VISIT_COLUMNS = ["registry_id", "implant_ref", "timepoint", "visit_date", "nrs", "satisfaction",
                 "pgic"]

# (field, values) for a new implant of patient_a (consent 2020-01-01, prospective; it
# already has an SCS implant from 2020-03-01, not explanted).
IMPLANT_CASES = {
    "implant date in the future": ("implant_date", "is in the future",
                                   {"therapy": "DRG", "implant_date": FUTURE}),
    "trial start in the future": ("trial_start", "is in the future",
                                  {"therapy": "DRG", "trial_start": FUTURE}),
    "implant inside its trial": ("implant_date", "before the end of the trial",
                                 {"therapy": "DRG", "trial_start": "2021-01-01",
                                  "trial_end": "2021-01-20", "implant_date": "2021-01-10"}),
    "trial before consent": ("trial_start", "before the patient's consent",
                             {"therapy": "DRG", "trial_start": "2019-06-01",
                              "trial_end": "2019-06-10", "implant_date": "2020-02-01"}),
    "overlapping implant of the same therapy": ("implant_date", "overlaps",
                                                {"therapy": "SCS", "implant_date": "2021-01-01"}),
    "explant in the future": ("explant_date", "is in the future",
                              {"therapy": "DRG", "implant_date": "2021-01-01",
                               "explant_date": FUTURE, "explant_reason": "infection"}),
}
EVENT_CASES = {
    "onset in the future": ("onset_date", "is in the future",
                            {"onset_date": FUTURE, "outcome": "ongoing"}),
    "resolution in the future": ("resolved_on", "is in the future",
                                 {"onset_date": "2021-01-01", "outcome": "resolved",
                                  "resolved_on": FUTURE}),
    "serious without a criterion": ("serious_criterion", "no seriousness criterion",
                                    {"onset_date": "2021-01-01", "serious": "yes"}),
    "onset before consent": ("onset_date", "before the patient's consent",
                             {"onset_date": "2019-06-01"}),
}
VISIT_CASES = {
    "visit in the future": ("date_done", "is in the future",
                            {"timepoint": "unscheduled", "date_done": FUTURE}),
}


@pytest.fixture
def dm(client, data_manager):
    client.login(username=data_manager.username, password=PASSWORD)
    return client


def write_bundle(folder, patient, name=None, columns=None, row=None):
    folder.mkdir(exist_ok=True)
    files = {"patients.csv": (PATIENT_COLUMNS, {
        "registry_id": patient.registry_id, "site": patient.site.code, "sex": patient.sex,
        "birth_year": patient.birth_year, "etiology": patient.etiology,
        "diagnosis": patient.diagnosis, "consent_date": patient.consent_date.isoformat(),
        "enrolment": patient.enrolment})}
    if name:
        files[name] = (columns, row)
    for file, (cols, values) in files.items():
        with open(folder / file, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=cols)
            writer.writeheader()
            writer.writerow({c: values.get(c, "") for c in cols})
    return folder


def import_errors(folder, data_manager):
    report = bundle_import(source=folder, actor=data_manager, reason="plausibility", dry_run=True)
    return {e.column: e.message for e in report.errors}


def admin_errors(response):
    assert response.status_code == 200, "the admin saved it"
    return response.context["adminform"].form.errors


@pytest.mark.parametrize("case", IMPLANT_CASES)
def test_implant_rules_are_refused_alike_in_the_admin_and_the_import(case, dm, data_manager,
                                                                     patient_a, implant_a, tmp_path):
    field, expect, values = IMPLANT_CASES[case]
    admin = {"patient": patient_a.pk, "trial_start": "", "trial_end": "", "implant_date": "",
             **values}
    response = post_form(dm, reverse("admin:registry_implant_add"), **admin)
    admin_message = admin_errors(response)[field][0]
    assert expect in admin_message and values.get(field, "") in admin_message

    row = {"implant_ref": f"{patient_a.registry_id}-I7", "registry_id": patient_a.registry_id,
           "trial_success": "yes", **values}
    errors = import_errors(write_bundle(tmp_path / "b", patient_a, "implants.csv",
                                        IMPLANT_COLUMNS, row), data_manager)
    assert errors == {field: admin_message}
    assert Implant.objects.count() == 1


@pytest.mark.parametrize("case", EVENT_CASES)
def test_adverse_event_rules_are_refused_alike_in_the_admin_and_the_import(case, dm, data_manager,
                                                                           patient_a, implant_a,
                                                                           tmp_path):
    field, expect, values = EVENT_CASES[case]
    base = {"category": "infection_superficial", "severity": "mild",
            "device_relatedness": "not_related", "procedure_relatedness": "probable",
            "action": "antibiotics", "outcome": "ongoing"}
    admin = {"patient": patient_a.pk, "implant": implant_a.pk, **base, **values}
    if admin.get("serious") == "yes":
        admin["serious"] = "on"
    response = post_form(dm, reverse("admin:registry_adverseevent_add"), **admin)
    admin_message = admin_errors(response)[field][0]
    assert expect in admin_message

    row = {"registry_id": patient_a.registry_id, "implant_ref": implant_a.ref, "serious": "no",
           **base, **values}
    errors = import_errors(write_bundle(tmp_path / "b", patient_a, "adverse_events.csv",
                                        EVENT_COLUMNS, row), data_manager)
    assert errors == {field: admin_message}
    assert not AdverseEvent.objects.exists()


@pytest.mark.parametrize("case", VISIT_CASES)
def test_visit_rules_are_refused_alike_in_the_admin_and_the_import(case, dm, data_manager,
                                                                   patient_a, implant_a, tmp_path):
    field, expect, values = VISIT_CASES[case]
    response = post_form(dm, reverse("admin:registry_visit_add"), patient=patient_a.pk,
                         implant=implant_a.pk, status="completed", nrs="5", **values)
    admin_message = admin_errors(response)[field][0]
    assert expect in admin_message and values[field] in admin_message

    row = {"registry_id": patient_a.registry_id, "implant_ref": implant_a.ref, "nrs": "5",
           "timepoint": values["timepoint"], "visit_date": values["date_done"]}
    errors = import_errors(write_bundle(tmp_path / "b", patient_a, "visits.csv", VISIT_COLUMNS,
                                        row), data_manager)
    assert errors == {"visit_date": admin_message}
    assert not Visit.objects.filter(timepoint="unscheduled").exists()


@pytest.mark.parametrize("date,expect,explant", [
    ("2021-01-01", "after the explant (2020-06-01)", datetime.date(2020, 6, 1)),
    (FUTURE, "is in the future", None)])
def test_a_revision_is_within_the_implants_life_and_not_in_the_future(date, expect, explant, dm,
                                                                      patient_a, nurse):
    implant = make_implant(patient_a, actor=nurse, explant_date=explant,
                           explant_reason="infection" if explant else "")
    response = post_form(dm, reverse("admin:registry_revision_add"), implant=implant.pk,
                         date=date, reason="lead migration")
    message = admin_errors(response)["date"][0]
    assert expect in message and date in message
    assert not Revision.objects.exists()


def test_an_explant_before_a_revision_is_refused(dm, patient_a, implant_a, nurse):
    from registry.services.audit import record_save
    record_save(Revision(implant=implant_a, date=datetime.date(2021, 5, 1), reason="lead"),
                actor=nurse, reason="test")
    response = post_form(dm, reverse("admin:registry_implant_change", args=[implant_a.pk]),
                         explant_date="2021-01-01", explant_reason="infection")
    message = admin_errors(response)["explant_date"][0]
    assert message.startswith("Explant date 2021-01-01 is before the revision of 2021-05-01")


def test_two_implants_of_one_therapy_in_one_bundle_overlap(data_manager, patient_a, tmp_path):
    folder = write_bundle(tmp_path / "b", patient_a)
    rows = [{"implant_ref": f"{patient_a.registry_id}-I{n}", "registry_id": patient_a.registry_id,
             "therapy": "PNS", "trial_success": "yes", "implant_date": day}
            for n, day in ((1, "2021-01-01"), (2, "2022-01-01"))]
    with open(folder / "implants.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=IMPLANT_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    report = bundle_import(source=folder, actor=data_manager, reason="x", dry_run=True)
    assert [(e.line, e.column) for e in report.errors] == [(3, "implant_date")]
    assert "overlaps" in report.errors[0].message


def test_a_replacement_on_the_explant_day_does_not_overlap(patient_a, nurse):
    old = make_implant(patient_a, actor=nurse, explant_date=datetime.date(2021, 1, 1),
                       explant_reason="battery")
    new = Implant(patient=patient_a, ref="X-I2", therapy=old.therapy,
                  implant_date=datetime.date(2021, 1, 1))
    new.clean()


def test_a_retrospective_patient_may_have_events_and_trials_before_consent(site_a, nurse):
    patient = make_patient(site_a, actor=nurse, enrolment="retrospective",
                           consent_date=datetime.date(2023, 1, 1))
    implant = make_implant(patient, actor=nurse)  # trial 2020
    make_event(patient, implant, actor=nurse)  # onset 2020


def test_the_future_is_judged_on_the_sites_own_day(site_a, site_b, nurse, nurse_b):
    # 23:30 UTC on 30 June: 1 July in Amsterdam, still 30 June in New York.
    now = datetime.datetime(2026, 6, 30, 23, 30, tzinfo=datetime.UTC)
    assert today_at(site_a) == today_at(site_a)  # a real day without the patch
    with mock.patch("registry.models.plausibility.timezone.now", return_value=now):
        assert today_at(site_a) == datetime.date(2026, 7, 1)
        assert today_at(site_b) == datetime.date(2026, 6, 30)
        for site, actor, refused in ((site_a, nurse, False), (site_b, nurse_b, True)):
            patient = make_patient(site, actor=actor)
            visit = Visit(patient=patient, timepoint="unscheduled", status="completed",
                          date_done=datetime.date(2026, 7, 1), nrs=4)
            errors = {}
            try:
                visit.clean()
            except Exception as exc:  # noqa: BLE001
                errors = exc.message_dict
            assert ("date_done" in errors) is refused, site.code
        assert errors["date_done"] == [
            f"Visit date 2026-07-01 is in the future (today is 2026-06-30 at {site_b.code})."]


# -- soft warnings

def test_an_unusual_value_asks_to_confirm_then_saves(dm, patient_a, implant_a):
    url = reverse("admin:registry_implant_add")
    values = {"patient": patient_a.pk, "therapy": "DRG", "trial_start": "2021-01-01",
              "trial_end": "2021-04-01", "implant_date": "2021-04-10"}
    response = post_form(dm, url, **values)
    message = admin_errors(response)["trial_end"][0]
    assert "a trial of 90 days (from 2021-01-01) is unusually long" in message
    assert "tick 'Save unusual values anyway'" in message
    assert Implant.objects.count() == 1

    response = post_form(dm, url, confirm_unusual="on", **values)
    assert response.status_code == 302
    assert Implant.objects.count() == 2
    # Saved once, it is not asked again on the next edit of another field.
    implant = Implant.objects.get(therapy="DRG")
    response = post_form(dm, reverse("admin:registry_implant_change", args=[implant.pk]),
                         manufacturer="Abbott")
    assert response.status_code == 302


def test_an_unusual_value_in_an_import_is_reported_not_refused(data_manager, patient_a, implant_a,
                                                               tmp_path):
    row = {"registry_id": patient_a.registry_id, "implant_ref": implant_a.ref, "nrs": "5",
           "timepoint": "unscheduled", "visit_date": "2021-01-01"}
    folder = write_bundle(tmp_path / "b", patient_a, "visits.csv", VISIT_COLUMNS + ["opioid_mme"],
                          {**row, "opioid_mme": "450"})
    report = bundle_import(source=folder, actor=data_manager, reason="x", dry_run=True)
    assert report.ok
    assert [(w.column, w.value) for w in report.warnings] == [("opioid_mme", "450")]
    assert "unusually high" in report.warnings[0].message


def test_fixtures_and_generated_cohorts_pass_the_rules(db, data_manager):
    """The demo cohort's generator and the reference cohort satisfy every rule."""
    from registry.services.imports import reference_cohort_load
    from registry.services.synthetic import synthetic_registry

    reference_cohort_load(actor=data_manager)
    synthetic_registry(patients=120, seed=7, actor=data_manager)
    for model in (Implant, AdverseEvent, Visit):
        for obj in model.objects.select_related("patient__site"):
            obj.clean()
    assert make_visit  # the factories stay importable with the rules

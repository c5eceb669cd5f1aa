"""Every invalid value is refused, with a message naming the field (and the value)."""

import datetime

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from registry.models import AdverseEvent, Implant, PainScore, Patient, Site, Visit
from registry.services.audit import record_save, system_user
from tests.factories import make_event, make_implant, make_patient, make_site, make_visit


def refused(instance, field, *fragments):
    with pytest.raises(ValidationError) as exc:
        instance.full_clean()
    assert field in exc.value.message_dict, exc.value.message_dict
    message = " ".join(exc.value.message_dict[field])
    for fragment in fragments:
        assert fragment in message, message
    return message


@pytest.fixture
def visit(patient_a, implant_a):
    # The implant's schedule already holds the m3 visit; the nurse completes it.
    visit = Visit.objects.filter(implant=implant_a, timepoint="m3").first() or Visit(
        patient=patient_a, implant=implant_a, timepoint="m3")
    visit.status, visit.date_done, visit.nrs = "completed", datetime.date(2020, 6, 1), 4
    return visit


def test_a_valid_visit_passes(visit):
    visit.full_clean()


@pytest.mark.parametrize("value", [11, 42])
def test_it_refuses_nrs_above_ten(visit, value):
    visit.nrs = value
    refused(visit, "nrs", "10")


def test_it_refuses_satisfaction_off_the_five_point_scale(visit):
    visit.satisfaction = 6
    refused(visit, "satisfaction", "6")


def test_it_refuses_pgic_off_the_seven_point_scale(visit):
    visit.pgic = 8
    refused(visit, "pgic", "8")


def test_it_refuses_a_visit_before_consent(visit, patient_a):
    visit.date_done = patient_a.consent_date - datetime.timedelta(days=1)
    visit.timepoint = "baseline"
    visit.implant = None
    refused(visit, "date_done", "before the patient's consent", str(patient_a.consent_date))


def test_retrospective_patients_may_have_visits_before_consent(visit, patient_a):
    patient_a.enrolment = "retrospective"
    visit.patient = patient_a
    visit.timepoint, visit.implant = "baseline", None
    visit.date_done = patient_a.consent_date - datetime.timedelta(days=400)
    visit.full_clean()


def test_it_refuses_a_follow_up_before_the_implant(visit, implant_a):
    visit.date_done = implant_a.implant_date - datetime.timedelta(days=1)
    refused(visit, "date_done", "before the implant date")


def test_it_refuses_scores_on_a_visit_not_completed(visit):
    visit.status = "scheduled"
    refused(visit, "status", "nrs")


def test_it_refuses_an_unknown_timepoint(visit):
    visit.timepoint = "month3"
    refused(visit, "timepoint", "m<N>")


def test_it_refuses_a_second_baseline(patient_a):
    make_visit(patient_a)
    second = Visit(patient=patient_a, timepoint="baseline", status="completed",
                   date_done=datetime.date(2020, 1, 20), nrs=7)
    with pytest.raises(ValidationError) as exc:
        second.full_clean()
    assert exc.value.messages == ["This patient already has a baseline visit; a patient has one baseline."]
    with pytest.raises(IntegrityError), transaction.atomic():
        second.save()


def test_it_refuses_a_second_visit_at_the_same_timepoint_of_an_implant(patient_a, implant_a):
    make_visit(patient_a, implant_a, timepoint="m24",
               date_done=implant_a.implant_date + datetime.timedelta(days=730))
    again = Visit(patient=patient_a, implant=implant_a, timepoint="m24", status="completed",
                  date_done=implant_a.implant_date + datetime.timedelta(days=735), nrs=4)
    with pytest.raises(ValidationError) as exc:
        again.full_clean()
    assert "already has a visit at this timepoint" in " ".join(exc.value.messages)


def test_it_refuses_a_baseline_after_the_first_implant(patient_a, implant_a):
    baseline = Visit(patient=patient_a, timepoint="baseline", status="completed",
                     date_done=implant_a.implant_date + datetime.timedelta(days=3), nrs=7)
    refused(baseline, "date_done", "after the first implant", implant_a.ref)
    baseline.date_done = implant_a.implant_date - datetime.timedelta(days=3)
    baseline.full_clean()


def test_the_database_refuses_nrs_out_of_range_even_without_clean(patient_a):
    with pytest.raises(IntegrityError), transaction.atomic():
        Visit.objects.create(patient=patient_a, timepoint="baseline", status="completed",
                             date_done=datetime.date(2020, 1, 15), nrs=11)


def test_it_refuses_an_explant_before_the_implant(patient_a):
    implant = Implant(patient=patient_a, ref="X-1", therapy="SCS",
                      implant_date=datetime.date(2020, 3, 1),
                      explant_date=datetime.date(2020, 2, 1), explant_reason="infection")
    refused(implant, "explant_date", "2020-02-01", "2020-03-01")
    with pytest.raises(IntegrityError), transaction.atomic():
        implant.save()


def test_it_refuses_an_unknown_therapy(patient_a):
    implant = Implant(patient=patient_a, ref="X-2", therapy="TENS")
    refused(implant, "therapy", "TENS")


def test_it_refuses_a_resolution_before_the_onset(patient_a):
    event = AdverseEvent(patient=patient_a, onset_date=datetime.date(2020, 5, 1),
                         category="lead_migration", severity="mild",
                         device_relatedness="possible", procedure_relatedness="not_related",
                         outcome="resolved", resolved_on=datetime.date(2020, 4, 1))
    refused(event, "resolved_on", "2020-04-01", "2020-05-01")
    with pytest.raises(IntegrityError), transaction.atomic():
        event.save()


def test_it_refuses_an_unknown_relatedness(patient_a):
    event = make_event(patient_a)
    event.device_relatedness = "likely"
    refused(event, "device_relatedness", "likely")


def test_it_refuses_a_lower_case_site_code_and_unknown_time_zone(db):
    site = Site(code="ab", name="x", country="NL", timezone="Mars/Olympus")
    with pytest.raises(ValidationError) as exc:
        site.full_clean()
    errors = exc.value.message_dict
    assert "Mars/Olympus" in " ".join(errors["timezone"])
    site = Site(code="a", name="x", country="NL")
    refused(site, "code", "upper-case")


def test_it_refuses_a_bad_reminder_address(db):
    site = Site(code="QQQ", name="x", country="NL", reminder_emails="a@b.org; not-an-address")
    refused(site, "reminder_emails", "not-an-address")


def test_it_refuses_an_impossible_birth_year(site_a):
    patient = Patient(site=site_a, registry_id=f"{site_a.code}-0099", sex="M", birth_year=1800,
                      consent_date=datetime.date(2020, 1, 1), etiology="traumatic",
                      diagnosis="pn")
    refused(patient, "birth_year", "1800")


def test_it_refuses_a_registry_id_of_another_site(site_a):
    patient = Patient(site=site_a, registry_id="ZZZ-0001", sex="F", birth_year=1970,
                      consent_date=datetime.date(2020, 1, 1), etiology="traumatic",
                      diagnosis="pn")
    refused(patient, "registry_id", "ZZZ-0001", "AAA-")


def test_it_refuses_an_unknown_sex_code(site_a):
    patient = Patient(site=site_a, registry_id="AAA-0098", sex="Q", birth_year=1970,
                      consent_date=datetime.date(2020, 1, 1), etiology="traumatic",
                      diagnosis="pn")
    refused(patient, "sex", "Q")


def test_it_refuses_a_withdrawal_without_its_date(patient_a):
    patient_a.consent_status = "withdrawn"
    refused(patient_a, "withdrawal_date", "date of withdrawal")


def test_it_refuses_a_pain_score_above_ten(patient_a):
    visit = make_visit(patient_a)
    score = PainScore(visit=visit, pain_site="phantom_limb", recall="now", score=12)
    refused(score, "score", "10")


def test_record_save_validates_before_writing(patient_a):
    visit = Visit(patient=patient_a, timepoint="baseline", status="completed",
                  date_done=datetime.date(2020, 1, 15), nrs=11)
    with pytest.raises(ValidationError):
        record_save(visit, actor=system_user())
    assert not Visit.objects.filter(patient=patient_a).exists()


def test_an_implant_of_another_patient_is_refused_on_a_visit(site_a, patient_a):
    other = make_patient(site_a)
    implant = make_implant(other)
    visit = Visit(patient=patient_a, implant=implant, timepoint="m3", status="scheduled")
    refused(visit, "implant", implant.ref)


def test_make_site_helper_builds_valid_sites(db):
    assert make_site("XYZ").code == "XYZ"


def test_a_date_that_is_today_at_some_site_is_not_in_the_future(monkeypatch, visit, patient_a):
    """23:30 UTC on 9 March is 00:30 on the 10th in Amsterdam: a visit done, a
    consent given or an event starting 'today' there is accepted; two days
    ahead is refused everywhere."""
    from django.utils import timezone

    monkeypatch.setattr(timezone, "now", lambda: datetime.datetime(2026, 3, 9, 23, 30,
                                                                   tzinfo=datetime.UTC))
    visit.date_done = datetime.date(2026, 3, 10)
    visit.full_clean()
    visit.date_done = datetime.date(2026, 3, 11)
    refused(visit, "date_done", "in the future", "2026-03-11")
    patient_a.consent_date = datetime.date(2026, 3, 11)
    refused(patient_a, "consent_date", "in the future")
    event = AdverseEvent(patient=patient_a, onset_date=datetime.date(2026, 3, 11), category="other",
                         severity="mild", device_relatedness="not_related",
                         procedure_relatedness="not_related", action="none", outcome="ongoing")
    with pytest.raises(ValidationError) as exc:
        event.full_clean()
    assert "in the future" in " ".join(exc.value.message_dict["onset_date"])

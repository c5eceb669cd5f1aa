"""Disposition: a patient's follow-up ends in a recorded way, and schedules and
reminders stop from its date (a real SMTP server on loopback for the digests)."""

import datetime

import pytest
from django.core.exceptions import ValidationError

from registry.models import (
    ConsentStatus,
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
from registry.services.disposition import (
    contact_attempt_record,
    disposition_delete,
    disposition_record,
    follow_up_ends_on,
)
from registry.services.patients import patient_save
from tests.factories import make_implant, make_patient, make_visit
from tests.mailserver import smtp_server_fixture  # noqa: F401 (the smtp_server fixture)

D = datetime.date
DAY = D(2020, 3, 25)


def implanted(site, implant_date, actor=None):
    patient = make_patient(site, consent_date=D(2019, 6, 1), actor=actor)
    implant = make_implant(patient, actor=actor,
                           trial_start=implant_date - datetime.timedelta(days=20),
                           trial_end=implant_date - datetime.timedelta(days=10),
                           implant_date=implant_date)
    return patient, implant


def died(patient, on, actor, **kwargs):
    fields = {"death_cause": "cardiovascular", "death_device_relatedness": "not_related",
              "death_procedure_relatedness": "not_related", **kwargs}
    return disposition_record(
        disposition=Disposition(patient=patient, status=DispositionStatus.DECEASED, date=on,
                                **fields),
        actor=actor, reason="Death notified by the GP")


def attempt(patient, on, actor, outcome="no_answer", visit=None):
    return contact_attempt_record(
        attempt=ContactAttempt(patient=patient, date=on, method="phone", outcome=outcome,
                               visit=visit), actor=actor)


def visit(implant, timepoint):
    return Visit.objects.get(implant=implant, timepoint=timepoint)


@pytest.fixture
def deceased(site_a, nurse):
    # Implanted 2019-12-01: m1 (window 2019-12-24..2020-01-08) and m3 (2020-02-16..
    # 2020-03-15) overdue on DAY; m6 opens 2020-05-02. Died 2020-03-01, in m3's window.
    patient, implant = implanted(site_a, D(2019, 12, 1), actor=nurse)
    died(patient, D(2020, 3, 1), nurse)
    return patient, implant


def test_a_deceased_patient_has_no_scheduled_visit_after_death(deceased):
    patient, implant = deceased
    assert visit(implant, "m1").status == VisitStatus.SCHEDULED  # closed before the death
    for timepoint in ("m3", "m6", "m12", "m24"):
        assert visit(implant, timepoint).status == VisitStatus.NOT_APPLICABLE, timepoint
    assert not Visit.objects.filter(patient=patient, status=VisitStatus.SCHEDULED,
                                    window_end__gte=D(2020, 3, 1)).exists()
    stopped = visit(implant, "m6").history.first()
    assert stopped.history_user.username == "nurse_a"
    assert "deceased on 2020-03-01" in stopped.history_change_reason
    assert "Death notified by the GP" in stopped.history_change_reason
    assert follow_up_ends_on(patient) == D(2020, 3, 1)


def test_a_deceased_patient_gets_no_reminder(deceased, site_a, smtp_server):
    alive, _ = implanted(site_a, D(2019, 12, 1))
    result = reminders.site_digest_send(site=site_a, actor=system_user(), day=DAY)
    assert result.sent
    patient, _ = deceased
    assert patient.registry_id not in smtp_server.text()
    assert alive.registry_id in smtp_server.text()
    assert not ReminderLog.objects.filter(visit__patient=patient).exists()


def test_reminders_stop_from_the_date_even_for_a_visit_the_schedule_left(site_a, nurse,
                                                                          smtp_server):
    # Transferred out on 2020-03-20: m3's window had opened (a transfer lets it be done),
    # but no reminder goes out about a patient no longer followed here.
    patient, implant = implanted(site_a, D(2019, 12, 1), actor=nurse)
    disposition_record(disposition=Disposition(patient=patient, status="transferred",
                                               date=D(2020, 3, 20)),
                       actor=nurse, reason="Moved abroad")
    assert visit(implant, "m3").status == VisitStatus.SCHEDULED
    assert visit(implant, "m6").status == VisitStatus.NOT_APPLICABLE
    reminders.site_digest_send(site=site_a, actor=system_user(), day=DAY)
    assert not ReminderLog.objects.filter(visit__patient=patient).exists()
    assert Patient.objects.in_follow_up(on=D(2020, 3, 19)).filter(pk=patient.pk).exists()
    assert not Patient.objects.in_follow_up(on=D(2020, 3, 20)).filter(pk=patient.pk).exists()


def test_a_transfer_to_another_site_of_the_registry_does_not_end_follow_up(site_a, site_b,
                                                                           nurse):
    patient, implant = implanted(site_a, D(2019, 12, 1), actor=nurse)
    disposition_record(disposition=Disposition(patient=patient, status="transferred",
                                               date=D(2020, 3, 20), transferred_to=site_b),
                       actor=nurse, reason="Followed at BBB from now on")
    assert follow_up_ends_on(patient) is None
    assert visit(implant, "m6").status == VisitStatus.SCHEDULED
    with pytest.raises(ValidationError, match="already followed at AAA"):
        disposition_record(disposition=Disposition(patient=patient, status="transferred",
                                                   date=D(2020, 3, 21), transferred_to=site_a),
                           actor=nurse, reason="x")


def test_lost_to_follow_up_needs_the_recorded_attempts(site_a, nurse, settings):
    settings.REGISTRY_LOST_TO_FOLLOW_UP_ATTEMPTS = 3
    patient, implant = implanted(site_a, D(2019, 12, 1), actor=nurse)
    lost = Disposition(patient=patient, status=DispositionStatus.LOST, date=D(2020, 3, 20))
    with pytest.raises(ValidationError, match="needs 3 recorded contact attempts.*0 recorded"):
        disposition_record(disposition=lost, actor=nurse, reason="cannot reach")
    attempt(patient, D(2020, 1, 10), nurse, visit=visit(implant, "m1"))
    attempt(patient, D(2020, 2, 1), nurse, outcome="reached")  # reached: the count restarts
    attempt(patient, D(2020, 3, 1), nurse)
    attempt(patient, D(2020, 3, 8), nurse, outcome="wrong_details")
    with pytest.raises(ValidationError, match="2 recorded up to 2020-03-20"):
        disposition_record(disposition=lost, actor=nurse, reason="cannot reach")
    assert not Disposition.objects.exists()
    attempt(patient, D(2020, 3, 15), nurse, outcome="message_left")
    disposition_record(disposition=lost, actor=nurse, reason="three calls, no answer")
    assert follow_up_ends_on(patient) == D(2020, 3, 20)
    assert visit(implant, "m6").status == VisitStatus.NOT_APPLICABLE


def test_a_found_patient_returns_to_follow_up(site_a, nurse, settings):
    settings.REGISTRY_LOST_TO_FOLLOW_UP_ATTEMPTS = 1
    patient, implant = implanted(site_a, D(2019, 12, 1), actor=nurse)
    attempt(patient, D(2020, 3, 1), nurse)
    disposition_record(disposition=Disposition(patient=patient, status="lost_to_follow_up",
                                               date=D(2020, 3, 2)), actor=nurse, reason="lost")
    assert visit(implant, "m6").status == VisitStatus.NOT_APPLICABLE
    disposition_record(disposition=Disposition(patient=patient, status="active",
                                               date=D(2020, 3, 24)), actor=nurse,
                       reason="Called back")
    assert visit(implant, "m6").status == VisitStatus.SCHEDULED
    assert follow_up_ends_on(patient) is None
    # The course is kept: lost from 2020-03-02, active again from 2020-03-24.
    assert not Patient.objects.in_follow_up(on=D(2020, 3, 10)).filter(pk=patient.pk).exists()
    assert Patient.objects.in_follow_up(on=D(2020, 3, 24)).filter(pk=patient.pk).exists()


def test_a_withdrawal_keeps_the_consent_status_in_step(site_a, nurse):
    patient, implant = implanted(site_a, D(2019, 12, 1), actor=nurse)
    disposition_record(disposition=Disposition(patient=patient, status="withdrawn",
                                               date=D(2020, 3, 1), withdrawal_level="no_data",
                                               withdrawal_reason="lack_of_efficacy"),
                       actor=nurse, reason="Patient asked to stop")
    patient.refresh_from_db()
    assert (patient.consent_status, patient.withdrawal_date) == ("withdrawn", D(2020, 3, 1))
    assert patient.history.first().history_change_reason == "Patient asked to stop"
    assert visit(implant, "m3").status == VisitStatus.SCHEDULED  # opened before: can be done
    assert visit(implant, "m6").status == VisitStatus.NOT_APPLICABLE


def test_a_withdrawal_on_the_patient_form_is_recorded_as_a_disposition(site_a, nurse):
    patient, implant = implanted(site_a, D(2019, 12, 1), actor=nurse)
    patient.consent_status, patient.withdrawal_date = ConsentStatus.WITHDRAWN, D(2020, 3, 1)
    patient_save(patient=patient, actor=nurse, reason="withdrew by letter")
    row = Disposition.objects.get(patient=patient)
    assert (row.status, row.date, row.withdrawal_level) == ("withdrawn", D(2020, 3, 1),
                                                            "no_contact")
    assert row.history.first().history_change_reason == "withdrew by letter"
    # Undone as a correction: the disposition goes too (its deletion is in the history).
    patient.consent_status, patient.withdrawal_date = ConsentStatus.CONSENTED, None
    patient_save(patient=patient, actor=nurse, reason="entered for the wrong patient")
    assert not Disposition.objects.exists()
    assert Disposition.history.filter(history_type="-").count() == 1
    assert visit(implant, "m6").status == VisitStatus.SCHEDULED


def test_nothing_is_recorded_after_a_death_but_the_death_can_be_corrected(deceased, nurse):
    patient, implant = deceased
    with pytest.raises(ValidationError, match="died on 2020-03-01"):
        disposition_record(disposition=Disposition(patient=patient, status="active",
                                                   date=D(2020, 3, 5)), actor=nurse, reason="x")
    death = Disposition.objects.get(patient=patient)
    death.date = D(2020, 5, 20)  # the GP's letter had the wrong date
    disposition_record(disposition=death, actor=nurse, reason="date corrected")
    assert visit(implant, "m3").status == VisitStatus.SCHEDULED  # closed before the death
    assert visit(implant, "m6").status == VisitStatus.NOT_APPLICABLE
    disposition_delete(disposition=death, actor=nurse, reason="wrong patient")
    assert visit(implant, "m6").status == VisitStatus.SCHEDULED


@pytest.mark.parametrize(("fields", "field", "message"), [
    ({"status": "withdrawn"}, "withdrawal_level", "no more contact"),
    ({"status": "deceased"}, "death_cause", "cause of death"),
    ({"status": "active", "death_cause": "cancer"}, "death_cause", "Only a death"),
    ({"status": "completed", "withdrawal_level": "no_data"}, "withdrawal_level", "Only a withdrawal"),
    ({"status": "completed", "date": D(2019, 1, 1)}, "date", "before the patient's consent"),
])
def test_a_disposition_names_what_is_missing(patient_a, nurse, fields, field, message):
    row = Disposition(patient=patient_a, **{"date": D(2020, 6, 1), **fields})
    with pytest.raises(ValidationError) as caught:
        disposition_record(disposition=row, actor=nurse, reason="test")
    assert message in " ".join(caught.value.message_dict[field])
    assert not Disposition.objects.exists()


def test_a_disposition_needs_a_reason(patient_a, nurse):
    with pytest.raises(ValidationError, match="reason"):
        disposition_record(disposition=Disposition(patient=patient_a, status="completed",
                                                   date=D(2020, 6, 1)), actor=nurse, reason=" ")


def test_a_missed_visit_carries_its_reason_and_attempts(site_a, nurse):
    patient, implant = implanted(site_a, D(2019, 12, 1), actor=nurse)
    m1 = visit(implant, "m1")
    attempt(patient, D(2020, 1, 5), nurse, visit=m1)
    attempt(patient, D(2020, 1, 7), nurse, visit=m1)
    m1 = make_visit(patient, implant, actor=nurse, timepoint="m1", status="missed",
                    date_done=None, nrs=None, visit_missing="unreachable")
    assert (m1.visit_missing, m1.contact_attempts.count()) == ("unreachable", 2)
    with pytest.raises(ValidationError, match="is for missed or not applicable visits"):
        make_visit(patient, implant, actor=nurse, timepoint="m3", status="scheduled",
                   date_done=None, nrs=None, visit_missing="declined")


def test_the_in_follow_up_filter_is_one_query(site_a, nurse, django_assert_num_queries):
    for _ in range(3):
        make_patient(site_a)
    with django_assert_num_queries(1):
        assert len(list(Patient.objects.in_follow_up(on=DAY))) == 3


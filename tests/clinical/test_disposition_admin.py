"""Recording a disposition in the admin: through the service, messages at the field."""

import datetime

from django.urls import reverse

from registry.models import ContactAttempt, Disposition, Visit, VisitStatus
from tests.admin.conftest import post_form  # noqa: F401
from tests.conftest import PASSWORD
from tests.factories import make_implant

ADD = reverse("admin:registry_disposition_add")


def _login(client, user):
    client.login(username=user.username, password=PASSWORD)
    return client


def test_lost_without_attempts_is_refused_at_the_field(client, nurse, patient_a):
    _login(client, nurse)
    response = post_form(client, ADD, patient=patient_a.pk, status="lost_to_follow_up",
                         date="2020-06-01", change_reason="no answer")
    assert response.status_code == 200
    assert "needs 3 recorded contact attempts" in response.content.decode()
    assert not Disposition.objects.exists()


def test_a_death_entered_by_a_nurse_stops_the_schedule(client, nurse, patient_a):
    implant = make_implant(patient_a, actor=nurse)
    _login(client, nurse)
    response = post_form(client, ADD, patient=patient_a.pk, status="deceased", date="2020-05-01",
                         death_cause="unknown", death_device_relatedness="not_related",
                         death_procedure_relatedness="not_related", change_reason="GP letter")
    assert response.status_code == 302, response.content.decode()[:3000]
    row = Disposition.objects.get()
    assert row.history.first().history_user == nurse
    assert Visit.objects.get(implant=implant, timepoint="m3").status == VisitStatus.NOT_APPLICABLE


def test_a_disposition_without_a_reason_is_refused(client, nurse, patient_a):
    _login(client, nurse)
    response = post_form(client, ADD, patient=patient_a.pk, status="completed", date="2020-06-01")
    assert response.status_code == 200
    assert "Give the reason for this disposition" in response.content.decode()


def test_a_nurse_cannot_record_for_another_sites_patient(client, nurse, patient_b):
    _login(client, nurse)
    response = post_form(client, ADD, patient=patient_b.pk, status="completed", date="2020-06-01",
                         change_reason="x")
    assert response.status_code == 200
    assert "not at one of your sites" in response.content.decode()


def test_contact_attempts_are_entered_in_the_admin(client, nurse, patient_a):
    _login(client, nurse)
    response = post_form(client, reverse("admin:registry_contactattempt_add"),
                         patient=patient_a.pk, date=str(datetime.date(2020, 6, 1)), method="phone",
                         outcome="no_answer")
    assert response.status_code == 302
    assert ContactAttempt.objects.get().history.first().history_user == nurse

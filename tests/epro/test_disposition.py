"""A disposition that ends follow-up stops questionnaire links at once: no invitation, no
reminder, and a link already out refuses (a real SMTP server on loopback)."""

import datetime

import pytest

from registry.models import ContactAttempt, Disposition, DispositionStatus, EproLink, Patient, Visit
from registry.services import epro
from registry.services.dates import site_today
from registry.services.disposition import contact_attempt_record, disposition_record
from tests.epro.conftest import open_m3
from tests.epro.test_invitations import link_in, run
from tests.factories import make_site
from tests.mailserver import smtp_server_fixture  # noqa: F401 (the smtp_server fixture)

CLOSED = "This link can no longer be used"

ENDINGS = {
    "deceased": {"status": DispositionStatus.DECEASED, "death_cause": "cardiovascular",
                 "death_device_relatedness": "not_related",
                 "death_procedure_relatedness": "not_related"},
    "withdrawn": {"status": DispositionStatus.WITHDRAWN, "withdrawal_level": "no_contact"},
    "lost": {"status": DispositionStatus.LOST},
    "transferred_out": {"status": DispositionStatus.TRANSFERRED},
    "completed": {"status": DispositionStatus.COMPLETED},
}


def end_follow_up(patient, ending, actor, settings):
    patient = Patient.objects.select_related("site").get(pk=patient.pk)
    today = site_today(patient.site.timezone)
    if ending == "lost":
        settings.REGISTRY_LOST_TO_FOLLOW_UP_ATTEMPTS = 1
        contact_attempt_record(attempt=ContactAttempt(patient=patient, date=today, method="phone",
                                                      outcome="no_answer"), actor=actor)
    disposition_record(disposition=Disposition(patient=patient, date=today, **ENDINGS[ending]),
                       actor=actor, reason=f"test: {ending}")
    return patient


@pytest.mark.parametrize("ending", list(ENDINGS))
def test_an_ending_disposition_stops_the_invitation(ending, site_a, nurse, smtp_server, settings):
    patient, visit = open_m3(site_a)
    end_follow_up(patient, ending, nurse, settings)
    assert run(site_a).sent == [] and smtp_server.messages == []
    assert epro.contact_refusal(Patient.objects.get(pk=patient.pk)) is not None
    if Visit.objects.get(pk=visit.pk).status == "scheduled":  # the window had opened: still doable
        with pytest.raises(Exception, match="withdrawn|follow-up ended"):
            epro.link_create(visit=visit, channel=EproLink.Channel.PRINTED, actor=nurse)


@pytest.mark.parametrize("ending", list(ENDINGS))
def test_an_ending_disposition_stops_the_reminders_and_the_link_out_refuses(
        ending, site_a, nurse, smtp_server, settings, client):
    settings.REGISTRY_EPRO_REMINDER_DAYS = [3, 7]
    patient, _visit = open_m3(site_a)
    assert len(run(site_a).sent) == 1
    path = "/" + link_in(smtp_server.text()).split("/", 3)[3]
    assert client.get(path).status_code == 200
    end_follow_up(patient, ending, nurse, settings)
    assert [run(site_a, day).sent for day in range(1, 12)] == [[]] * 11
    assert len(smtp_server.messages) == 1
    page = client.get(path)
    assert page.status_code == 404 and CLOSED in page.content.decode()
    assert epro.link_status(EproLink.objects.select_related("visit__patient__site").get()) == "closed"


def test_a_transfer_to_another_site_of_the_registry_does_not_stop_them(site_a, nurse, smtp_server,
                                                                       settings):
    patient, _ = open_m3(site_a)
    other = make_site("TRX")
    patient = Patient.objects.get(pk=patient.pk)
    disposition_record(disposition=Disposition(patient=patient, date=site_today(site_a.timezone),
                                               status=DispositionStatus.TRANSFERRED,
                                               transferred_to=other),
                       actor=nurse, reason="moved to TRX")
    assert epro.may_contact_row(Patient.objects.get(pk=patient.pk))
    assert len(run(site_a).sent) == 1


def test_the_row_rule_and_the_query_rule_agree_on_dispositions(site_a, nurse, settings):
    cases = {}
    for ending in ENDINGS:
        cases[ending] = end_follow_up(open_m3(site_a)[0], ending, nurse, settings)
    cases["active"] = open_m3(site_a)[0]
    today = site_today(site_a.timezone)
    by_query = set(Patient.objects.filter(epro.may_contact(on=today)).values_list("pk", flat=True))
    by_row = {p.pk for p in cases.values() if epro.may_contact_row(Patient.objects.get(pk=p.pk), on=today)}
    assert by_row == by_query == {cases["active"].pk}
    # The day before, only the withdrawal (the consent status, undated here) keeps her out.
    yesterday = today - datetime.timedelta(days=1)
    expected = {p.pk for name, p in cases.items() if name != "withdrawn"}
    assert set(Patient.objects.filter(epro.may_contact(on=yesterday)).values_list("pk", flat=True)) \
        == expected == {p.pk for p in cases.values()
                        if epro.may_contact_row(Patient.objects.get(pk=p.pk), on=yesterday)}

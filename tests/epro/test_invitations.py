"""Questionnaire e-mails to patients on a real SMTP server (aiosmtpd on loopback): one
invitation per window, at most the configured reminders, nothing without consent or after
submission, withdrawal or the nurse's entry; failures retried, never duplicated."""

import datetime
import re
import threading

import pytest
from django.db import close_old_connections, connection
from django.utils import timezone

from registry.models import ConsentStatus, EproLink, Patient, ReminderLog, Visit, VisitStatus
from registry.services import epro
from registry.services.audit import record_save
from registry.services.dates import site_today
from registry.services.patients import patient_save
from tests.conftest import needs_postgres
from tests.epro.conftest import answers, open_m3
from tests.factories import make_site
from tests.mailserver import (
    restore_reference_data,
    smtp_server_fixture,  # noqa: F401 (the smtp_server fixture)
)

Kind = ReminderLog.Kind


def run(site, days_later=0):
    """The job as it runs `days_later` days from now, at the site's noon."""
    today = site_today(site.timezone) + datetime.timedelta(days=days_later)
    now = datetime.datetime.combine(today, datetime.time(12), tzinfo=site.tz)
    return epro.invitations_send(site=site, day=today, now=now)


def link_in(message_text: str) -> str:
    return re.search(r"http\S+/q/[A-Za-z0-9_-]{43}/", message_text).group(0)


def test_the_window_opening_sends_one_invitation_with_a_working_link(site_a, smtp_server, client):
    patient, visit = open_m3(site_a)
    result = run(site_a)
    assert result.sent == [(visit.pk, Kind.EPRO_INVITATION)]
    assert smtp_server.to() == ["patient@example.org"]
    text = smtp_server.text()
    assert patient.registry_id not in text and "Maria Jansen" not in text
    path = "/" + link_in(text).split("/", 3)[3]
    assert client.get(path).status_code == 200
    log = ReminderLog.objects.get()
    assert (log.status, log.recipients, log.attempts) == ("sent", "patient", 1)
    assert EproLink.objects.get().channel == EproLink.Channel.EMAIL


def test_no_invitation_without_consent_an_address_or_the_e_mail_channel(site_a, smtp_server):
    open_m3(site_a, consent=False)
    open_m3(site_a, email="")
    open_m3(site_a, epro_channel="in_clinic")
    assert run(site_a).sent == []
    assert smtp_server.messages == [] and ReminderLog.objects.count() == 0


def test_repeated_runs_send_one_invitation_and_at_most_the_configured_reminders(site_a, smtp_server,
                                                                                settings):
    settings.REGISTRY_EPRO_REMINDER_DAYS = [3, 7]
    _, visit = open_m3(site_a)
    sent = []
    for day in range(0, 12):  # every day while the window is open, three runs a day
        for _ in range(3):
            sent += run(site_a, day).sent
    assert [kind for _, kind in sent] == [Kind.EPRO_INVITATION, Kind.EPRO_REMINDER_1,
                                           Kind.EPRO_REMINDER_2]
    days = dict(ReminderLog.objects.values_list("kind", "digest_date"))
    start = days[Kind.EPRO_INVITATION]
    assert days[Kind.EPRO_REMINDER_1] == start + datetime.timedelta(days=3)
    assert days[Kind.EPRO_REMINDER_2] == start + datetime.timedelta(days=7)
    assert len(smtp_server.messages) == 3
    assert "Reminder" in smtp_server.messages[1][1]["Subject"]


def test_nothing_after_submission_or_the_nurses_entry(site_a, smtp_server, nurse, client):
    _, answered = open_m3(site_a)
    _, entered = open_m3(site_a)
    run(site_a)
    assert len(smtp_server.messages) == 2
    link = epro.link_find(link_in(smtp_server.text(0)).rsplit("/", 2)[-2])
    answered_visit = link.visit
    epro.answers_submit(link=link, data=answers(answered_visit, nrs=1, satisfaction=5, pgic=1))
    other = entered if answered_visit.pk == answered.pk else answered
    other = Visit.objects.get(pk=other.pk)
    other.status, other.date_done, other.nrs = VisitStatus.COMPLETED, other.window_start, 4
    record_save(other, actor=nurse, reason="clinic visit")
    for day in range(1, 12):
        assert run(site_a, day).sent == []
    assert len(smtp_server.messages) == 2


def test_no_reminder_once_the_window_has_closed(site_a, smtp_server, settings):
    settings.REGISTRY_EPRO_REMINDER_DAYS = [3, 7]
    _, visit = open_m3(site_a)
    # The window closes the day after tomorrow: the reminders of days 3 and 7 never go.
    Visit.objects.filter(pk=visit.pk).update(window_end=site_today(site_a.timezone)
                                             + datetime.timedelta(days=2))
    assert len(run(site_a).sent) == 1
    assert [run(site_a, day).sent for day in range(1, 12)] == [[]] * 11
    assert len(smtp_server.messages) == 1


def test_withdrawal_stops_invitations_at_once(site_a, smtp_server, nurse):
    patient, _ = open_m3(site_a)
    run(site_a)
    patient = Patient.objects.get(pk=patient.pk)
    patient.consent_status, patient.withdrawal_date = ConsentStatus.WITHDRAWN, timezone.now().date()
    patient_save(patient=patient, actor=nurse, reason="withdrew")
    assert [run(site_a, day).sent for day in range(1, 12)] == [[]] * 11
    assert len(smtp_server.messages) == 1
    assert epro.link_status(EproLink.objects.get()) == "closed"


def test_withdrawing_the_consent_to_links_stops_them_too(site_a, smtp_server, nurse):
    patient, _ = open_m3(site_a)
    patient.epro_consent_date = None
    patient_save(patient=patient, actor=nurse, reason="no more e-mails, please")
    assert run(site_a).sent == [] and smtp_server.messages == []


def test_a_refusing_server_is_retried_and_nothing_is_sent_twice(site_a, smtp_server):
    open_m3(site_a)
    open_m3(site_a)
    smtp_server.refuse, smtp_server.refuse_after = "451 4.3.0 Try again later", 1
    with pytest.raises(epro.InvitationsNotSent):
        run(site_a)
    assert len(smtp_server.messages) == 1
    assert sorted(ReminderLog.objects.values_list("status", flat=True)) == ["failed", "sent"]
    failed_link = EproLink.objects.exclude(revoked_at=None).get()
    assert failed_link.revoked_reason == "e-mail not delivered"
    smtp_server.refuse = None
    assert len(run(site_a).sent) == 1
    assert run(site_a).sent == []
    assert len(smtp_server.messages) == 2
    assert sorted(ReminderLog.objects.values_list("attempts", flat=True)) == [1, 2]
    assert set(smtp_server.to(0) + smtp_server.to(1)) == {"patient@example.org"}


def test_a_dutch_patient_gets_her_e_mail_in_dutch(site_a, smtp_server):
    open_m3(site_a, epro_language="nl")
    run(site_a)
    assert smtp_server.messages[0][1]["Subject"] == "Uw vervolgvragenlijst"
    assert "Open mijn vragenlijst" in smtp_server.html()


def test_the_job_reads_a_bounded_number_of_queries(site_a, smtp_server, django_assert_max_num_queries):
    for _ in range(3):
        open_m3(site_a)
    with django_assert_max_num_queries(8):
        epro.mails_due(site=site_a, day=site_today(site_a.timezone))
    for _ in range(7):
        open_m3(site_a)
    with django_assert_max_num_queries(8):
        epro.mails_due(site=site_a, day=site_today(site_a.timezone))


@needs_postgres()
@pytest.mark.django_db(transaction=True)
def test_concurrent_runs_send_each_invitation_once(smtp_server):
    restore_reference_data()
    site = make_site("EPC")
    for _ in range(5):
        open_m3(site)
    barrier = threading.Barrier(4)
    results, errors = [], []

    def worker():
        try:
            barrier.wait()
            results.append(run(site))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert sum(len(r.sent) for r in results) == 5
    assert len(smtp_server.messages) == 5
    assert ReminderLog.objects.filter(status="sent", attempts=1).count() == 5
    assert EproLink.objects.count() == 5

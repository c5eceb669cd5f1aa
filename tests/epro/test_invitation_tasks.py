"""The questionnaire e-mails go out with the digest task, on a real Celery worker (Redis
broker), a real SMTP server and PostgreSQL: repeated and concurrent runs, a refusing server."""

import pytest

from registry import tasks
from registry.models import ReminderLog
from registry.services.dates import site_today
from tests.epro.conftest import open_m3
from tests.mailserver import smtp_server_fixture  # noqa: F401 (the smtp_server fixture)
from tests.tasks.test_reminder_tasks import worker  # noqa: F401 (the worker fixture)

pg_worker = pytest.mark.django_db(transaction=True)
DIGEST = "registry.tasks.send_site_digest"
INVITATION = ReminderLog.Kind.EPRO_INVITATION


def patient_mails(smtp_server):
    return [to for to, _ in smtp_server.messages if to[0].startswith("patient")]


@pg_worker
def test_repeated_and_concurrent_runs_on_a_worker_send_one_invitation_each(
        site_a, site_b, smtp_server, worker):  # noqa: F811
    for site in (site_a, site_a, site_b):
        open_m3(site)
    day = site_today(site_a.timezone).isoformat()
    for _ in range(2):
        tasks.send_reminders.delay(day)
    for _ in range(3):
        tasks.send_site_digest.delay(site_a.pk, day)
    worker.wait(lambda: worker.count(DIGEST) == 7, "seven site tasks")
    tasks.send_reminders.delay(day)
    worker.wait(lambda: worker.count(DIGEST) == 9, "a run after that")
    assert len(patient_mails(smtp_server)) == 3
    logs = ReminderLog.objects.filter(kind=INVITATION)
    assert logs.count() == 3 and set(logs.values_list("status", "attempts")) == {("sent", 1)}


@pg_worker
def test_a_refusing_server_is_retried_by_the_task_and_each_patient_mailed_once(
        site_a, smtp_server, worker):  # noqa: F811
    open_m3(site_a)
    site_a.reminder_emails = ""  # no digest: only the patient's e-mail is at stake
    site_a.save()
    smtp_server.refuse = "451 4.3.0 Mailbox temporarily unavailable"
    day = site_today(site_a.timezone).isoformat()
    tasks.send_site_digest.delay(site_a.pk, day)
    worker.wait(lambda: worker.retries >= 2, "two retries")
    assert smtp_server.messages == []
    smtp_server.refuse = None
    worker.wait(lambda: worker.count(DIGEST) == 1, "the task after recovery")
    tasks.send_site_digest.delay(site_a.pk, day)
    worker.wait(lambda: worker.count(DIGEST) == 2, "a run after that")
    assert len(patient_mails(smtp_server)) == 1
    log = ReminderLog.objects.get(kind=INVITATION)
    assert log.status == "sent" and log.attempts == smtp_server.refused + 1

"""The reminder job on a real Celery worker with a Redis broker and a real SMTP server.

The worker runs in this process (celery.contrib.testing.worker.start_worker) and
reads the database the test wrote, so these tests need PostgreSQL and a
committed (transactional) database; they skip on SQLite or without Redis.
Eager mode (forced by the test settings) is switched off for their duration.
"""

import datetime
import os
import threading
import time

import pytest
from celery import signals
from celery.contrib.testing.worker import start_worker
from django.core import mail
from django.db import connection

from config.celery_app import app
from registry import tasks
from registry.models import ReminderLog, Site, Visit, VisitStatus
from registry.services.audit import system_user
from registry.services.dates import site_today
from tests.factories import make_implant, make_patient, make_site
from tests.mailserver import (
    restore_reference_data,
    smtp_server_fixture,  # noqa: F401 (the smtp_server fixture)
)

D = datetime.date
DAY = D(2020, 3, 25)
WAIT = 60  # seconds: an upper bound for waiting on the worker, not a timing assertion


def implanted(site, implant_date):
    patient = make_patient(site, consent_date=D(2019, 6, 1))
    return patient, make_implant(patient, trial_start=implant_date - datetime.timedelta(days=20),
                                 trial_end=implant_date - datetime.timedelta(days=10),
                                 implant_date=implant_date)


def broker_url() -> str:
    return os.environ.get("CELERY_BROKER_URL", "")


def redis_reachable(url: str) -> bool:
    if not url.startswith("redis"):
        return False
    try:
        import redis

        return bool(redis.Redis.from_url(url, socket_connect_timeout=2).ping())
    except Exception:
        return False


class Finished:
    """Counts tasks the in-process worker finished, by name and state."""

    def __init__(self):
        self.done: list[tuple[str, str]] = []
        self.retries = 0
        self._cond = threading.Condition()

    def on_postrun(self, sender=None, state=None, **kwargs):
        with self._cond:
            self.done.append((sender.name, state))
            self._cond.notify_all()

    def on_retry(self, sender=None, **kwargs):
        with self._cond:
            self.retries += 1
            self._cond.notify_all()

    def count(self, name, state="SUCCESS") -> int:
        return sum(1 for n, s in self.done if n == name and s == state)

    def wait(self, predicate, what: str):
        deadline = time.monotonic() + WAIT
        with self._cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(f"worker did not finish: {what} (done: {self.done})")
                self._cond.wait(min(left, 0.5))


@pytest.fixture
def worker(settings):
    """A real worker on Redis, eager mode off; skips where that cannot work."""
    url = broker_url()
    if connection.vendor != "postgresql":
        pytest.skip("the in-process worker needs PostgreSQL (SQLite in-memory is not shared)")
    if not redis_reachable(url):
        pytest.skip("needs a reachable Redis in CELERY_BROKER_URL (CI runs it)")
    restore_reference_data()
    saved = {key: app.conf[key] for key in ("task_always_eager", "broker_url")}
    app.conf.task_always_eager = False
    app.conf.broker_url = url
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.REGISTRY_REMINDER_RETRY_BACKOFF = 1  # retry after 1, 2, 4 s instead of minutes
    app.control.purge()  # nothing left over from an earlier run
    finished = Finished()
    signals.task_postrun.connect(finished.on_postrun, weak=False)
    signals.task_retry.connect(finished.on_retry, weak=False)
    try:
        with start_worker(app, pool="threads", concurrency=4, perform_ping_check=False,
                          shutdown_timeout=30):
            yield finished
    finally:
        signals.task_postrun.disconnect(finished.on_postrun)
        signals.task_retry.disconnect(finished.on_retry)
        for key, value in saved.items():
            app.conf[key] = value


@pytest.fixture
def two_sites(worker, site_a, site_b):
    implanted(site_a, D(2020, 3, 1))  # m1 window opens on DAY
    implanted(site_a, D(2019, 12, 1))  # m1 and m3 overdue; m1 past grace
    implanted(site_b, D(2020, 3, 5))  # m1 window opens 2020-03-29
    return site_a, site_b


pg_worker = pytest.mark.django_db(transaction=True)
DIGEST = "registry.tasks.send_site_digest"
DISPATCH = "registry.tasks.send_reminders"


@pg_worker
def test_the_job_on_a_worker_sends_one_digest_per_site(two_sites, smtp_server, worker):
    site_a, site_b = two_sites
    tasks.send_reminders.delay(DAY.isoformat())
    worker.wait(lambda: worker.count(DIGEST) == 2, "two site digests")
    assert sorted(to for to, _ in smtp_server.messages) == [["aaa@example.org"],
                                                             ["bbb@example.org"]]
    assert set(ReminderLog.objects.values_list("status", flat=True)) == {"sent"}
    assert ReminderLog.objects.filter(site=site_a).count() == 3
    assert ReminderLog.objects.filter(site=site_b).count() == 1
    missed = Visit.objects.get(patient__site=site_a, timepoint="m1", window_end=D(2020, 1, 8))
    assert missed.status == VisitStatus.MISSED
    assert missed.history.first().history_user == system_user()


@pg_worker
def test_running_the_job_twice_in_a_row_sends_nothing_extra(two_sites, smtp_server, worker):
    tasks.send_reminders.delay(DAY.isoformat())
    worker.wait(lambda: worker.count(DIGEST) == 2, "first run")
    tasks.send_reminders.delay(DAY.isoformat())
    worker.wait(lambda: worker.count(DIGEST) == 4, "second run")
    assert len(smtp_server.messages) == 2
    assert ReminderLog.objects.count() == 4
    assert set(ReminderLog.objects.values_list("attempts", flat=True)) == {1}


@pg_worker
def test_running_the_job_twice_concurrently_sends_nothing_extra(two_sites, smtp_server, worker):
    site_a, site_b = two_sites
    for _ in range(2):
        tasks.send_reminders.delay(DAY.isoformat())
    for _ in range(3):  # and a few more for one site, all at once on four worker threads
        tasks.send_site_digest.delay(site_a.pk, DAY.isoformat())
    worker.wait(lambda: worker.count(DIGEST) == 7, "seven site tasks")
    assert sorted(to for to, _ in smtp_server.messages) == [["aaa@example.org"],
                                                             ["bbb@example.org"]]
    assert ReminderLog.objects.count() == 4
    assert ReminderLog.objects.values("claim_token").distinct().count() == 2
    assert ReminderLog.objects.filter(status="sent", attempts=1).count() == 4


@pg_worker
def test_a_refusing_smtp_server_is_retried_and_the_digest_sent_once_it_recovers(
        two_sites, smtp_server, worker):
    site_a, _ = two_sites
    smtp_server.refuse = "451 4.3.0 Mailbox temporarily unavailable"
    tasks.send_site_digest.delay(site_a.pk, DAY.isoformat())
    worker.wait(lambda: worker.retries >= 2, "two retries")
    assert smtp_server.messages == []
    assert set(ReminderLog.objects.values_list("status", flat=True)) == {"failed"}

    smtp_server.refuse = None
    worker.wait(lambda: worker.count(DIGEST) == 1, "the digest after recovery")
    assert len(smtp_server.messages) == 1
    logs = ReminderLog.objects.filter(site=site_a)
    assert set(logs.values_list("status", flat=True)) == {"sent"}
    assert all(log.attempts == smtp_server.refused + 1 for log in logs)

    tasks.send_site_digest.delay(site_a.pk, DAY.isoformat())
    worker.wait(lambda: worker.count(DIGEST) == 2, "a run after that")
    assert len(smtp_server.messages) == 1


@pg_worker
def test_a_server_failing_after_the_first_digest_leaves_every_site_one_digest(
        two_sites, smtp_server, worker):
    third = make_site("CCC")
    implanted(third, D(2020, 3, 10))  # m1 window opens 2020-04-03: due soon on DAY
    smtp_server.refuse, smtp_server.refuse_after = "451 4.3.0 Try again later", 1
    tasks.send_reminders.delay(DAY.isoformat())
    # One site's digest goes through; the other two are refused and retried.
    worker.wait(lambda: worker.count(DIGEST) == 1 and worker.retries >= 4,
                "one digest sent and the others retried twice")
    assert len(smtp_server.messages) == 1
    per_site = sorted(set(ReminderLog.objects.values_list("site__code", "status")))
    assert sorted(status for _, status in per_site) == ["failed", "failed", "sent"]
    sent = next(code for code, status in per_site if status == "sent")
    assert smtp_server.to(0) == [f"{sent.lower()}@example.org"]

    smtp_server.refuse = None
    worker.wait(lambda: worker.count(DIGEST) == 3, "the other digests after recovery")
    tasks.send_reminders.delay(DAY.isoformat())  # and a run after that sends nothing more
    worker.wait(lambda: worker.count(DIGEST) == 6, "a run after that")
    assert sorted(to for to, _ in smtp_server.messages) == [
        ["aaa@example.org"], ["bbb@example.org"], ["ccc@example.org"]]
    assert set(ReminderLog.objects.values_list("status", flat=True)) == {"sent"}
    assert ReminderLog.objects.count() == 3 + 1 + 1


@pg_worker
def test_a_stopped_smtp_server_is_retried_until_it_is_back(two_sites, smtp_server, worker):
    site_a, _ = two_sites
    smtp_server.stop()
    tasks.send_site_digest.delay(site_a.pk, DAY.isoformat())
    worker.wait(lambda: worker.retries >= 1, "a retry")
    smtp_server.start()
    worker.wait(lambda: worker.count(DIGEST) == 1, "the digest after restart")
    assert len(smtp_server.messages) == 1
    assert set(ReminderLog.objects.values_list("status", flat=True)) == {"sent"}


@pg_worker
def test_the_beat_entry_runs_the_job_for_each_sites_today(site_a, site_b, smtp_server, worker,
                                                          settings):
    from django_celery_beat.schedulers import DatabaseScheduler

    settings.REGISTRY_REMINDER_LOCAL_HOUR = 0  # whatever the hour the test runs at
    today = datetime.date.today()
    for site in (site_a, site_b):
        implanted(site, today - datetime.timedelta(days=25))  # m1 window opening around today
    scheduler = DatabaseScheduler(app=app, lazy=True)
    entry = next(e for e in scheduler.all_as_schedule().values() if e.task == DISPATCH)
    assert entry.schedule.run_every == datetime.timedelta(hours=1)
    scheduler.apply_async(entry, advance=False)  # what beat does when the entry is due
    worker.wait(lambda: worker.count(DIGEST) == 2, "the digests beat started")
    assert len(smtp_server.messages) == 2
    days = set(ReminderLog.objects.values_list("digest_date", flat=True))
    assert days <= {site_today(s.timezone) for s in Site.objects.all()}


def test_the_dispatcher_enqueues_one_task_per_site_after_commit(
        site_a, site_b, django_capture_on_commit_callbacks):
    implanted(site_a, D(2020, 3, 1))
    implanted(site_b, D(2020, 3, 5))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert tasks.send_reminders(DAY.isoformat()) == 2
    assert len(callbacks) == 2 and mail.outbox == []  # nothing sent before the commit
    for callback in callbacks:
        callback()  # eager in the test settings
    assert sorted(m.to[0] for m in mail.outbox) == ["aaa@example.org", "bbb@example.org"]


def test_a_site_task_reports_what_it_did(site_a):
    implanted(site_a, D(2020, 3, 1))
    result = tasks.send_site_digest.apply(args=[site_a.pk, DAY.isoformat()]).get()
    assert result["site"] == "AAA" and result["sent"] and result["due_soon"] == 1
    assert ReminderLog.objects.get().visit.history.count() >= 1


def test_a_site_task_for_a_deleted_site_does_nothing(db):
    result = tasks.send_site_digest.apply(args=[987654, DAY.isoformat()]).get()
    assert result["skipped"] == "no such site"


def test_the_dispatcher_refuses_a_bad_date(db):
    with pytest.raises(ValueError, match="2020-13-01"):
        tasks.send_reminders("2020-13-01")

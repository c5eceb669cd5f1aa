"""Celery tasks: thin wrappers that take ids, call a service and own the retry policy.

Beat runs `send_reminders` hourly (a PeriodicTask created by migration, editable
in the admin under Periodic tasks); each site sends once per local day, from
its local REGISTRY_REMINDER_LOCAL_HOUR, thanks to the reminder log.
"""

import datetime
import logging
from functools import partial

from celery import shared_task
from django.db import transaction

from registry.models import Site
from registry.services import checks, epro, export_log, reminders
from registry.services.audit import system_user
from registry.services.safety import alerts

log = logging.getLogger(__name__)


def _day(value: str | None) -> datetime.date | None:
    try:
        return datetime.date.fromisoformat(value) if value else None
    except ValueError:
        raise ValueError(f"date must be YYYY-MM-DD, not '{value}'") from None


@shared_task(bind=True, max_retries=10)
def send_site_digest(self, site_id: int, date: str | None = None) -> dict:
    """Send one site's digest for `date` (ISO; default: the site's today), mark
    missed visits, and send the patients' questionnaire e-mails due (services.epro).
    SMTP failures are retried with exponential backoff; the
    reminder log makes the retry send only what was not sent."""
    site = Site.objects.filter(pk=site_id).first()
    if site is None:
        log.warning("send_site_digest: site %s no longer exists", site_id)
        return {"site": site_id, "skipped": "no such site"}
    failure = None
    try:
        result = reminders.site_digest_send(site=site, day=_day(date), actor=system_user(),
                                            scheduled_run=date is None).as_dict()
    except reminders.DigestNotSent as exc:
        failure, result = exc, {"site": site.code, "sent": False}
    # The patients' questionnaire e-mails go out with the digest, claimed in the same log;
    # a retry sends only what either did not send.
    try:
        result["questionnaires"] = epro.invitations_send(site=site, day=_day(date),
                                                         scheduled_run=date is None).as_dict()
    except epro.InvitationsNotSent as exc:
        failure = failure or exc
    if failure is not None:
        raise self.retry(exc=failure, countdown=reminders.retry_delay(self.request.retries)) from failure
    return result


@shared_task
def send_reminders(date: str | None = None) -> int:
    """Enqueue one digest task per site (after the surrounding transaction commits)."""
    _day(date)  # a bad date fails here, not in twenty site tasks
    site_ids = list(Site.objects.order_by("code").values_list("pk", flat=True))
    for site_id in site_ids:
        transaction.on_commit(partial(send_site_digest.delay, site_id, date))
    return len(site_ids)


@shared_task
def prune_export_log() -> int:
    """Daily: drop REST list-page log rows past REGISTRY_EXPORT_LOG_RETENTION_DAYS."""
    return export_log.export_log_prune()


@shared_task
def run_data_checks(site_ids: list[int] | None = None) -> dict:
    """Nightly (beat, migration 0013): every data check over the registry, or the sites given."""
    sites = list(Site.objects.filter(pk__in=site_ids)) if site_ids is not None else None
    run = checks.checks_run(sites=sites)
    return {"findings": run.findings, "opened": run.opened, "closed": run.closed}


@shared_task(bind=True, max_retries=10)
def send_safety_alert(self, event_id: int) -> str:
    """Send the immediate alert of a serious adverse event (once: services.safety.alerts);
    SMTP failures are retried with the digests' backoff."""
    from registry.models import AdverseEvent

    event = AdverseEvent.objects.filter(pk=event_id).first()
    if event is None:
        return "no such event"
    try:
        return alerts.safety_alert_send(event=event)
    except alerts.AlertNotSent as exc:
        raise self.retry(exc=exc, countdown=reminders.retry_delay(self.request.retries)) from exc


@shared_task
def send_safety_alerts() -> dict:
    """Beat, every 10 minutes: alerts not sent yet (events from the API or imports, failures)."""
    return alerts.safety_alerts_sweep()


@shared_task
def import_bundle(job_id: str) -> dict:
    """The admin's confirmed import (services.imports.jobs): no retry, a failed import
    says why on its page and the data manager uploads again; a second delivery of the
    task does nothing (the job is claimed)."""
    from registry.services.imports import jobs

    return jobs.import_job_run(job_id=job_id)

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
from registry.services import epro, export_log, reminders
from registry.services.audit import system_user

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

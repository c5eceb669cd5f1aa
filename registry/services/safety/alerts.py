"""The immediate safety alert: one e-mail per SAE, SADE or USADE to the site's safety
contacts, exactly once per event and class in effect, through the reminder log.

An event upgraded after its first alert (SAE -> SADE or USADE, SADE -> USADE, or a
non-serious event made serious) is news and is alerted again, once, for its new class;
a downgrade is not (the alert of a higher class covers the lower ones).

Saving a serious event enqueues `registry.tasks.send_safety_alert` after the commit;
the beat sweep (`send_safety_alerts`, every 10 minutes) catches events that came in
another way (API, import) or whose alert failed. Both call `safety_alert_send`, which
claims the event's `ReminderLog` row of its class (kind `safety_alert` for an SAE,
`safety_sade`, `safety_usade`; unique per event and kind) before sending: a second
run, a retry or a concurrent worker finds it claimed or sent and sends nothing. A
refused delivery marks the claim failed (`AlertNotSent`, retried); a
claim left by a worker that died is taken over after `reminders.stale_claim()`, which
may send that alert twice, as for the digests. The e-mail carries the registry id,
category, class, dates, the reporting rule and deadline and the admin link: no
identifiers, no free text. Recipients: the site's safety contacts, or its reminder
addresses where it has none (an alert must reach someone).
Events the site became aware of more than `REGISTRY_SAFETY_ALERT_LOOKBACK_DAYS` ago
are not alerted by the sweep (history loaded by an import is not news).
"""

import datetime
import smtplib
import uuid

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from registry.models import AdverseEvent, Iso14155Class, ReminderLog
from registry.models.choices import RELATED

from ..dates import site_today
from ..reminders import stale_claim
from .reportability import event_reportability

ALERT_CLASSES = (Iso14155Class.SAE, Iso14155Class.SADE, Iso14155Class.USADE)  # ascending
Kind, Status = ReminderLog.Kind, ReminderLog.Status
ALERT_KINDS = {Iso14155Class.SAE: Kind.SAFETY_ALERT, Iso14155Class.SADE: Kind.SAFETY_ALERT_SADE,
               Iso14155Class.USADE: Kind.SAFETY_ALERT_USADE}


def alert_kind(iso_class: str) -> str:
    return ALERT_KINDS[iso_class]


def covering_kinds(iso_class: str) -> list[str]:
    """The kinds whose alert covers this class: its own and those of higher classes."""
    return [ALERT_KINDS[c] for c in ALERT_CLASSES[ALERT_CLASSES.index(iso_class):]]


class AlertNotSent(Exception):
    """The SMTP server refused or could not be reached; the claim is marked failed."""


def recipients_of(site) -> list[str]:
    return site.safety_email_list or site.reminder_email_list


def _claim(event: AdverseEvent, kind: str, token: str, now: datetime.datetime) -> bool:
    site = event.patient.site
    report = event_reportability(event)
    aware = report.awareness_date
    row = ReminderLog(adverse_event=event, site=site, kind=kind, window_start=aware,
                      window_end=report.deadline or aware, status=Status.CLAIMED,
                      digest_date=site_today(site.timezone, now), claimed_at=now,
                      claim_token=token, recipients="; ".join(recipients_of(site)))
    with transaction.atomic():
        # The unique (event, kind) decides who sends: a row someone else made stays theirs.
        ReminderLog.objects.bulk_create([row], ignore_conflicts=True)
        mine = ReminderLog.objects.filter(adverse_event=event, kind=kind, claim_token=token)
        if mine.exists():
            return True
        # Failed, or claimed by a sender that died: taken over with a conditional update.
        return bool(ReminderLog.objects.filter(adverse_event=event, kind=kind).filter(
            Q(status=Status.FAILED) | Q(status=Status.CLAIMED, claimed_at__lt=now - stale_claim())
        ).update(status=Status.CLAIMED, claim_token=token, claimed_at=now,
                 recipients=row.recipients))


def safety_alert_send(*, event: AdverseEvent, now: datetime.datetime | None = None) -> str:
    """Send the alert of the event's class unless it is not serious or the alert of this
    class or a higher one was sent (or is being sent).
    Returns what happened ("sent", "not serious", "no addresses", "already claimed");
    raises AlertNotSent when the SMTP server refuses (the next attempt sends it)."""
    now = now or timezone.now()
    event = AdverseEvent.objects.select_related("patient__site", "implant").get(pk=event.pk)
    if event.iso_class not in ALERT_CLASSES:
        return "not serious"
    site = event.patient.site
    to = recipients_of(site)
    if not to:
        return "no addresses"
    kind = alert_kind(event.iso_class)
    higher = [k for k in covering_kinds(event.iso_class) if k != kind]
    if ReminderLog.objects.filter(adverse_event=event, kind__in=higher).filter(
            Q(status=Status.SENT) | Q(status=Status.CLAIMED)).exists():
        return "already claimed"
    token = uuid.uuid4().hex
    if not _claim(event, kind, token, now):
        return "already claimed"
    mine = ReminderLog.objects.filter(adverse_event=event, kind=kind, claim_token=token,
                                      status=Status.CLAIMED)
    try:
        _send(event, to)
    except Exception as exc:
        mine.update(status=Status.FAILED, attempts=F("attempts") + 1,
                    last_error=f"{type(exc).__name__}: {exc}"[:2000])
        if isinstance(exc, smtplib.SMTPException | OSError):
            raise AlertNotSent(f"Safety alert for event {event.pk} not sent: "
                               f"{type(exc).__name__}: {exc}") from exc
        raise
    mine.update(status=Status.SENT, sent_at=timezone.now(), attempts=F("attempts") + 1,
                last_error="")
    return "sent"


def _send(event: AdverseEvent, to: list[str]) -> None:
    report = event_reportability(event)
    context = {"event": event, "registry_id": event.patient.registry_id, "site": event.patient.site,
               "iso_class": Iso14155Class(event.iso_class), "report": report,
               "admin_url": settings.SITE_URL + reverse("admin:registry_adverseevent_change",
                                                        args=[event.pk])}
    subject = render_to_string("registry/email/safety_alert_subject.txt", context).strip()
    message = EmailMultiAlternatives(
        subject=" ".join(subject.split()),
        body=render_to_string("registry/email/safety_alert.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL, to=to,
        connection=get_connection(fail_silently=False))
    message.send()


def alerts_pending(*, now: datetime.datetime | None = None):
    """Serious events aware within the look-back days whose alert for their present class
    (or a higher one) was not sent (nor is being sent by a live claim)."""
    now = now or timezone.now()
    since = now.date() - datetime.timedelta(days=settings.REGISTRY_SAFETY_ALERT_LOOKBACK_DAYS)

    def done(iso_class):
        return Exists(ReminderLog.objects.filter(
            adverse_event=OuterRef("pk"), kind__in=covering_kinds(iso_class)).filter(
            Q(status=Status.SENT) | Q(status=Status.CLAIMED, claimed_at__gte=now - stale_claim())))

    # The class in SQL, as models.events.iso14155_class derives it.
    related = Q(device_relatedness__in=RELATED) | Q(procedure_relatedness__in=RELATED)
    usade = related & Q(anticipated=False)
    sade = related & ~Q(anticipated=False)
    return (AdverseEvent.objects.filter(serious=True, awareness_date__gte=since)
            .filter((usade & ~done(Iso14155Class.USADE)) | (sade & ~done(Iso14155Class.SADE))
                    | (~related & ~done(Iso14155Class.SAE)))
            .order_by("pk"))


def safety_alerts_sweep(*, now: datetime.datetime | None = None) -> dict[str, int]:
    """Send every pending alert (the beat task); a refused one is counted and left for
    the next sweep."""
    counts: dict[str, int] = {}
    for event in alerts_pending(now=now):
        try:
            outcome = safety_alert_send(event=event, now=now)
        except AlertNotSent:
            outcome = "failed"
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts

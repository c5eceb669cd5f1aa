"""E-mail invitations to patients: one per visit window, then at most the configured reminders.

When a scheduled visit's window opens (the site's day), a patient who consented to
e-mail links (`may_email`) and has an e-mail address in her identifiers gets an
invitation with a new link; REGISTRY_EPRO_REMINDER_DAYS (default 3 and 7) days
after the invitation she gets a reminder with a new link, while the window is
open and the visit is still scheduled. Nothing goes out once she submitted, the
nurse entered the visit, the window closed, or follow-up ended.

Each e-mail is a `ReminderLog` row (kind epro_inv / epro_rem1..3, unique per visit,
kind and window), claimed before sending exactly as the digests claim theirs
(services/reminders): a conflicting insert means another run has it; failed and
stale claims are taken over by a conditional update; a reminder waits until the
one before it is sent. So repeated and concurrent runs send each e-mail once;
SMTP failures are marked failed and retried by the next attempt (the digest
task's retry), never sent twice (a worker dying between the SMTP server's "250"
and the log's "sent" aside, as for the digests). The log's recipients say
"patient": the address stays in the identifiers.
"""

import datetime
import smtplib
import uuid
from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q
from django.template.loader import render_to_string
from django.utils import timezone, translation

from registry.models import EproLink, PatientIdentifiers, ReminderLog, Site, Visit, VisitStatus

from ..dates import site_today
from .links import link_create, link_revoke, link_url, may_email, valid_days
from .questions import questions_for

Kind = ReminderLog.Kind
Status = ReminderLog.Status
REMINDER_KINDS = (Kind.EPRO_REMINDER_1, Kind.EPRO_REMINDER_2, Kind.EPRO_REMINDER_3)
KINDS = (Kind.EPRO_INVITATION, *REMINDER_KINDS)
RECIPIENT = "patient"


class InvitationsNotSent(Exception):
    """The SMTP server refused some; they are marked failed and the next attempt sends them."""


@dataclass
class InvitationRun:
    site_code: str
    day: datetime.date
    sent: list[tuple[int, str]] = field(default_factory=list)  # (visit id, kind)
    failed: list[tuple[int, str]] = field(default_factory=list)
    skipped: str = ""

    def as_dict(self) -> dict:
        return {"site": self.site_code, "day": self.day.isoformat(), "sent": len(self.sent),
                "failed": len(self.failed), "skipped": self.skipped}


def reminder_days() -> list[int]:
    return list(settings.REGISTRY_EPRO_REMINDER_DAYS)


def invitable(site: Site, day: datetime.date):
    """Visits of `site` whose patient is to be e-mailed about them on `day`: scheduled,
    window open on the day, the patient may be e-mailed and has an address."""
    has_address = PatientIdentifiers.objects.filter(patient_id=OuterRef("patient_id")).exclude(email="")
    return (Visit.objects.filter(patient__site_id=site.pk, status=VisitStatus.SCHEDULED,
                                 window_start__lte=day, window_end__gte=day)
            .filter(may_email("patient__", on=day)).filter(Exists(has_address)))


def mails_due(*, site: Site, day: datetime.date) -> list[tuple[int, str, datetime.date, datetime.date]]:
    """(visit id, kind, window start, window end) of the e-mails due on `day` and not
    claimed yet: at most one per visit (the invitation, else the next reminder).
    Two queries, whatever the number of visits."""
    visits = {pk: (start, end) for pk, start, end in
              invitable(site, day).values_list("pk", "window_start", "window_end")}
    logs: dict[int, dict[str, tuple[str, datetime.date]]] = {}
    for visit_id, kind, status, digest_date, start, end in ReminderLog.objects.filter(
            visit_id__in=list(visits), kind__in=KINDS).values_list(
            "visit_id", "kind", "status", "digest_date", "window_start", "window_end"):
        if visits[visit_id] == (start, end):  # rows about an older window do not count
            logs.setdefault(visit_id, {})[kind] = (status, digest_date)
    due = []
    days = reminder_days()
    for visit_id, (start, end) in visits.items():
        sent = logs.get(visit_id, {})
        invitation = sent.get(Kind.EPRO_INVITATION)
        if invitation is None:
            due.append((visit_id, Kind.EPRO_INVITATION, start, end))
            continue
        if invitation[0] != Status.SENT:
            continue
        for kind, after in zip(REMINDER_KINDS, days, strict=False):
            if kind in sent:
                if sent[kind][0] != Status.SENT:
                    break  # the one before waits for its retry
                continue
            if day >= invitation[1] + datetime.timedelta(days=after):
                due.append((visit_id, kind, start, end))
            break
    return due


def _claim(*, site: Site, day: datetime.date, token: str, now) -> None:
    from ..reminders import stale_claim

    still_needed = invitable(site, day).filter(pk=OuterRef("visit_id"),
                                               window_start=OuterRef("window_start"),
                                               window_end=OuterRef("window_end"))
    ReminderLog.objects.filter(site_id=site.pk, kind__in=KINDS).filter(
        Q(status=Status.FAILED) | Q(status=Status.CLAIMED, claimed_at__lt=now - stale_claim())
    ).filter(Exists(still_needed)).update(status=Status.CLAIMED, claim_token=token, claimed_at=now,
                                          digest_date=day)
    new = [ReminderLog(visit_id=visit_id, site_id=site.pk, kind=kind, window_start=start,
                       window_end=end, status=Status.CLAIMED, digest_date=day, claimed_at=now,
                       claim_token=token, recipients=RECIPIENT)
           for visit_id, kind, start, end in mails_due(site=site, day=day)]
    # ignore_conflicts: an e-mail another run claimed in between stays theirs.
    ReminderLog.objects.bulk_create(new, ignore_conflicts=True)


def invitations_send(*, site: Site, day: datetime.date | None = None,
                     now: datetime.datetime | None = None, scheduled_run: bool = False,
                     connection=None) -> InvitationRun:
    """Send the site's questionnaire e-mails due on `day` (default: the site's today).

    Promises: each (visit, window, kind) e-mail is sent at most once and, as long as
    runs keep coming, at least once; scheduled runs wait for the site's local
    REGISTRY_REMINDER_LOCAL_HOUR, as the digests do. Raises InvitationsNotSent
    after trying every claimed e-mail when some could not be delivered.
    """
    now = now or timezone.now()
    day = day or site_today(site.timezone, now)
    run = InvitationRun(site_code=site.code, day=day)
    if scheduled_run and now.astimezone(site.tz).hour < settings.REGISTRY_REMINDER_LOCAL_HOUR:
        run.skipped = f"before {settings.REGISTRY_REMINDER_LOCAL_HOUR}:00 at the site"
        return run
    token = uuid.uuid4().hex
    with transaction.atomic():
        _claim(site=site, day=day, token=token, now=now)
    mine = list(ReminderLog.objects.filter(claim_token=token, status=Status.CLAIMED)
                .select_related("visit__patient__site").order_by("pk"))
    if not mine:
        run.skipped = "nothing to send"
        return run
    emails = dict(PatientIdentifiers.objects.filter(
        patient_id__in={log.visit.patient_id for log in mine}).values_list("patient_id", "email"))
    connection = connection or get_connection(fail_silently=False)
    errors = []
    for log in mine:
        link = None
        try:
            link, token_text = link_create(
                visit=log.visit, now=now,
                channel=EproLink.Channel.EMAIL if log.kind == Kind.EPRO_INVITATION
                else EproLink.Channel.REMINDER,
                reason=f"questionnaire link e-mailed ({log.get_kind_display().lower()})")
            _send(log, link, token_text, emails.get(log.visit.patient_id, ""), connection)
        except Exception as exc:
            if link is not None:
                link_revoke(link=link, actor=None, reason="e-mail not delivered")
            ReminderLog.objects.filter(pk=log.pk, claim_token=token).update(
                status=Status.FAILED, attempts=F("attempts") + 1,
                last_error=f"{type(exc).__name__}: {exc}"[:2000])
            run.failed.append((log.visit_id, log.kind))
            if isinstance(exc, ValidationError):
                continue  # no longer due (entered, withdrawn meanwhile): not retried, not a bug
            if not isinstance(exc, smtplib.SMTPException | OSError):
                raise
            errors.append(f"{type(exc).__name__}: {exc}")
            continue
        ReminderLog.objects.filter(pk=log.pk, claim_token=token).update(
            status=Status.SENT, sent_at=timezone.now(), attempts=F("attempts") + 1, last_error="")
        run.sent.append((log.visit_id, log.kind))
    if errors:
        raise InvitationsNotSent(f"Questionnaire e-mails of site {site.code} on {day}: "
                                 f"{len(errors)} not sent ({errors[0]})")
    return run


def _send(log: ReminderLog, link: EproLink, token: str, address: str, connection) -> None:
    if not address:
        raise smtplib.SMTPRecipientsRefused({"": (550, b"no e-mail address in the identifiers")})
    visit = log.visit
    language = visit.patient.epro_language or "en"
    days = valid_days(visit)
    context = {"url": link_url(token), "site": visit.patient.site,
               "reminder": log.kind != Kind.EPRO_INVITATION,
               "last_day": days[1] if days else None, "questions": len(questions_for(visit)),
               "title": settings.REGISTRY_TITLE}
    with translation.override(language):
        subject = render_to_string("epro/email/invitation_subject.txt", context).strip()
        message = EmailMultiAlternatives(
            subject=" ".join(subject.split()),
            body=render_to_string("epro/email/invitation.txt", context),
            from_email=settings.DEFAULT_FROM_EMAIL, to=[address], connection=connection)
        message.attach_alternative(render_to_string("epro/email/invitation.html", context), "text/html")
    message.send()


class ResendRefused(Exception):
    """The e-mail could not go out (no address, SMTP refusal): the message says why."""


def link_resend(*, visit: Visit, actor, now: datetime.datetime | None = None) -> EproLink:
    """A nurse sends the patient a new link now: the visit's live links are revoked
    and a new one e-mailed (her history says who and why). Refuses (ValidationError)
    what `link_create` refuses and a patient who did not choose e-mail; raises
    ResendRefused when there is no address or the SMTP server refuses (the new link is
    revoked again, the old ones stay revoked: the nurse is told to try again)."""
    from .links import contact_refusal, links_revoke_for, patient_email

    visit = Visit.objects.select_related("patient__site").get(pk=visit.pk)
    today = site_today(visit.patient.site.timezone, now or timezone.now())
    if not contact_refusal(visit.patient, on=today) and not Visit.objects.filter(pk=visit.pk).filter(
            may_email("patient__", on=today)).exists():
        raise ValidationError({"patient": f"{visit.patient.registry_id} chose links in clinic only, "
                                          "not by e-mail: print the link instead."})
    address = patient_email(visit.patient)
    if not address:
        raise ResendRefused(f"{visit.patient.registry_id} has no e-mail address in the identifiers.")
    links_revoke_for(visit=visit, actor=actor, reason="replaced by a link resent by the clinic")
    link, token = link_create(visit=visit, channel=EproLink.Channel.EMAIL, actor=actor, now=now,
                              reason="questionnaire link resent by the clinic")
    log = ReminderLog(visit=visit, kind=Kind.EPRO_INVITATION)  # for the template's wording only
    try:
        _send(log, link, token, address, get_connection(fail_silently=False))
    except (smtplib.SMTPException, OSError) as exc:
        link_revoke(link=link, actor=actor, reason="e-mail not delivered")
        raise ResendRefused(f"The e-mail was not sent ({type(exc).__name__}: {exc}); try again later.") \
            from exc
    return link

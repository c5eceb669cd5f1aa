"""Daily follow-up digests per site, exactly once in effect; marking missed visits.

One digest per site and local day goes to the site's reminder addresses. It
lists, by registry id, timepoint, window and admin link (never identifiers):
- due soon: scheduled visits whose window opens within
  `REGISTRY_REMINDER_DAYS_AHEAD` days, or opened at most
  `REGISTRY_REMINDER_CATCH_UP_DAYS` (7) days ago and was never announced (runs
  that did not happen are caught up; a window open for longer is old news, and
  its visit gets the overdue reminder if it is not done);
- overdue: scheduled visits whose window has closed without a completed visit.
Each (visit, kind) is reminded once per window: a `ReminderLog` row is claimed
(unique visit + kind + window, `claim_token` names the claimer) before the e-mail
is sent, marked sent afterwards, and marked failed when the SMTP server refuses;
failed claims are claimed again by the next attempt. A visit moved to a new
window (implant date corrected, follow-up resumed after an explant correction)
is reminded again for it; the rows about its old window are kept. A visit needs
both window dates to be reminded about (the schedule always sets both). The
claim runs with the site row locked (`SELECT ... FOR UPDATE SKIP LOCKED` on
PostgreSQL), so two concurrent runs never send the same reminder and never split
a site's digest in two.

After the digest, scheduled visits whose window closed more than
`REGISTRY_MISSED_GRACE_DAYS` days ago are marked missed (with history, as the
system user). A site's "today" is the date in its own time zone.

Withdrawn patients get no reminders, nor do patients whose follow-up had ended
by the digest's day (deceased, lost, completed, transferred out). Sites without reminder addresses get no
e-mail (their reminders wait until an address is set) but still have their
missed visits marked.

Exactly once "in effect": a worker that dies after the SMTP server accepted the
message but before the log says sent leaves a claim behind; such a claim is
taken over after `STALE_CLAIM` (longer than the task time limit), which may
send that reminder a second time. Everything else sends each reminder once.
"""

import datetime
import smtplib
import uuid
from dataclasses import dataclass, field

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import connection, transaction
from django.db.models import CharField, Exists, F, OuterRef, Q, Value
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from registry.models import ConsentStatus, ReminderLog, Site, Visit, VisitStatus
from registry.models.disposition import follow_up_ended_q
from registry.models.visits import overdue_on, timepoint_label, timepoint_sort_key

from . import queries, worklist
from .audit import record_bulk_update
from .dates import site_today

Kind = ReminderLog.Kind
Status = ReminderLog.Status
# The digest's own kinds; the log also holds the patients' questionnaire e-mails
# (services/epro/invitations) and the safety alerts, which claim and send their rows themselves.
DIGEST_KINDS = (Kind.DUE_SOON, Kind.OVERDUE)
MISSED_REASON = "Window closed without a visit (marked missed by the daily reminder job)"
BATCH = 2000


def days_ahead() -> int:
    return settings.REGISTRY_REMINDER_DAYS_AHEAD


def grace_days() -> int:
    return settings.REGISTRY_MISSED_GRACE_DAYS


def local_hour() -> int:
    """Scheduled runs send a site's digest from this local hour on (default 6)."""
    return settings.REGISTRY_REMINDER_LOCAL_HOUR


def stale_claim() -> datetime.timedelta:
    """A claim older than this belongs to a sender that died (twice the task time limit)."""
    return datetime.timedelta(seconds=2 * settings.CELERY_TASK_TIME_LIMIT)


def retry_delay(retries: int) -> int:
    """Seconds before the next attempt after an SMTP failure: exponential, capped at an hour."""
    base = settings.REGISTRY_REMINDER_RETRY_BACKOFF
    return min(base * 2 ** retries, 3600)


class DigestNotSent(Exception):
    """The SMTP server refused or could not be reached; the claims are marked failed
    and the next attempt sends them."""


@dataclass(frozen=True)
class DigestLine:
    visit_id: int
    kind: str
    registry_id: str
    timepoint: str
    target_date: datetime.date | None
    window_start: datetime.date | None
    window_end: datetime.date | None
    admin_url: str
    # The worklist category of the window on the digest's day (services/worklist.py):
    # "open_now" or "opening_soon" for a due-soon reminder, "overdue" for an overdue one.
    state: str = ""

    @property
    def state_label(self) -> str:
        if self.state == "open_now":
            return "window open now"
        if self.state == "opening_soon":
            return f"window opens {self.start}"
        if self.state == "overdue":
            return "window closed"
        return ""

    @property
    def timepoint_label(self) -> str:
        return timepoint_label(self.timepoint)

    # ISO dates as text: the |date filter costs ~0.3 ms a call, too much for
    # digests of thousands of lines.
    @property
    def start(self) -> str:
        return self.window_start.isoformat() if self.window_start else ""

    @property
    def end(self) -> str:
        return self.window_end.isoformat() if self.window_end else ""

    @property
    def target(self) -> str:
        return self.target_date.isoformat() if self.target_date else ""


@dataclass
class DigestResult:
    site_code: str
    day: datetime.date
    due_soon: list[DigestLine] = field(default_factory=list)
    overdue: list[DigestLine] = field(default_factory=list)
    sent: bool = False
    dry_run: bool = False
    marked_missed: int = 0
    skipped: str = ""
    recipients: list[str] = field(default_factory=list)
    # The site's open data queries (waiting for the site), listed in the digest it sends.
    open_queries: list = field(default_factory=list)
    # The site's worklist on the day ({category key: count}), the same figures as the
    # site home page (services/worklist.py); the reminder lines are the news among them.
    worklist: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"site": self.site_code, "day": self.day.isoformat(), "sent": self.sent,
                "due_soon": len(self.due_soon), "overdue": len(self.overdue),
                "marked_missed": self.marked_missed, "skipped": self.skipped,
                "dry_run": self.dry_run, "worklist": self.worklist}


def _remindable(site: Site, day: datetime.date):
    # Withdrawn patients never; patients whose follow-up had ended by the day (death,
    # loss, completion, transfer out: models.disposition) neither, whatever their visits.
    return (Visit.objects.filter(patient__site_id=site.pk, status=VisitStatus.SCHEDULED,
                                 window_start__isnull=False, window_end__isnull=False)
            .exclude(patient__consent_status=ConsentStatus.WITHDRAWN)
            .exclude(follow_up_ended_q(day, patient="patient")))


def catch_up_days() -> int:
    """Due-soon reminders also go out for windows that opened up to this many days
    ago (runs that did not happen are caught up); older open windows are not
    announced as "due soon" any more, they get the overdue reminder if missed."""
    return settings.REGISTRY_REMINDER_CATCH_UP_DAYS


def _kind_filters(day: datetime.date) -> dict[str, Q]:
    return {
        Kind.DUE_SOON: Q(window_start__lte=day + datetime.timedelta(days=days_ahead()),
                         window_start__gte=day - datetime.timedelta(days=catch_up_days()),
                         window_end__gte=day),
        # The same "overdue" as every list and badge (Visit.objects.overdue).
        Kind.OVERDUE: overdue_on(day),
    }


def reminders_due(*, site: Site, day: datetime.date) -> list[tuple[int, str, datetime.date,
                                                                 datetime.date]]:
    """(visit id, kind, window start, window end) of the reminders this site has not
    been sent yet for its visits' current windows: one query."""
    pairs = []
    for kind, condition in _kind_filters(day).items():
        already = ReminderLog.objects.filter(visit_id=OuterRef("pk"), kind=kind,
                                             window_start=OuterRef("window_start"),
                                             window_end=OuterRef("window_end"))
        pairs.append(_remindable(site, day).filter(condition).filter(~Exists(already))
                     .annotate(kind=Value(kind, output_field=CharField()))
                     .order_by().values_list("pk", "kind", "window_start", "window_end"))
    return list(pairs[0].union(pairs[1], all=True))


def _lines(logs, day: datetime.date) -> tuple[list[DigestLine], list[DigestLine]]:
    due, overdue = [], []
    url = _visit_url_template()
    rows = logs.values_list("visit_id", "kind", "visit__patient__registry_id",
                            "visit__timepoint", "visit__target_date", "visit__window_start",
                            "visit__window_end")
    for visit_id, kind, registry_id, code, target, start, end in rows:
        line = DigestLine(visit_id=visit_id, kind=kind, registry_id=registry_id, timepoint=code,
                          target_date=target, window_start=start, window_end=end,
                          admin_url=visit_admin_url(visit_id, url),
                          state=worklist.window_state(start, end, day) or "")
        (due if kind == Kind.DUE_SOON else overdue).append(line)
    return sorted(due, key=_line_order), sorted(overdue, key=_line_order)


def _line_order(line: DigestLine):
    return (line.window_start or datetime.date.min, line.registry_id,
            timepoint_sort_key(line.timepoint))


def visit_admin_url(visit_id: int, template: str | None = None) -> str:
    """SITE_URL + the visit's admin change page. Pass `_visit_url_template()` when
    making many: reverse() once per digest, not once per line (~1.5 ms a call)."""
    return (template or _visit_url_template()) % visit_id


def _visit_url_template() -> str:
    marker = 987654321
    url = settings.SITE_URL + reverse("admin:registry_visit_change", args=[marker])
    return url.replace("%", "%%").replace(str(marker), "%d")


def _lock_site(site: Site) -> bool:
    """Lock the site row for the claim; False when another run holds it (it is
    claiming this site's reminders right now, so this run leaves them to it)."""
    qs = Site.objects.filter(pk=site.pk)
    if connection.features.has_select_for_update_skip_locked:
        qs = qs.select_for_update(skip_locked=True)
    return bool(list(qs.values_list("pk", flat=True)))


def _claim(*, site: Site, day: datetime.date, token: str) -> None:
    """Claim this site's unsent reminders under `token` (inside the site lock)."""
    now = timezone.now()
    addresses = "; ".join(site.reminder_email_list)
    # Failed claims, and claims of a sender that died, are taken over; but only
    # while the visit still needs the reminder (and is still in that window: a
    # moved visit gets a reminder of its own for the new one).
    still_needed = _remindable(site, day).filter(pk=OuterRef("visit_id"),
                                            window_start=OuterRef("window_start"),
                                            window_end=OuterRef("window_end"))
    ReminderLog.objects.filter(site_id=site.pk, kind__in=DIGEST_KINDS).filter(
        Q(status=Status.FAILED) | Q(status=Status.CLAIMED, claimed_at__lt=now - stale_claim())
    ).filter(Exists(still_needed)).update(
        status=Status.CLAIMED, claim_token=token, claimed_at=now, digest_date=day,
        recipients=addresses,
    )
    # One digest per site and local day: once today's is out, new reminders wait
    # for tomorrow (hourly beat runs then send nothing new).
    sent_today = ReminderLog.objects.filter(
        site_id=site.pk, digest_date=day, status__in=[Status.SENT, Status.CLAIMED],
        kind__in=DIGEST_KINDS,
    ).exclude(claim_token=token).exists()
    if sent_today:
        return
    new = [ReminderLog(visit_id=visit_id, site_id=site.pk, kind=kind, window_start=start,
                       window_end=end, status=Status.CLAIMED, digest_date=day, claimed_at=now,
                       claim_token=token, recipients=addresses)
           for visit_id, kind, start, end in reminders_due(site=site, day=day)]
    # ignore_conflicts: a reminder another run claimed in between stays theirs.
    ReminderLog.objects.bulk_create(new, batch_size=5000, ignore_conflicts=True)


def _send(*, site: Site, day: datetime.date, due, overdue, recipients, open_queries=(),
          counts: dict[str, int] | None = None) -> None:
    from .epro import digest_summary  # epro's job reads this module's claim rules

    today = [(cat.label, (counts or {}).get(cat.key, 0)) for cat in worklist.CATEGORIES]
    context = {"site": site, "day": day, "due_soon": due, "overdue": overdue, "today": today,
               "open_queries": open_queries,
               "days_ahead": days_ahead(), "grace_days": grace_days(),
               "site_url": settings.SITE_URL, "epro": digest_summary(site=site, day=day)}
    subject = render_to_string("registry/email/site_digest_subject.txt", context).strip()
    message = EmailMultiAlternatives(
        subject=" ".join(subject.split()),
        body=render_to_string("registry/email/site_digest.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=recipients,
        connection=get_connection(fail_silently=False),
    )
    message.attach_alternative(render_to_string("registry/email/site_digest.html", context),
                               "text/html")
    message.send()


ANOTHER_RUN = "another run is claiming this site"


def site_digest_send(*, site: Site, actor, day: datetime.date | None = None,
                     dry_run: bool = False, now: datetime.datetime | None = None,
                     scheduled_run: bool = False) -> DigestResult:
    """Send the site's digest for `day` (default: the site's today) and mark missed visits.

    Promises: each (visit, kind) reminder is sent at most once per window of the
    visit and, as long as runs keep coming, at least once; at most one digest per
    site and local day (plus retries of a failed one). `scheduled_run` (beat)
    waits for the site's local `REGISTRY_REMINDER_LOCAL_HOUR`. `dry_run` writes
    nothing and sends nothing; it reports what would go out.
    Raises DigestNotSent when the SMTP server refuses (claims marked failed).
    """
    now = now or timezone.now()
    day = day or site_today(site.timezone, now)
    result = DigestResult(site_code=site.code, day=day, dry_run=dry_run,
                          recipients=site.reminder_email_list)
    if scheduled_run and now.astimezone(site.tz).hour < local_hour():
        result.skipped = f"before {local_hour()}:00 at the site"
        return result
    result.worklist = worklist.site_counts(site, day)
    if dry_run:
        # New reminders only; failed ones waiting for a retry are in the admin's log.
        pairs = reminders_due(site=site, day=day)
        visits = {v["pk"]: v for v in Visit.objects.filter(pk__in=[p[0] for p in pairs]).values(
            "pk", "patient__registry_id", "timepoint", "target_date", "window_start",
            "window_end")}
        url = _visit_url_template()
        for visit_id, kind, _start, _end in pairs:
            v = visits[visit_id]
            line = DigestLine(visit_id=visit_id, kind=kind, registry_id=v["patient__registry_id"],
                              timepoint=v["timepoint"], target_date=v["target_date"],
                              window_start=v["window_start"], window_end=v["window_end"],
                              admin_url=visit_admin_url(visit_id, url),
                              state=worklist.window_state(v["window_start"], v["window_end"],
                                                          day) or "")
            (result.due_soon if kind == Kind.DUE_SOON else result.overdue).append(line)
        result.due_soon.sort(key=_line_order)
        result.overdue.sort(key=_line_order)
        result.marked_missed = _past_grace(site=site, day=day).count()
        result.open_queries = queries.digest_queries(site)
        result.skipped = "dry run"
        return result

    if site.reminder_email_list:
        token = uuid.uuid4().hex
        with transaction.atomic():
            if _lock_site(site):
                _claim(site=site, day=day, token=token)
            else:
                result.skipped = ANOTHER_RUN
        mine = ReminderLog.objects.filter(claim_token=token, status=Status.CLAIMED)
        result.due_soon, result.overdue = _lines(mine, day)
        if result.due_soon or result.overdue:
            try:
                result.open_queries = queries.digest_queries(site)
                _send(site=site, day=day, due=result.due_soon, overdue=result.overdue,
                      recipients=site.reminder_email_list, open_queries=result.open_queries,
                      counts=result.worklist)
            except Exception as exc:
                # Released for the next attempt whatever went wrong; only delivery
                # problems (SMTP refusal, connection refused, timeout) are worth a
                # retry, anything else is a bug to see.
                ReminderLog.objects.filter(claim_token=token, status=Status.CLAIMED).update(
                    status=Status.FAILED, attempts=F("attempts") + 1,
                    last_error=f"{type(exc).__name__}: {exc}"[:2000],
                )
                if isinstance(exc, smtplib.SMTPException | OSError):
                    raise DigestNotSent(f"Digest for site {site.code} on {day} not sent: "
                                        f"{type(exc).__name__}: {exc}") from exc
                raise
            mine.update(status=Status.SENT, sent_at=timezone.now(),
                        attempts=F("attempts") + 1, last_error="")
            result.sent = True
        elif not result.skipped:
            result.skipped = "nothing to remind"
    else:
        result.skipped = "no reminder addresses"
    if result.skipped == ANOTHER_RUN:
        # The run holding the claim marks missed visits after it has claimed their
        # overdue reminders; marking them here, before its claim, would lose those.
        return result
    result.marked_missed = visits_mark_missed(site=site, day=day, actor=actor)
    return result


def _past_grace(*, site: Site, day: datetime.date):
    # Overdue for more than the grace days: overdue as of `day` minus the grace.
    return Visit.objects.filter(patient__site_id=site.pk).overdue(
        on=day - datetime.timedelta(days=grace_days()))


def visits_mark_missed(*, site: Site, day: datetime.date, actor) -> int:
    """Mark the site's scheduled visits whose window closed more than the grace
    days before `day` as missed, with history. Rows a person is saving right now
    are skipped (locked) and caught by the next run."""
    marked = 0
    while True:
        with transaction.atomic():
            # In window order, read from the (status, window_end) index: ordered by pk
            # alone, the planner walked the whole primary key looking for the few rows
            # past grace (0.3 s a site at 1M scheduled visits, even with none to mark).
            qs = _past_grace(site=site, day=day).order_by("window_end", "pk")
            if connection.features.has_select_for_update_skip_locked:
                qs = qs.select_for_update(skip_locked=True, of=("self",))
            visits = list(qs[:BATCH])
            if not visits:
                return marked
            for visit in visits:
                visit.status = VisitStatus.MISSED
            record_bulk_update(visits, Visit, ["status"], actor=actor, reason=MISSED_REASON,
                               batch_size=BATCH)
        marked += len(visits)
        if len(visits) < BATCH:
            return marked


def reminders_run(*, actor, day: datetime.date | None = None, sites=None,
                  dry_run: bool = False) -> tuple[list[DigestResult], list[str]]:
    """Run the daily job for `sites` (default: all) synchronously, as the command does.

    Returns the results and the errors of sites whose digest could not be sent
    (the other sites still get theirs). Refuses (ValueError, naming the day) a
    `day` later than today at any of the sites: a future digest would mark
    visits missed that are not yet.
    """
    results, errors = [], []
    sites = list(sites if sites is not None else Site.objects.order_by("code"))
    if day is not None:
        for site in sites:
            today = site_today(site.timezone)
            if day > today:
                raise ValueError(f"{day.isoformat()} is later than today at {site.code} "
                                 f"({today.isoformat()}); a digest can be run for today or a past day.")
    for site in sites:
        try:
            results.append(site_digest_send(site=site, actor=actor, day=day, dry_run=dry_run))
        except DigestNotSent as exc:
            errors.append(str(exc))
    return results, errors

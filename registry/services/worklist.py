"""The nurse's worklist: what is to do at a site today, one definition per category.

The site home page (admin index), the change-list filters it links to and the
daily digest (services/reminders.py) all read the categories below, so the page
and the e-mail count the same rows on every day. Each category is judged on the
site's own day (services/dates.py `site_today`).

| key | what |
| --- | --- |
| overdue | scheduled, the window closed before today (Visit.objects.overdue) |
| open_now | scheduled, the window is open today |
| opening_soon | scheduled, the window opens within REGISTRY_REMINDER_DAYS_AHEAD days (14) |
| no_nrs | completed without the primary NRS |
| open_events | adverse events not closed (ongoing or unknown outcome) |
| open_queries | data queries waiting for the site (queries.open_queries_for, the digest's list) |
| pending_questionnaires | questionnaire link out, unanswered, still working (epro.pending_invitations_for) |

Withdrawn patients have no follow-up due: they are left out of "window open
now" and "opening soon" (as the digest leaves them out of its reminders).

How to add a category: append a
`Category` to `CATEGORIES` with its model, the path to the site id, the rule for
a day (a Q, see the ones below), the admin change list it links to and the
query parameters that filter that list the same way. The home page, the digest
and the tests pick it up; if the change list has no filter for it yet, give it
`admin.filters.worklist_filter(<model>)`, which applies the rule by key.
"""

import datetime
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from registry.models import AdverseEvent, ConsentStatus, DataQuery, EproLink, QueryStatus, Visit, VisitStatus
from registry.models.events import CLOSED_OUTCOMES
from registry.models.visits import overdue_on

from .dates import site_days


def opening_days() -> int:
    """'Opening soon' looks this many days ahead: the digest's REGISTRY_REMINDER_DAYS_AHEAD."""
    return settings.REGISTRY_REMINDER_DAYS_AHEAD


def now() -> datetime.datetime:
    # One place for "now", so a test can put the page and the digest on the same moment.
    return timezone.now()


def _followed_up_visits() -> QuerySet:
    return narrow_followed_up(Visit.objects.all())


def narrow_followed_up(visits: QuerySet) -> QuerySet:
    return visits.exclude(patient__consent_status=ConsentStatus.WITHDRAWN)


def _open_now(day: datetime.date) -> Q:
    return Q(status=VisitStatus.SCHEDULED, window_start__lte=day, window_end__gte=day)


def _opening_soon(day: datetime.date) -> Q:
    return Q(status=VisitStatus.SCHEDULED, window_start__gt=day,
             window_start__lte=day + datetime.timedelta(days=opening_days()))


def _pending_questionnaire(day: datetime.date) -> Q:
    # The rule of epro.figures.pending_invitations_for, on the site's day: a link out,
    # not revoked, not answered, the window not closed for longer than the grace days,
    # and the patient still willing to be contacted.
    from .epro.links import grace_days, may_contact  # epro reads reminders, which read this

    live = EproLink.objects.filter(visit_id=OuterRef("pk"), revoked_at__isnull=True,
                                   submitted_at__isnull=True)
    return (Q(status=VisitStatus.SCHEDULED,
              window_end__gte=day - datetime.timedelta(days=grace_days()))
            & may_contact("patient__", on=day) & Q(Exists(live)))


def window_state(start: datetime.date | None, end: datetime.date | None,
                 day: datetime.date) -> str | None:
    """The visit category (key) of a scheduled visit's window on `day`, for a loaded
    row: the same rules as the Q conditions above (tests/services/test_worklist.py
    keeps them equal)."""
    if start is None or end is None:
        return None
    if end < day:
        return "overdue"
    if start <= day:
        return "open_now"
    if start <= day + datetime.timedelta(days=opening_days()):
        return "opening_soon"
    return None


@dataclass(frozen=True)
class Category:
    key: str
    label: str
    help: str
    model: type
    site_field: str  # the path from the model to its site's id
    rule: Callable[[datetime.date], Q]  # the condition on the site's day
    changelist: str  # admin URL name of the list it links to
    list_params: dict[str, str] = field(default_factory=dict)  # filters of that list
    rows: Callable[[], QuerySet] | None = None  # base rows (default: all of the model)
    action: str = ""  # what the nurse does from the list ("enter visit")
    # Judged against today's real date: not for users who see dates shifted.
    real_day: bool = True
    narrow: Callable[[QuerySet], QuerySet] | None = None  # `rows` applied to a given queryset

    def queryset(self) -> QuerySet:
        return self.rows() if self.rows else self.model._default_manager.all()


CATEGORIES: list[Category] = [
    Category("overdue", "Overdue", "Window closed, visit not recorded.", Visit,
             "patient__site_id", overdue_on, "admin:registry_visit_changelist",
             # Withdrawn patients' overdue visits stay in, as in the overdue list and
             # badges; the daily job marks them missed after the grace days.
             {"follow_up": "overdue"}, None, "Enter visit"),
    Category("open_now", "Window open now", "Scheduled visits whose window is open today.", Visit,
             "patient__site_id", _open_now, "admin:registry_visit_changelist",
             {"follow_up": "open_now"}, _followed_up_visits, "Enter visit",
             narrow=narrow_followed_up),
    Category("opening_soon", "Opening in the next 14 days",
             "Scheduled visits whose window opens within the next 14 days.", Visit,
             "patient__site_id", _opening_soon, "admin:registry_visit_changelist",
             {"follow_up": "opening_soon"}, _followed_up_visits, "Enter visit",
             narrow=narrow_followed_up),
    Category("no_nrs", "Completed without NRS", "Completed visits missing the primary NRS.",
             Visit, "patient__site_id",
             lambda day: Q(status=VisitStatus.COMPLETED, nrs__isnull=True),
             "admin:registry_visit_changelist", {"follow_up": "missing_nrs"}, None, "Add the NRS",
             real_day=False),
    Category("open_events", "Open adverse events", "Ongoing or outcome unknown.", AdverseEvent,
             "patient__site_id", lambda day: ~Q(outcome__in=CLOSED_OUTCOMES),
             "admin:registry_adverseevent_changelist", {"event_status": "open"}, None,
             "Update the event", real_day=False),
    # The queries the digest lists (services/queries.py digest_queries): waiting for the site.
    Category("open_queries", "Open data queries", "The data manager asks about a value.",
             DataQuery, "patient__site_id", lambda day: Q(status=QueryStatus.OPEN),
             "admin:registry_dataquery_changelist", {"status__exact": QueryStatus.OPEN}, None,
             "Answer the query", real_day=False),
    Category("pending_questionnaires", "Pending patient questionnaires",
             "A questionnaire link is out, not answered yet.", Visit, "patient__site_id",
             _pending_questionnaire, "admin:registry_visit_changelist",
             {"follow_up": "questionnaire_pending"}, None, "Remind or enter visit"),
]


def narrowed(cat: Category, queryset: QuerySet) -> QuerySet:
    """`queryset` narrowed to the category's base rows (a change list's own queryset)."""
    return cat.narrow(queryset) if cat.narrow else queryset


def category(key: str) -> Category:
    return next(c for c in CATEGORIES if c.key == key)


def categories_for(model) -> list[Category]:
    return [c for c in CATEGORIES if c.model is model]


def on_site_days(cat: Category, days: dict[datetime.date, list[int]],
                 site_field: str | None = None) -> Q:
    """The category's condition with each site judged on its own day (`days`: site
    ids by the day it is there, services.dates.site_days)."""
    site_field = site_field or cat.site_field
    if not days:
        return Q(pk__in=[])
    if len(days) == 1 or not cat.real_day:
        return cat.rule(next(iter(days)))  # rows() has narrowed to the sites already
    condition = Q()
    for day, ids in days.items():
        condition |= Q(**{f"{site_field}__in": ids}) & cat.rule(day)
    return condition


def rows(cat: Category, days: dict[datetime.date, list[int]]) -> QuerySet:
    """The rows of the category at the sites in `days`, each on its own day."""
    ids = [pk for group in days.values() for pk in group]
    return cat.queryset().filter(**{f"{cat.site_field}__in": ids}).filter(on_site_days(cat, days))


def counts(sites, at: datetime.datetime | None = None) -> dict[int, dict[str, int]]:
    """{site id: {category key: count}} for `sites` ((pk, time zone name) pairs), each
    site on its own day at `at` (default now): one query per category."""
    sites = list(sites)
    days = site_days(sites, at or now())
    out = {pk: {c.key: 0 for c in CATEGORIES} for pk, _tz in sites}
    for cat in CATEGORIES:
        grouped = rows(cat, days).order_by().values(cat.site_field).annotate(n=Count("pk"))
        for row in grouped:
            out[row[cat.site_field]][cat.key] = row["n"]
    return out


def site_counts(site, day: datetime.date) -> dict[str, int]:
    """{category key: count} at one site on its local `day` (the digest's figures)."""
    days = {day: [site.pk]}
    out = {}
    for cat in CATEGORIES:
        out[cat.key] = rows(cat, days).count()
    return out


def next_due_visit(sites, *, after_pk: int | None = None) -> Visit | None:
    """The visit to enter next at `sites` ((pk, time zone name) pairs): overdue first,
    then windows open now, each by the day its window closes ("Save and next due
    visit" on the visit form); None when nothing is due."""
    sites = list(sites)
    days = site_days(sites, now())
    ids = [pk for pk, _tz in sites]
    due = on_site_days(category("overdue"), days) | on_site_days(category("open_now"), days)
    return (narrow_followed_up(Visit.objects.filter(patient__site_id__in=ids)).filter(due)
            .exclude(pk=after_pk or 0).order_by("window_end", "pk").first())

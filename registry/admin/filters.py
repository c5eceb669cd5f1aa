"""Change-list filters nurses use: site, therapy, follow-up due / overdue, missing NRS.

Each filter is a SimpleListFilter built for a path from the listed model to the
patient, so the same filter works on patients, visits and adverse events. The
follow-up filters rely on the (status, window_start / window_end) indexes of
Visit and the partial "completed without NRS" index.

Users who see dates shifted (investigators, services.deid) are not offered
"Due this week" and "Overdue": both compare the real window with today, so they
would tell the real date within days. "Completed without NRS" needs no date.
"""

import datetime

from django.contrib import admin, messages
from django.db.models import BigIntegerField, Exists, ExpressionWrapper, OuterRef, Q
from django.utils import timezone

from registry.models import Implant, Iso14155Class, Therapy, Visit, VisitStatus
from registry.models.choices import RELATED
from registry.models.events import CLOSED_OUTCOMES
from registry.services import access, deid
from registry.services.dates import site_days

DUE_WEEK = "due_week"
OVERDUE = "overdue"
MISSING_NRS = "missing_nrs"


def follow_up_q(kind: str, today: datetime.date | None = None, prefix: str = "") -> Q:
    """Visits that are due this week, overdue, or completed without an NRS.

    Due this week: scheduled, window open today or opening in the next 7 days.
    Overdue: scheduled, window closed before today.
    Missing NRS: completed, no primary NRS recorded.
    "Today" is the site's own day: see `user_site_days` and `FollowUpFilter`.
    """
    today = today or timezone.localdate()
    p = prefix
    if kind == DUE_WEEK:
        return Q(**{f"{p}status": VisitStatus.SCHEDULED,
                    f"{p}window_start__lte": today + datetime.timedelta(days=7),
                    f"{p}window_end__gte": today})
    if kind == OVERDUE:
        return Q(**{f"{p}status": VisitStatus.SCHEDULED, f"{p}window_end__lt": today})
    if kind == MISSING_NRS:
        return Q(**{f"{p}status": VisitStatus.COMPLETED, f"{p}nrs__isnull": True})
    raise ValueError(f"Unknown follow-up filter {kind!r}")


FOLLOW_UP_CHOICES = [
    (DUE_WEEK, "Due this week"),
    (OVERDUE, "Overdue (window closed, not done)"),
    (MISSING_NRS, "Completed without NRS"),
]
REAL_DAY_KINDS = {DUE_WEEK, OVERDUE}  # judged against today's real date
NOT_FILTERED = "The list below is not filtered by it."


def site_filter(path: str):
    """Site filter listing only the user's sites (not every site in the registry)."""

    class SiteFilter(admin.SimpleListFilter):
        title = "site"
        parameter_name = "site"

        def lookups(self, request, model_admin):
            return [(str(s.pk), s.code) for s in access.sites_for(request.user).only("id", "code")]

        def queryset(self, request, queryset):
            if self.value():
                return queryset.filter(**{path: self.value()})
            return queryset

    return SiteFilter


def therapy_filter(patient_field: str):
    """Patients (or their visits / events) with an implant of this therapy."""

    class TherapyFilter(admin.SimpleListFilter):
        title = "therapy"
        parameter_name = "therapy"

        def lookups(self, request, model_admin):
            return Therapy.choices

        def queryset(self, request, queryset):
            if self.value() in Therapy.values:
                return queryset.filter(Exists(Implant.objects.filter(
                    patient_id=OuterRef(patient_field), therapy=self.value())))
            return queryset

    return TherapyFilter


def user_site_days(user) -> dict[datetime.date, list[int]]:
    """The user's sites grouped by the day it is there (one query)."""
    return site_days(access.sites_for(user).values_list("pk", "timezone"))


def site_day_q(kind: str, days: dict[datetime.date, list[int]], site_field: str) -> Q:
    """`follow_up_q(kind)` on visits, with each site's own day.

    Usually every site has the same day and the plain condition stands (the list
    indexes apply unchanged). For the hours when the European sites are already
    a day ahead of New York, the condition is the plain one for "either day"
    (index-friendly, one day wider) narrowed by the one-day edges of each group:
    a branch per day would make the planner give up the index scans on the
    registry-wide lists. `site_field` names the visit's site in the query.
    """
    if len(days) <= 1:
        return follow_up_q(kind, today=next(iter(days), None))
    ordered = sorted(days.items())
    (behind, behind_ids), (ahead, ahead_ids) = ordered[0], ordered[-1]
    if len(days) > 2 or ahead - behind != datetime.timedelta(days=1):
        # Three different days at once (UTC-12 and UTC+14 sites): one branch per day.
        branches = Q()
        for day, ids in ordered:
            branches |= Q(**{f"{site_field}__in": ids}) & follow_up_q(kind, today=day)
        return branches
    at_ahead, at_behind = Q(**{f"{site_field}__in": ahead_ids}), Q(**{f"{site_field}__in": behind_ids})
    week = datetime.timedelta(days=7)
    if kind == OVERDUE:
        # Closed before the ahead day; closing on the behind day is overdue only ahead.
        return follow_up_q(OVERDUE, today=ahead) & (Q(window_end__lt=behind) | at_ahead)
    # Due this week on either day, minus each group's edge that belongs to the other.
    either_day = Q(status=VisitStatus.SCHEDULED, window_start__lte=ahead + week,
                   window_end__gte=behind)
    return either_day & (
        Q(window_start__lte=behind + week, window_end__gte=ahead)
        | at_behind & Q(window_start__lte=behind + week)
        | at_ahead & Q(window_end__gte=ahead))


class VisitFollowUpFilter(admin.SimpleListFilter):
    title = "follow-up"
    parameter_name = "follow_up"

    def __init__(self, request, params, model, model_admin):
        super().__init__(request, params, model, model_admin)
        kind = self.value()
        if kind in REAL_DAY_KINDS and not deid.sees_real_dates(request.user):
            # A link from a nurse (or typed in): ignored, and said so, rather than a
            # list filtered by the real day.
            del self.used_parameters[self.parameter_name]
            label = dict(FOLLOW_UP_CHOICES)[kind]
            messages.warning(request, f"{deid.date_filter_refusal(label, 'use the status filter instead')} "
                                      f"{NOT_FILTERED}")

    def lookups(self, request, model_admin):
        if deid.sees_real_dates(request.user):
            return FOLLOW_UP_CHOICES
        return [(kind, label) for kind, label in FOLLOW_UP_CHOICES if kind not in REAL_DAY_KINDS]

    def filtered(self, queryset, visits: Q, by_site_day: bool):
        return queryset.filter(visits)

    def site_field(self):
        return "patient__site_id"

    def queryset(self, request, queryset):
        kind = self.value()
        if kind == MISSING_NRS:
            return self.filtered(queryset, follow_up_q(kind), False)
        if kind in dict(FOLLOW_UP_CHOICES):
            days = user_site_days(request.user)
            return self.filtered(queryset, site_day_q(kind, days, self.site_field()), len(days) > 1)
        return queryset


class PatientFollowUpFilter(VisitFollowUpFilter):
    """Patients with at least one visit due this week / overdue / missing NRS."""

    def site_field(self):
        return "home_site"  # the patient's site, from the outer query (no join)

    def filtered(self, queryset, visits: Q, by_site_day: bool):
        rows = Visit.objects.filter(patient_id=OuterRef("pk"))
        if by_site_day:
            rows = rows.annotate(home_site=ExpressionWrapper(OuterRef("site_id"),
                                                             output_field=BigIntegerField()))
        return queryset.filter(Exists(rows.filter(visits)))


class IsoClassFilter(admin.SimpleListFilter):
    """ISO 14155 class; derived, so filtered by the fields it is derived from."""

    title = "ISO 14155 class"
    parameter_name = "iso_class"

    def lookups(self, request, model_admin):
        return Iso14155Class.choices

    def queryset(self, request, queryset):
        related = Q(device_relatedness__in=RELATED) | Q(procedure_relatedness__in=RELATED)
        value = self.value()
        if value == Iso14155Class.AE:
            return queryset.filter(serious=False).exclude(related)
        if value == Iso14155Class.ADE:
            return queryset.filter(related, serious=False)
        if value == Iso14155Class.SAE:
            return queryset.filter(serious=True).exclude(related)
        if value == Iso14155Class.SADE:
            return queryset.filter(related, serious=True).exclude(anticipated=False)
        if value == Iso14155Class.USADE:
            return queryset.filter(related, serious=True, anticipated=False)
        return queryset


class EventStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "event_status"

    def lookups(self, request, model_admin):
        return [("open", "Open (ongoing / unknown)"), ("closed", "Closed")]

    def queryset(self, request, queryset):
        if self.value() == "open":
            return queryset.exclude(outcome__in=CLOSED_OUTCOMES)
        if self.value() == "closed":
            return queryset.filter(outcome__in=CLOSED_OUTCOMES)
        return queryset

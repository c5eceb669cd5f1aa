"""Change-list filters nurses use: site, therapy, follow-up due / overdue, missing NRS.

Each filter is a SimpleListFilter built for a path from the listed model to the
patient, so the same filter works on patients, visits and adverse events. What
"due this week", "overdue" and "completed without NRS" mean is Visit's
(VisitQuerySet); the follow-up filters pick one and give it each site's day.

Users who see dates shifted (investigators, services.deid) are not offered
"Due this week" and "Overdue": both compare the real window with today, so they
would tell the real date within days. "Completed without NRS" needs no date.
"""

import datetime

from django.contrib import admin, messages
from django.db.models import BigIntegerField, Exists, ExpressionWrapper, OuterRef, Q

from registry.models import Implant, Iso14155Class, Therapy, Visit
from registry.models.choices import RELATED
from registry.models.events import CLOSED_OUTCOMES
from registry.services import access, deid, worklist
from registry.services.dates import site_days

DUE_WEEK = "due_week"
OVERDUE = "overdue"
MISSING_NRS = "missing_nrs"

OPEN_NOW = "open_now"
QUESTIONNAIRE_PENDING = "questionnaire_pending"
OPENING_SOON = "opening_soon"

FOLLOW_UP_CHOICES = [
    (OVERDUE, "Overdue (window closed, not done)"),
    (OPEN_NOW, "Window open now"),
    (OPENING_SOON, "Window opening in the next 14 days"),
    (DUE_WEEK, "Due this week (window open or opening within 7 days)"),
    (MISSING_NRS, "Completed without NRS"),
    (QUESTIONNAIRE_PENDING, "Questionnaire link out, not answered"),
]
# The worklist's categories (services/worklist.py) behind the home page's links.
WORKLIST_KINDS = {OPEN_NOW: "open_now", OPENING_SOON: "opening_soon",
                  QUESTIONNAIRE_PENDING: "pending_questionnaires"}
# Judged against today's real date:
REAL_DAY_KINDS = {DUE_WEEK, OVERDUE, OPEN_NOW, OPENING_SOON, QUESTIONNAIRE_PENDING}
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
    # The worklist's clock, so a list and the home page count on the same moment.
    return site_days(access.sites_for(user).values_list("pk", "timezone"), worklist.now())


def follow_up(visits, kind: str, days: dict[datetime.date, list[int]], site_field: str):
    """The visits of `visits` in follow-up state `kind`, each site judged on its own day
    (the rules are Visit's, see VisitQuerySet)."""
    if kind == DUE_WEEK:
        return visits.due_this_week(on=days, site_field=site_field)
    if kind == OVERDUE:
        return visits.overdue(on=days, site_field=site_field)
    if kind == MISSING_NRS:
        return visits.completed_without_nrs()
    if kind in WORKLIST_KINDS:
        cat = worklist.category(WORKLIST_KINDS[kind])
        # The home page's count: the same rule and the same rows (withdrawn patients out).
        return worklist.narrowed(cat, visits).filter(worklist.on_site_days(cat, days, site_field))
    raise ValueError(f"Unknown follow-up filter {kind!r}")


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

    def filtered(self, queryset, kind: str, days: dict[datetime.date, list[int]]):
        return follow_up(queryset, kind, days, "patient__site_id")

    def queryset(self, request, queryset):
        kind = self.value()
        if kind == MISSING_NRS:
            return self.filtered(queryset, kind, {})
        if kind in dict(FOLLOW_UP_CHOICES):
            return self.filtered(queryset, kind, user_site_days(request.user))
        return queryset


class PatientFollowUpFilter(VisitFollowUpFilter):
    """Patients with at least one visit due this week / overdue / missing NRS."""

    def filtered(self, queryset, kind: str, days: dict[datetime.date, list[int]]):
        rows = Visit.objects.filter(patient_id=OuterRef("pk"))
        if len(days) > 1:
            # The patient's site, from the outer query (no join).
            rows = rows.annotate(home_site=ExpressionWrapper(OuterRef("site_id"),
                                                             output_field=BigIntegerField()))
        return queryset.filter(Exists(follow_up(rows, kind, days, "home_site")))


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

"""The reminder log in the admin: per site (change list, Site page) and per visit.

Read-only: the log is written only by the reminder job (services.reminders).
Site scoping follows the access rule like every other admin page. Nurses and
data managers only: the rows carry real window and digest dates, which
investigators do not see (services.deid), so for them the log, its pages and
its inlines are not there.
"""

import datetime

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from registry.models import ReminderLog, Site
from registry.services import access, deid

from .filters import site_filter

LOG_FIELDS = ["kind", "window", "status", "digest_date", "sent_at", "attempts", "recipients",
              "last_error"]
SITE_PAGE_DAYS = 30  # a site page shows the last month; the change list has the rest


def _visit_link(log: ReminderLog) -> str:
    if log.visit_id is None:  # a safety alert: about an adverse event
        url = reverse("admin:registry_adverseevent_change", args=[log.adverse_event_id])
        return format_html('<a href="{}">{} adverse event</a>', url,
                           log.adverse_event.patient.registry_id)
    url = reverse("admin:registry_visit_change", args=[log.visit_id])
    return format_html('<a href="{}">{} {}</a>', url, log.visit.patient.registry_id,
                       log.visit.timepoint_label)


def may_see_log(request) -> bool:
    return access.role_name(request.user) is not None and deid.sees_real_dates(request.user)


class ReadOnlyLog:
    # A visit moved to a new window is reminded again: the window tells the rows apart.
    @admin.display(description="window", ordering="window_start")
    def window(self, obj):
        return f"{obj.window_start:%Y-%m-%d} to {obj.window_end:%Y-%m-%d}"

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ReminderLog)
class ReminderLogAdmin(ReadOnlyLog, admin.ModelAdmin):
    list_display = ["digest_date", "site", "visit_link", "kind", "window", "status", "attempts",
                    "sent_at"]
    list_filter = [site_filter("site_id"), "status", "kind", "digest_date"]  # her sites only
    list_select_related = ["site", "visit__patient", "adverse_event__patient"]
    search_fields = ["visit__patient__registry_id"]
    search_help_text = "Registry id"
    date_hierarchy = "digest_date"
    fields = ["site", "visit_link", *LOG_FIELDS, "claimed_at", "claim_token"]
    readonly_fields = fields

    def get_queryset(self, request):
        return access.visible(super().get_queryset(request), request.user)

    def has_module_permission(self, request):
        return may_see_log(request)

    def has_view_permission(self, request, obj=None):
        return may_see_log(request)

    @admin.display(description="visit", ordering="visit__patient__registry_id")
    def visit_link(self, obj):
        return _visit_link(obj)


class ReminderLogInline(ReadOnlyLog, admin.TabularInline):
    """Reminders about this visit, or this site's reminders of the last month."""

    model = ReminderLog
    extra = 0
    can_delete = False
    verbose_name = "reminder sent"
    verbose_name_plural = "reminders (from the daily follow-up digest)"

    def get_fields(self, request, obj=None):
        return (["visit_link"] if self.parent_model is Site else []) + LOG_FIELDS

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj)

    def get_queryset(self, request):
        qs = access.visible(super().get_queryset(request), request.user).select_related(
            "visit__patient", "adverse_event__patient")
        if self.parent_model is Site:
            since = datetime.date.today() - datetime.timedelta(days=SITE_PAGE_DAYS)
            qs = qs.filter(digest_date__gte=since)
        return qs

    def has_view_permission(self, request, obj=None):
        return may_see_log(request)

    @admin.display(description="visit")
    def visit_link(self, obj):
        return _visit_link(obj)

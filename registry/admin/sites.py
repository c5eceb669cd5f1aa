"""Sites in the admin: data managers add and change them; everyone sees her own."""

from django.contrib import admin

from registry.models import Site
from registry.services import access

from .base import RegistryAdmin

try:  # written by the reminders issue; the admin works without it
    from .reminders import ReminderLogInline
except ImportError:  # pragma: no cover - depends on the other module landing
    ReminderLogInline = None


@admin.register(Site)
class SiteAdmin(RegistryAdmin):
    list_display = ["code", "name", "country", "timezone"]
    search_fields = ["code", "name"]
    inlines = [ReminderLogInline] if ReminderLogInline else []

    def has_add_permission(self, request):
        return access.is_data_manager(request.user)

    def has_change_permission(self, request, obj=None):
        return access.is_data_manager(request.user)

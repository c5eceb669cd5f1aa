"""Sites in the admin: data managers add and change them; everyone sees her own."""

from django.contrib import admin

from registry.models import Site
from registry.services import access

from .base import RegistryAdmin
from .reminders import ReminderLogInline


@admin.register(Site)
class SiteAdmin(RegistryAdmin):
    list_display = ["code", "name", "country", "timezone"]
    search_fields = ["code", "name"]
    inlines = [ReminderLogInline]

    def has_add_permission(self, request):
        return access.is_data_manager(request.user)

    def has_change_permission(self, request, obj=None):
        return access.is_data_manager(request.user)

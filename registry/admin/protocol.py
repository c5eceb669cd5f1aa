"""The follow-up protocol in the admin: timepoints and windows, edited by data managers."""

from django.contrib import admin

from registry.models import FollowUpProtocol, ProtocolTimepoint
from registry.services import access
from registry.services.audit import record_delete, record_save

from .base import RegistryAdmin, RegistryTabularInline


class ProtocolTimepointInline(RegistryTabularInline):
    model = ProtocolTimepoint
    fields = ["months", "window_before_days", "window_after_days"]

    def has_add_permission(self, request, obj=None):
        return access.is_data_manager(request.user)

    has_change_permission = has_delete_permission = has_add_permission


@admin.register(FollowUpProtocol)
class FollowUpProtocolAdmin(RegistryAdmin):
    list_display = ["name", "is_default"]
    inlines = [ProtocolTimepointInline]

    def get_queryset(self, request):
        return FollowUpProtocol.objects.all()

    def has_add_permission(self, request):
        return access.is_data_manager(request.user)

    def has_change_permission(self, request, obj=None):
        return access.is_data_manager(request.user)

    def save_formset(self, request, form, formset, change):
        reason = self.reason_of(form, change, default="Protocol edited")
        for obj in formset.save(commit=False):
            record_save(obj, actor=request.user, reason=reason)
        for obj in formset.deleted_objects:
            # The deletion row of the history keeps who and why, like every other delete.
            record_delete(obj, actor=request.user, reason=reason or "Timepoint removed from the protocol")

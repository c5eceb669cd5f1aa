"""The follow-up protocol in the admin: timepoints and windows, edited by data managers.

After a save, the data manager sees how many visits already scheduled from the protocol
would move, and chooses on a page of their own whether to move them (with a reason):
services/protocol_changes.py.
"""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from registry.models import FollowUpProtocol, ProtocolTimepoint
from registry.services import access, protocol_changes
from registry.services.audit import record_delete, record_save

from .base import RegistryAdmin, RegistryTabularInline


class ProtocolTimepointInline(RegistryTabularInline):
    model = ProtocolTimepoint
    fields = ["months", "window_before_days", "window_after_days"]

    def has_add_permission(self, request, obj=None):
        return access.is_data_manager(request.user)

    has_change_permission = has_delete_permission = has_add_permission


class MoveSchedulesForm(forms.Form):
    choice = forms.ChoiceField(
        label="The visits already scheduled", widget=forms.RadioSelect,
        choices=[("move", "Move them to the protocol's new windows (and add its new timepoints)"),
                 ("keep", "Leave them as they are (only new implants follow the new protocol)")])
    reason = forms.CharField(max_length=255, required=False, widget=forms.TextInput(attrs={"size": 60}),
                             help_text="Goes into the history of every moved visit.")

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("choice") == "move" and not (cleaned.get("reason") or "").strip():
            self.add_error("reason", "Give the reason for moving the scheduled visits.")
        return cleaned


@admin.register(FollowUpProtocol)
class FollowUpProtocolAdmin(RegistryAdmin):
    list_display = ["name", "is_default"]
    inlines = [ProtocolTimepointInline]

    def get_urls(self):
        return [
            path("<int:protocol_id>/move-schedules/", self.admin_site.admin_view(self.move_view),
                 name="registry_followupprotocol_move"),
        ] + super().get_urls()

    def _preview_message(self, request, protocol):
        preview = protocol_changes.protocol_move_preview(protocol=protocol)
        if preview.moving or preview.implants_gaining:
            url = reverse("admin:registry_followupprotocol_move", args=[protocol.pk])
            messages.warning(request, format_html(
                "{} scheduled visit(s) of {} implant(s) follow the old windows; {} implant(s) have "
                "no visit yet for a timepoint of the protocol. They stay as they are until you "
                "<a href=\"{}\" id=\"move-schedules-link\">choose to move them</a>.",
                preview.moving, preview.implants_moving, preview.implants_gaining, url))

    def response_change(self, request, obj):
        self._preview_message(request, obj)
        return super().response_change(request, obj)

    def move_view(self, request, protocol_id):
        """The preview and the explicit choice: move the scheduled visits, or keep them."""
        if not access.is_data_manager(request.user):
            raise PermissionDenied("Only data managers change protocols.")
        protocol = get_object_or_404(FollowUpProtocol, pk=protocol_id)
        form = MoveSchedulesForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            if form.cleaned_data["choice"] == "keep":
                messages.info(request, "The scheduled visits were left as they are.")
            else:
                change = protocol_changes.protocol_schedules_move(
                    protocol=protocol, actor=request.user, reason=form.cleaned_data["reason"])
                messages.success(request, f"{change.moved} scheduled visit(s) moved, {change.created} "
                                          f"added, {change.stopped} stopped (after a follow-up stop).")
            return redirect("admin:registry_followupprotocol_change", protocol.pk)
        context = {**self.admin_site.each_context(request), "opts": self.model._meta,
                   "title": f"Scheduled visits of {protocol}", "protocol": protocol, "form": form,
                   "preview": protocol_changes.protocol_move_preview(protocol=protocol)}
        return TemplateResponse(request, "admin/registry/followupprotocol/move.html", context,
                                status=400 if form.is_bound else 200)

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

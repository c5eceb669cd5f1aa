"""Implants (therapy episodes), their revisions and device identifiers in the admin.

Writes go through services.implants.implant_save (it keeps the follow-up
schedule in step); device serials are identifiers (IdentifierAdmin).
"""

from django.contrib import admin

from registry.models import DeviceIdentifier, Implant, Revision
from registry.services import access
from registry.services.implants import implant_save

from .base import BackToPatientMixin, IdentifierAdmin, RegistryAdmin
from .filters import site_filter
from .queries import QueriesOnRecordMixin


@admin.register(Implant)
class ImplantAdmin(QueriesOnRecordMixin, BackToPatientMixin, RegistryAdmin):
    list_display = ["ref", "patient", "therapy", "implant_date", "paradigm", "explant_date"]
    list_filter = [site_filter("patient__site_id"), "therapy", "paradigm"]
    search_fields = ["ref", "patient__registry_id"]
    list_select_related = ["patient"]
    readonly_fields = ["ref"]
    autocomplete_fields = ["patient"]
    ordering = ["-pk"]
    fieldsets = [
        ("Implant", {"fields": ["patient", "ref", "therapy"]}),
        ("Trial", {"fields": ["trial_start", "trial_end", "trial_success", "trial_criterion"]}),
        ("Device", {"fields": ["implant_date", "manufacturer", "model", "lead_type", "lead_count",
                               "target", "ipg_rechargeable", "ipg_location", "paradigm"]}),
        ("Explant", {"fields": ["explant_date", "explant_reason"]}),
        ("Reason for change", {"fields": ["change_reason", "edit_version"]}),
    ]

    def save_model(self, request, obj, form, change):
        self.check_site(request, obj)
        if not self.needs_save(obj, form, change):
            return
        implant_save(
            implant=obj,
            actor=request.user,
            reason=self.reason_of(form, change),
            expected_version=form.cleaned_data.get("edit_version") if change else None,
        )


@admin.register(Revision)
class RevisionAdmin(RegistryAdmin):
    list_display = ["implant", "date", "reason"]
    raw_id_fields = ["implant"]
    list_select_related = ["implant__patient"]  # the registry id keys an investigator's shift


@admin.register(DeviceIdentifier)
class DeviceIdentifierAdmin(IdentifierAdmin):
    list_display = ["implant", "component"]
    raw_id_fields = ["implant"]
    list_select_related = ["implant"]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(
            implant__patient__site_id__in=access.identifier_site_ids(request.user))

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "implant":
            kwargs["queryset"] = Implant.objects.filter(
                patient__site_id__in=access.identifier_site_ids(request.user))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

"""Implants (therapy episodes), their revisions and device identifiers in the admin.

Writes go through services.implants.implant_save (it keeps the follow-up
schedule in step); device serials are identifiers (IdentifierAdmin).
"""

from django.contrib import admin

from registry.models import (
    DeviceComponent,
    DeviceIdentifier,
    Implant,
    ProgrammingSession,
    Revision,
    RevisionComponent,
)
from registry.services import access
from registry.services.components import revision_components_sync
from registry.services.implants import implant_save

from .base import BackToPatientMixin, IdentifierAdmin, RegistryAdmin, clinical_inline
from .filters import site_filter
from .queries import QueriesOnRecordMixin


class DeviceComponentInline(clinical_inline(admin.TabularInline)):
    model = DeviceComponent
    fields = ["kind", "manufacturer", "model", "udi_di", "rechargeable", "implanted_on",
              "removed_on", "removal_reason", "removal_detail"]
    extra = 0
    verbose_name_plural = "device components (IPG, leads, extensions; serials and UDI-PI under " \
                          "device identifiers)"


class ProgrammingSessionInline(clinical_inline(admin.TabularInline)):
    model = ProgrammingSession
    fields = ["date", "paradigm", "frequency_hz", "pulse_width_us", "amplitude_min_ma",
              "amplitude_max_ma", "contacts", "closed_loop_target_uv", "recharge_interval_days"]
    extra = 0
    verbose_name_plural = "programming sessions (the latest is the current settings; the " \
                          "electrode configuration is free text, kept at the site)"


class RevisionComponentInline(clinical_inline(admin.TabularInline)):
    model = RevisionComponent
    fields = ["component", "action"]
    extra = 1
    verbose_name_plural = "components this revision touched"

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        revision = getattr(request, "_registry_revision", None)
        if db_field.name == "component" and revision is not None:
            field.queryset = field.queryset.filter(implant_id=revision.implant_id)
        return field


@admin.register(Implant)
class ImplantAdmin(QueriesOnRecordMixin, BackToPatientMixin, RegistryAdmin):
    list_display = ["ref", "patient", "therapy", "implant_date", "paradigm", "explant_date"]
    list_filter = [site_filter("patient__site_id"), "therapy", "paradigm"]
    search_fields = ["ref", "patient__registry_id"]
    list_select_related = ["patient"]
    readonly_fields = ["ref"]
    autocomplete_fields = ["patient"]
    ordering = ["-pk"]
    inlines = [DeviceComponentInline, ProgrammingSessionInline]
    fieldsets = [
        ("Implant", {"fields": ["patient", "ref", "therapy"]}),
        ("Trial", {"fields": ["trial_start", "trial_end", "trial_success", "trial_criterion"]}),
        ("Device", {"fields": ["implant_date", "manufacturer", "model", "lead_type", "lead_count",
                               "target", "ipg_rechargeable", "ipg_location", "paradigm"]}),
        ("Explant", {"fields": ["explant_date", "explant_reason_code", "explant_reason"]}),
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


@admin.register(DeviceComponent)
class DeviceComponentAdmin(RegistryAdmin):
    """Components are entered on their implant's page; this list finds them across implants."""

    list_display = ["implant", "kind", "manufacturer", "model", "udi_di", "implanted_on", "removed_on",
                    "removal_reason"]
    list_filter = [site_filter("implant__patient__site_id"), "kind", "removal_reason"]
    search_fields = ["implant__ref", "model", "udi_di"]
    list_select_related = ["implant__patient"]
    raw_id_fields = ["implant"]
    ordering = ["-pk"]


@admin.register(ProgrammingSession)
class ProgrammingSessionAdmin(RegistryAdmin):
    """Sessions are entered on their implant's page; this list finds them across implants."""

    list_display = ["implant", "date", "paradigm", "frequency_hz", "pulse_width_us",
                    "amplitude_max_ma"]
    list_filter = [site_filter("implant__patient__site_id"), "paradigm"]
    search_fields = ["implant__ref"]
    list_select_related = ["implant__patient"]
    raw_id_fields = ["implant"]
    ordering = ["-pk"]


@admin.register(Revision)
class RevisionAdmin(RegistryAdmin):
    list_display = ["implant", "date", "reason_code"]
    raw_id_fields = ["implant"]
    list_select_related = ["implant__patient"]  # the registry id keys an investigator's shift
    inlines = [RevisionComponentInline]
    fields = ["implant", "date", "reason_code", "reason", "description", "change_reason",
              "edit_version"]

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        request._registry_revision = obj  # the component choices: this implant's only
        return obj

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        # Components removed or replaced take the revision's date and reason.
        revision_components_sync(revision=form.instance, actor=request.user,
                                 reason=self.reason_of(form, change, default="Revision"))


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

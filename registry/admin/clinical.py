from django.contrib import admin

from registry.models import (
    AdverseEvent,
    DeviceIdentifier,
    FollowUpProtocol,
    Implant,
    PainScore,
    Patient,
    PatientIdentifiers,
    ProtocolTimepoint,
    RegistryRole,
    Revision,
    Site,
    Visit,
)
from registry.services import access
from registry.services.audit import record_save
from registry.services.patients import patient_enrol, patient_save

from .base import RegistryAdmin


@admin.register(Site)
class SiteAdmin(RegistryAdmin):
    list_display = ["code", "name", "country", "timezone"]
    search_fields = ["code", "name"]

    def has_add_permission(self, request):
        return access.is_data_manager(request.user)

    def has_change_permission(self, request, obj=None):
        return access.is_data_manager(request.user)


@admin.register(Patient)
class PatientAdmin(RegistryAdmin):
    list_display = ["registry_id", "site", "sex", "birth_year", "etiology", "diagnosis",
                    "consent_status"]
    list_filter = ["site", "etiology", "diagnosis", "consent_status"]
    search_fields = ["registry_id"]
    list_select_related = ["site"]
    readonly_fields = ["registry_id"]

    def save_model(self, request, obj, form, change):
        if change:
            return patient_save(
                patient=obj, actor=request.user,
                reason=form.cleaned_data.get("change_reason") or "",
                expected_version=form.cleaned_data.get("edit_version"),
            )
        patient_enrol(patient=obj, actor=request.user,
                      reason=form.cleaned_data.get("change_reason") or "Enrolled in admin")


@admin.register(PatientIdentifiers)
class PatientIdentifiersAdmin(RegistryAdmin):
    list_display = ["patient", "record_number"]
    search_fields = ["patient__registry_id"]

    def get_queryset(self, request):
        # Identifiers: only the patient's own site, never investigators.
        qs = super().get_queryset(request)
        return qs.filter(patient__site_id__in=[
            s for s in access.member_site_ids(request.user)
            if access.can_see_identifiers(request.user, s)
        ])


@admin.register(Implant)
class ImplantAdmin(RegistryAdmin):
    list_display = ["ref", "patient", "therapy", "implant_date", "explant_date"]
    list_filter = ["therapy", "patient__site"]
    search_fields = ["ref", "patient__registry_id"]
    list_select_related = ["patient"]
    readonly_fields = ["ref"]
    raw_id_fields = ["patient"]

    def save_model(self, request, obj, form, change):
        from registry.services.implants import implant_save

        implant_save(
            implant=obj,
            actor=request.user,
            reason=form.cleaned_data.get("change_reason") or ("" if change else "Created in admin"),
            expected_version=form.cleaned_data.get("edit_version") if change else None,
        )


@admin.register(Revision)
class RevisionAdmin(RegistryAdmin):
    list_display = ["implant", "date", "reason"]
    raw_id_fields = ["implant"]


@admin.register(DeviceIdentifier)
class DeviceIdentifierAdmin(RegistryAdmin):
    list_display = ["implant", "component"]
    raw_id_fields = ["implant"]

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        return qs.filter(implant__patient__site_id__in=[
            s for s in access.member_site_ids(request.user)
            if access.can_see_identifiers(request.user, s)
        ])


@admin.register(Visit)
class VisitAdmin(RegistryAdmin):
    list_display = ["patient", "timepoint", "target_date", "date_done", "status", "nrs"]
    list_filter = ["status", "patient__site"]
    search_fields = ["patient__registry_id"]
    list_select_related = ["patient"]
    raw_id_fields = ["patient", "implant"]


@admin.register(PainScore)
class PainScoreAdmin(RegistryAdmin):
    list_display = ["visit", "pain_site", "recall", "score"]
    raw_id_fields = ["visit"]


@admin.register(AdverseEvent)
class AdverseEventAdmin(RegistryAdmin):
    list_display = ["patient", "onset_date", "category", "serious", "severity", "iso_class"]
    list_filter = ["category", "serious", "patient__site"]
    search_fields = ["patient__registry_id"]
    list_select_related = ["patient"]
    raw_id_fields = ["patient", "implant"]

    @admin.display(description="ISO 14155 class")
    def iso_class(self, obj):
        return obj.iso_class


class ProtocolTimepointInline(admin.TabularInline):
    model = ProtocolTimepoint
    extra = 0
    fields = ["months", "window_before_days", "window_after_days"]


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
        for obj in formset.save(commit=False):
            record_save(obj, actor=request.user,
                        reason=form.cleaned_data.get("change_reason") or "Protocol edited")
        for obj in formset.deleted_objects:
            obj._history_user = request.user
            obj.delete()


@admin.register(RegistryRole)
class RegistryRoleAdmin(admin.ModelAdmin):
    list_display = ["user", "role", "all_sites"]
    filter_horizontal = ["sites"]

    def has_module_permission(self, request):
        return access.is_data_manager(request.user)

    has_view_permission = has_add_permission = has_change_permission = (
        lambda self, request, obj=None: access.is_data_manager(request.user)
    )
    has_delete_permission = has_change_permission

"""Device deficiencies and safety follow-up reports in the admin (events.py has the
adverse event itself, with its follow-ups inline)."""

from django.contrib import admin

from registry.models import DeviceDeficiency, SafetyFollowUp
from registry.services.safety import deficiency_reportability, device_deficiency_record

from .base import BackToPatientMixin, PatientSearchMixin, RegistryAdmin, badge
from .filters import site_filter


@admin.register(DeviceDeficiency)
class DeviceDeficiencyAdmin(PatientSearchMixin, BackToPatientMixin, RegistryAdmin):
    list_display = ["patient", "observed_on", "kind", "might_have_led_to_serious", "adverse_event"]
    list_filter = [site_filter("patient__site_id"), "kind", "might_have_led_to_serious"]
    search_fields = ["patient__registry_id"]
    list_select_related = ["patient", "adverse_event"]
    autocomplete_fields = ["patient", "implant", "adverse_event"]
    readonly_fields = ["reportability_explained"]
    ordering = ["-pk"]
    fields = ["patient", "implant", "component", "adverse_event", "observed_on", "awareness_date",
              "kind", "might_have_led_to_serious", "imdrf_device_problem", "description",
              "reportability_explained", "reported_on", "change_reason", "edit_version"]

    def save_model(self, request, obj, form, change):
        self.check_site(request, obj)
        if not self.needs_save(obj, form, change):
            return
        device_deficiency_record(deficiency=obj, actor=request.user,
                                 reason=self.reason_of(form, change),
                                 expected_version=form.cleaned_data.get("edit_version") if change
                                 else None)

    @admin.display(description="reportability (derived)")
    def reportability_explained(self, obj):
        if obj is None or not obj.pk:
            return "Derived when saved."
        report = deficiency_reportability(obj)
        if not report.reportable:
            return report.basis
        return badge(f"{report.basis}: report by {report.deadline:%Y-%m-%d}", "#ba2121")


@admin.register(SafetyFollowUp)
class SafetyFollowUpAdmin(RegistryAdmin):
    list_display = ["adverse_event", "report_date", "outcome"]
    list_select_related = ["adverse_event__patient"]
    raw_id_fields = ["adverse_event"]
    ordering = ["-pk"]

    def has_add_permission(self, request):
        return False  # entered on the adverse event's page (it sets the event's outcome)

    def has_change_permission(self, request, obj=None):
        return False

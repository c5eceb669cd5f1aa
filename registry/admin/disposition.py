"""Dispositions and contact attempts in the admin; saving goes through
services.disposition (lost to follow-up needs the attempts; the schedule follows)."""

from django.contrib import admin
from django.core.exceptions import ValidationError

from registry.models import ContactAttempt, Disposition
from registry.services.disposition import (
    contact_attempt_record,
    disposition_check,
    disposition_delete,
    disposition_record,
)

from . import dates
from .base import BackToPatientMixin, PatientSearchMixin, RegistryAdmin
from .filters import site_filter


class DispositionForm(RegistryAdmin.form):
    def clean(self):
        cleaned = super().clean()
        if not (cleaned.get("change_reason") or "").strip():
            self.add_error("change_reason", "Give the reason for this disposition; it is kept in "
                                            "the history.")
        return cleaned

    def _post_clean(self):
        super()._post_clean()
        if not self.errors and self.instance.patient_id:
            try:
                disposition_check(self.instance)
            except ValidationError as exc:
                self._update_errors(exc)


@admin.register(Disposition)
class DispositionAdmin(PatientSearchMixin, BackToPatientMixin, RegistryAdmin):
    form = DispositionForm
    list_display = ["patient_link", "status", "date", "withdrawal_level", "death_cause"]
    list_filter = [site_filter("patient__site_id"), "status"]
    search_fields = ["patient__registry_id"]
    list_select_related = ["patient"]
    autocomplete_fields = ["patient"]
    ordering = ["-pk"]
    fieldsets = [
        ("Disposition", {"fields": ["patient", "status", "date"]}),
        ("Withdrawal", {"fields": ["withdrawal_level", "withdrawal_reason"]}),
        ("Transfer", {"fields": ["transferred_to"]}),
        ("Death", {"fields": ["death_cause", "death_device_relatedness",
                              "death_procedure_relatedness"]}),
        ("Notes", {"fields": ["note"]}),
        ("Reason", {"fields": ["change_reason", "edit_version"]}),
    ]

    @admin.display(description="patient", ordering="patient__registry_id")
    def patient_link(self, obj):
        return obj.patient.registry_id

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "transferred_to":
            # Any site of the registry may receive a patient (not only the nurse's own).
            from registry.models import Site

            kwargs["queryset"] = Site.objects.order_by("code")
            return admin.ModelAdmin.formfield_for_foreignkey(self, db_field, request, **kwargs)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        self.check_site(request, obj)
        if not self.needs_save(obj, form, change):
            return
        disposition_record(disposition=obj, actor=request.user, reason=self.reason_of(form, change),
                           expected_version=form.cleaned_data.get("edit_version") if change else None)

    def delete_model(self, request, obj):
        dates.refuse_if_shifted(obj)
        disposition_delete(disposition=obj, actor=request.user,
                           reason=getattr(request, "registry_delete_reason", "") or "Deleted in admin")

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ValidationError as exc:
            # Lost without the attempts, a disposition after a death: said on the page.
            from django.contrib import messages
            from django.http import HttpResponseRedirect

            messages.error(request, " ".join(exc.messages))
            return HttpResponseRedirect(request.get_full_path())


@admin.register(ContactAttempt)
class ContactAttemptAdmin(PatientSearchMixin, BackToPatientMixin, RegistryAdmin):
    list_display = ["patient_link", "date", "method", "outcome", "visit"]
    list_filter = [site_filter("patient__site_id"), "method", "outcome"]
    search_fields = ["patient__registry_id"]
    list_select_related = ["patient", "visit"]
    autocomplete_fields = ["patient", "visit"]
    ordering = ["-pk"]
    fields = ["patient", "visit", "date", "method", "outcome", "note", "change_reason",
              "edit_version"]

    @admin.display(description="patient", ordering="patient__registry_id")
    def patient_link(self, obj):
        return obj.patient.registry_id

    def save_model(self, request, obj, form, change):
        self.check_site(request, obj)
        if not self.needs_save(obj, form, change):
            return
        contact_attempt_record(attempt=obj, actor=request.user, reason=self.reason_of(form, change),
                               expected_version=form.cleaned_data.get("edit_version") if change
                               else None)

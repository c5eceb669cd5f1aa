"""Patients in the admin: the patient page is the nurse's hub (implants, visits,
adverse events at a glance, with links to enter data); identifiers are a
separate, restricted inline and page.

All writes go through the services (patient_enrol / patient_save); all
querysets through services.access (see base).
"""

import datetime

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, Subquery
from django.http import Http404, HttpResponse
from django.urls import path, reverse

from registry.models import (
    AdverseEvent,
    Implant,
    Patient,
    PatientIdentifiers,
    PriorTreatment,
    Visit,
    VisitStatus,
    timepoint_sort_key,
)
from registry.services import access, summary_pdf
from registry.services.dates import site_today
from registry.services.patients import patient_enrol, patient_save

from . import dates
from .base import (
    IdentifierAdmin,
    PatientSearchMixin,
    RegistryAdmin,
    RegistryStackedInline,
    badge,
)
from .epro import hub_questionnaires
from .events import SERIOUS_CLASSES
from .filters import PatientFollowUpFilter, site_filter, therapy_filter
from .forms import ClinicalForm
from .queries import QueriesOnRecordMixin


class PatientIdentifiersInline(RegistryStackedInline):
    model = PatientIdentifiers
    fields = ["record_number", "full_name", "phone", "email", "address"]
    can_delete = False
    extra = max_num = 1
    verbose_name_plural = "identifiers (only your site sees these)"

    def _allowed(self, request, obj):
        if obj is not None and obj.pk:
            return access.can_see_identifiers(request.user, obj.site_id)
        return bool(access.identifier_site_ids(request.user))

    def has_view_permission(self, request, obj=None):
        return self._allowed(request, obj)

    def has_add_permission(self, request, obj=None):
        return self._allowed(request, obj)

    def has_change_permission(self, request, obj=None):
        return self._allowed(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False  # identifiers are edited, not removed (and a delete right would show them)

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        user = request.user

        class IdentifierFormSet(formset):
            def clean(self):
                super().clean()
                site_id = self.instance.site_id
                if self.has_changes() and site_id and not access.can_see_identifiers(user, site_id):
                    raise forms.ValidationError(
                        "Identifiers can only be entered by staff of the patient's own site.")

        return IdentifierFormSet


class PatientForm(ClinicalForm):
    prior_treatments = forms.MultipleChoiceField(
        choices=PriorTreatment.choices, required=False, widget=forms.CheckboxSelectMultiple,
        help_text="Treatments tried before the implant.")

    class Meta:
        model = Patient
        fields = "__all__"


def _next_due_subquery():
    return Visit.objects.filter(patient_id=OuterRef("pk"), status=VisitStatus.SCHEDULED) \
        .order_by("target_date")


@admin.register(Patient)
class PatientAdmin(QueriesOnRecordMixin, PatientSearchMixin, RegistryAdmin):
    form = PatientForm
    patient_path = ""
    list_display = ["registry_id", "site_code", "therapy", "diagnosis", "consent_status",
                    "next_due", "follow_up_flag"]
    list_filter = [site_filter("site_id"), therapy_filter("pk"), "consent_status",
                   PatientFollowUpFilter, "diagnosis"]
    search_fields = ["registry_id"]
    search_help_text = "Registry id (e.g. NIJ-0007), or the hospital record number of a " \
                       "patient of your own site."
    list_select_related = ["site"]
    ordering = ["registry_id"]
    inlines = [PatientIdentifiersInline]
    shifted_annotations = ["next_due_date", "next_due_window_end"]  # shifted with the row
    fieldsets = [
        ("Patient", {"fields": ["site", "registry_id", "sex", "birth_year", "enrolment",
                                "consent_date", "consent_status", "withdrawal_date"]}),
        ("Pain", {"fields": ["etiology", "diagnosis", "affected_region", "side",
                             "pain_duration_months", "amputation_level", "amputation_cause",
                             "prior_treatments"]}),
        ("Questionnaire links (consent to be contacted)",
         {"fields": ["epro_consent_date", "epro_channel", "epro_language"],
          "description": "No questionnaire link is sent without the date of consent; clear it "
                         "when the patient withdraws it."}),
        ("Reason for change", {"fields": ["change_reason", "edit_version"]}),
    ]

    def get_list_display(self, request):
        fields = list(super().get_list_display(request))
        if dates.shifts_dates(request):
            # "Overdue" compares the real window with today: it would tell the real date.
            fields.remove("follow_up_flag")
        return fields

    def get_readonly_fields(self, request, obj=None):
        fields = [*super().get_readonly_fields(request, obj), "registry_id"]
        if obj is not None and not access.is_data_manager(request.user):
            # A data manager who tries to move a patient is told why it cannot (Patient.clean).
            fields.append("site")
        return fields

    def get_changeform_initial_data(self, request):
        initial = super().get_changeform_initial_data(request)
        sites = list(access.sites_for(request.user).values_list("pk", flat=True)[:2])
        if len(sites) == 1:
            initial.setdefault("site", sites[0])
        return initial

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        # Only for the list: one row each, two small correlated sub-queries per page row.
        return qs.annotate(
            latest_therapy=Subquery(Implant.objects.filter(patient_id=OuterRef("pk"))
                                    .order_by("-implant_date", "-pk").values("therapy")[:1]),
            next_due_date=Subquery(_next_due_subquery().values("target_date")[:1]),
            next_due_window_end=Subquery(_next_due_subquery().values("window_end")[:1]),
        )

    @admin.display(description="site", ordering="site__code")
    def site_code(self, obj):
        return obj.site.code

    @admin.display(description="therapy")
    def therapy(self, obj):
        return getattr(obj, "latest_therapy", None) or "-"

    @admin.display(description="next visit due", ordering="next_due_date")
    def next_due(self, obj):
        return getattr(obj, "next_due_date", None) or "-"

    @admin.display(description="follow-up")
    def follow_up_flag(self, obj):
        # The next visit due, as far as the list loaded it: scheduled, and its window's end.
        next_due = Visit(status=VisitStatus.SCHEDULED, window_end=getattr(obj, "next_due_window_end", None))
        if next_due.is_overdue(site_today(obj.site.timezone)):
            return badge("overdue", "#ba2121")
        return ""

    def save_model(self, request, obj, form, change):
        self.check_site(request, obj)
        if change:
            if not self.needs_save(obj, form, change):
                return None
            return patient_save(
                patient=obj, actor=request.user,
                reason=self.reason_of(form, change),
                expected_version=form.cleaned_data.get("edit_version"),
            )
        patient_enrol(patient=obj, actor=request.user,
                      reason=self.reason_of(form, change, default="Enrolled in admin"))

    def get_urls(self):
        return [
            path("<int:patient_id>/summary.pdf", self.admin_site.admin_view(self.summary_pdf_view),
                 name="registry_patient_summary_pdf"),
        ] + super().get_urls()

    def summary_pdf_view(self, request, patient_id):
        """The patient summary PDF (services/summary_pdf.py): another site's patient is a 404."""
        patient = access.patients_for(request.user).select_related("site").filter(pk=patient_id).first()
        if patient is None:
            raise Http404("No such patient.")
        try:
            pdf = summary_pdf.patient_summary_pdf(patient=patient, user=request.user)
        except PermissionDenied:
            raise Http404("No such patient.") from None
        response = HttpResponse(pdf, content_type="application/pdf")
        response["Content-Disposition"] = f'inline; filename="summary-{patient.registry_id}.pdf"'
        return response

    # The hub: everything about the patient at a glance, with links to enter data.
    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and obj.pk:
            context["hub"] = self.hub(request, obj)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def hub(self, request, patient):
        today = site_today(patient.site.timezone)  # the site's day, not the server's
        # Investigators: no "overdue" (it compares the real window with today) and
        # every date shifted; the order is the same, one shift moves all of them.
        real_dates = not dates.shifts_dates(request)
        implants = list(Implant.objects.filter(patient=patient).order_by("implant_date", "pk"))
        visits = sorted(
            Visit.objects.filter(patient=patient).select_related("implant"),
            key=lambda v: (v.target_date or v.date_done or datetime.date.min,
                           timepoint_sort_key(v.timepoint)),
        )
        events = list(AdverseEvent.objects.filter(patient=patient).order_by("-onset_date"))
        scheduled = [v for v in visits if v.status == VisitStatus.SCHEDULED and v.target_date]
        next_due = min(scheduled, key=lambda v: v.target_date) if scheduled else None
        for v in visits:
            v.overdue = real_dates and v.is_overdue(today)
        next_due_overdue = bool(real_dates and next_due and next_due.is_overdue(today))
        if not real_dates:
            for row in (*implants, *visits, *events):
                # The rows' patient is this one: no query for the registry id.
                if hasattr(row, "patient_id"):
                    row.patient = patient
                dates.shift_in_place(row)
        for e in events:
            e.serious_class = e.iso_class in SERIOUS_CLASSES
        can_edit = access.can_edit(request.user, patient.site_id)
        current = [i for i in implants if not i.explant_date]
        therapy = ", ".join(f"{i.get_therapy_display()} ({i.therapy})" for i in current) or (
            "explanted" if implants else "no implant recorded")
        visit_list = reverse("admin:registry_visit_changelist")
        return {
            "patient": patient,
            "therapy": therapy,
            "implants": implants,
            "visits": visits,
            "events": events,
            "next_due": next_due,
            "next_due_overdue": next_due_overdue,
            "can_edit": can_edit,
            "add_implant": reverse("admin:registry_implant_add") + f"?patient={patient.pk}",
            "add_visit": reverse("admin:registry_visit_add") + f"?patient={patient.pk}",
            "add_event": reverse("admin:registry_adverseevent_add") + f"?patient={patient.pk}",
            "back": f"_changelist_filters=patient%3D{patient.pk}",
            "visit_list": f"{visit_list}?patient={patient.pk}",
            "questionnaires": hub_questionnaires(request, patient),
        }


@admin.register(PatientIdentifiers)
class PatientIdentifiersAdmin(IdentifierAdmin):
    list_display = ["patient", "record_number"]
    search_fields = ["patient__registry_id", "=record_number"]
    list_select_related = ["patient"]
    autocomplete_fields = ["patient"]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(
            patient__site_id__in=access.identifier_site_ids(request.user))

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "patient":
            kwargs["queryset"] = Patient.objects.filter(site_id__in=access.identifier_site_ids(request.user))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

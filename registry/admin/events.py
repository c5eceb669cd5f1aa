"""Adverse events in the admin, with their derived ISO 14155 class."""

import json
from functools import partial

from celery import current_app
from django.contrib import admin
from django.db import transaction
from django.http import StreamingHttpResponse
from django.utils.html import format_html

from registry.models import AdverseEvent, Iso14155Class, Relatedness, SafetyFollowUp, iso14155_class
from registry.models.choices import RELATED
from registry.services.safety import event_reportability
from registry.services.safety.tabulation import safety_tabulation_file

from .base import BackToPatientMixin, PatientSearchMixin, RegistryAdmin, badge, clinical_inline
from .filters import EventStatusFilter, IsoClassFilter, site_filter, therapy_filter
from .queries import QueriesOnRecordMixin

SERIOUS_CLASSES = {Iso14155Class.SAE, Iso14155Class.SADE, Iso14155Class.USADE}
ALERT_TASK = "registry.tasks.send_safety_alert"


class SafetyFollowUpInline(clinical_inline(admin.TabularInline)):
    model = SafetyFollowUp
    fields = ["report_date", "outcome", "resolved_on", "note"]
    extra = 0
    verbose_name_plural = "follow-up reports (the latest sets the outcome)"


def enqueue_alert(event_id: int) -> None:
    # By name: channels do not import each other (the task lives in registry.tasks).
    current_app.tasks[ALERT_TASK].delay(event_id)


@admin.register(AdverseEvent)
class AdverseEventAdmin(QueriesOnRecordMixin, PatientSearchMixin, BackToPatientMixin, RegistryAdmin):
    list_display = ["patient_link", "onset_date", "category", "iso_class_badge", "severity",
                    "outcome", "resolved_on"]
    list_filter = [site_filter("patient__site_id"), therapy_filter("patient_id"), "serious",
                   IsoClassFilter, EventStatusFilter, "category"]
    search_fields = ["patient__registry_id"]
    search_help_text = "Registry id, or the hospital record number of a patient of your own site."
    list_select_related = ["patient"]
    autocomplete_fields = ["patient", "implant"]
    readonly_fields = ["iso_class_explained", "reportability_explained"]
    inlines = [SafetyFollowUpInline]
    ordering = ["-onset_date", "-pk"]
    fieldsets = [
        ("Event", {"fields": ["patient", "implant", "onset_date", "awareness_date", "category",
                              "description"]}),
        ("Seriousness and causality", {"fields": [
            "serious", "serious_criterion", "severity", "device_relatedness",
            "procedure_relatedness", "anticipated", "iso_class_explained"]}),
        ("Action and outcome", {"fields": ["action", "outcome", "resolved_on"]}),
        ("Reporting (MDR Art. 87) and IMDRF codes", {"fields": [
            "public_health_threat", "reportability_explained", "reported_on", "imdrf_device_problem",
            "imdrf_clinical_signs", "imdrf_health_impact"]}),
        ("Reason for change", {"fields": ["change_reason", "edit_version"]}),
    ]

    @admin.display(description="patient", ordering="patient__registry_id")
    def patient_link(self, obj):
        return obj.patient.registry_id

    @admin.display(description="ISO 14155 class")
    def iso_class_badge(self, obj):
        cls = obj.iso_class
        if cls in SERIOUS_CLASSES:
            return badge(cls, "#ba2121")
        return cls

    class Media:
        js = ["registry/iso-class.js"]

    actions = ["safety_tabulation_csv", "safety_tabulation_xlsx"]

    def _tabulation(self, request, queryset, fmt):
        # The selected rows of the list (already scoped to the user's sites); the
        # tabulation keeps the serious and related ones (services.safety.tabulation).
        chunks, name, content_type = safety_tabulation_file(user=request.user, events=queryset, fmt=fmt)
        response = StreamingHttpResponse(chunks, content_type=content_type)
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description="Safety tabulation of the selected events (CSV)")
    def safety_tabulation_csv(self, request, queryset):
        return self._tabulation(request, queryset, "csv")

    @admin.action(description="Safety tabulation of the selected events (Excel)")
    def safety_tabulation_xlsx(self, request, queryset):
        return self._tabulation(request, queryset, "xlsx")

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if obj.iso_class in SERIOUS_CLASSES:
            # The alert goes once (the reminder log decides), after the save commits.
            transaction.on_commit(partial(enqueue_alert, obj.pk))

    def save_formset(self, request, form, formset, change):
        if formset.model is SafetyFollowUp:
            from registry.services.safety import follow_up_record

            reason = self.reason_of(form, change, default="Follow-up report")
            for row in formset.save(commit=False):
                follow_up_record(follow_up=row, actor=request.user, reason=reason)
            return
        super().save_formset(request, form, formset, change)

    @admin.display(description="reportability (derived)")
    def reportability_explained(self, obj):
        if obj is None or not obj.pk:
            return "Derived when saved, from the class, the outcome and the awareness date."
        report = event_reportability(obj)
        if not report.reportable:
            return report.basis
        return badge(f"{report.basis}: report by {report.deadline:%Y-%m-%d} ({report.days} days "
                     f"from awareness)", "#ba2121")

    @admin.display(description="ISO 14155 class (derived)")
    def iso_class_explained(self, obj):
        # Shown live while the form is filled in (registry/iso-class.js): the script looks
        # the class up in a table made here by iso14155_class, the one definition.
        if obj is None or not obj.pk:
            shown = "Derived from serious, relatedness and anticipated."
        else:
            cls = Iso14155Class(obj.iso_class)
            text = f"{cls.value} – {cls.label}"
            shown = badge(text, "#ba2121") if cls in SERIOUS_CLASSES else text
        return format_html('<span id="iso-class-live" data-table="{}" data-related="{}">{}</span>',
                           json.dumps(iso_class_table()), json.dumps(sorted(RELATED)), shown)


def iso_class_table() -> dict[str, dict[str, str]]:
    """"serious|related|unanticipated" (0/1 each) -> the class and its label."""
    table = {}
    for serious in (0, 1):
        for related in (0, 1):
            for unanticipated in (0, 1):
                cls = Iso14155Class(iso14155_class(
                    serious=bool(serious),
                    device_relatedness=Relatedness.POSSIBLE if related else Relatedness.NOT_RELATED,
                    procedure_relatedness=Relatedness.NOT_RELATED,
                    anticipated=False if unanticipated else None))
                table[f"{serious}|{related}|{unanticipated}"] = {
                    "code": cls.value, "text": f"{cls.value} – {cls.label}",
                    "serious": cls in SERIOUS_CLASSES}
    return table

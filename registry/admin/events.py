"""Adverse events in the admin, with their derived ISO 14155 class."""

import json

from django.contrib import admin
from django.utils.html import format_html

from registry.models import AdverseEvent, Iso14155Class, Relatedness, iso14155_class
from registry.models.choices import RELATED

from .base import BackToPatientMixin, PatientSearchMixin, RegistryAdmin, badge
from .filters import EventStatusFilter, IsoClassFilter, site_filter, therapy_filter
from .queries import QueriesOnRecordMixin

SERIOUS_CLASSES = {Iso14155Class.SAE, Iso14155Class.SADE, Iso14155Class.USADE}


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
    readonly_fields = ["iso_class_explained"]
    ordering = ["-onset_date", "-pk"]
    fieldsets = [
        ("Event", {"fields": ["patient", "implant", "onset_date", "category", "description"]}),
        ("Seriousness and causality", {"fields": [
            "serious", "serious_criterion", "severity", "device_relatedness",
            "procedure_relatedness", "anticipated", "iso_class_explained"]}),
        ("Action and outcome", {"fields": ["action", "outcome", "resolved_on"]}),
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

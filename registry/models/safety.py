"""The safety workflow beyond the adverse event itself: device deficiencies (with or
without an adverse event) and follow-up reports on an event until it is closed."""

from django.core.exceptions import ValidationError
from django.db import models

from . import imdrf
from .base import ClinicalModel, history, today_anywhere
from .choices import AeOutcome, DeficiencyKind
from .components import DeviceComponent
from .events import AdverseEvent
from .implants import Implant
from .patients import Patient


class DeviceDeficiency(ClinicalModel):
    """ISO 14155:2020 3.19: an inadequacy of a device in identity, quality, durability,
    reliability, usability, safety or performance (malfunctions, use errors, inadequate
    information supplied), whether or not it harmed anyone."""

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="device_deficiencies")
    implant = models.ForeignKey(Implant, on_delete=models.PROTECT, related_name="device_deficiencies")
    component = models.ForeignKey(DeviceComponent, null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="deficiencies")
    adverse_event = models.ForeignKey(AdverseEvent, null=True, blank=True, on_delete=models.SET_NULL,
                                      related_name="device_deficiencies",
                                      help_text="Empty: a deficiency without an adverse event.")
    observed_on = models.DateField()
    awareness_date = models.DateField(null=True, blank=True,
                                      help_text="Empty = the day it was observed.")
    kind = models.CharField(max_length=12, choices=DeficiencyKind.choices)
    reported_on = models.DateField("reported to the authority on", null=True, blank=True,
                                   help_text="The day the report went out (safety tabulation).")
    might_have_led_to_serious = models.BooleanField(
        "might have led to a serious adverse device effect", default=False,
        help_text="Had circumstances been less fortunate, or without intervention (MDCG 2020-10/1).")
    imdrf_device_problem = models.CharField("IMDRF device problem (Annex A)", max_length=10, blank=True)
    description = models.TextField(blank=True, help_text="Free text; never exported.")
    history = history()

    class Meta:
        ordering = ["patient__registry_id", "observed_on", "pk"]
        verbose_name_plural = "device deficiencies"

    def __str__(self):
        return f"{self.get_kind_display()} ({self.observed_on})"

    def clean(self):
        errors = {}
        if self.awareness_date is None and self.observed_on:
            self.awareness_date = self.observed_on
        self.imdrf_device_problem = (self.imdrf_device_problem or "").strip().upper()
        if self.imdrf_device_problem and not imdrf.valid("A", self.imdrf_device_problem):
            errors["imdrf_device_problem"] = (f"'{self.imdrf_device_problem}' is not an IMDRF "
                                              f"Annex A code (such as A040101).")
        if self.reported_on and self.awareness_date and self.reported_on < self.awareness_date:
            errors["reported_on"] = (f"Report date {self.reported_on} is before the awareness "
                                     f"{self.awareness_date}.")
        for name in ("observed_on", "awareness_date", "reported_on"):
            value = getattr(self, name)
            if value and value > today_anywhere():
                errors[name] = f"{value} is in the future."
        if self.awareness_date and self.observed_on and self.awareness_date < self.observed_on:
            errors["awareness_date"] = f"Awareness {self.awareness_date} is before it was observed."
        if self.implant_id and self.patient_id and self.implant.patient_id != self.patient_id:
            errors["implant"] = f"Implant {self.implant.ref} belongs to another patient."
        if self.component_id and self.implant_id and self.component.implant_id != self.implant_id:
            errors["component"] = "This component belongs to another implant."
        if self.adverse_event_id and self.patient_id and \
                self.adverse_event.patient_id != self.patient_id:
            errors["adverse_event"] = "This adverse event belongs to another patient."
        if errors:
            raise ValidationError(errors)


class SafetyFollowUp(ClinicalModel):
    """A follow-up report on an adverse event: what is known on its date. The last one
    closing the event (resolved, with sequelae, fatal) is the final report."""

    adverse_event = models.ForeignKey(AdverseEvent, on_delete=models.CASCADE,
                                      related_name="follow_ups")
    report_date = models.DateField()
    outcome = models.CharField(max_length=20, choices=AeOutcome.choices)
    resolved_on = models.DateField(null=True, blank=True)
    note = models.TextField(blank=True, help_text="Free text; never exported.")
    history = history()

    class Meta:
        ordering = ["adverse_event", "report_date", "pk"]

    def __str__(self):
        return f"Follow-up of {self.report_date}: {self.get_outcome_display()}"

    def clean(self):
        errors = {}
        if self.report_date and self.report_date > today_anywhere():
            errors["report_date"] = f"Report date {self.report_date} is in the future."
        event = self.adverse_event if self.adverse_event_id else None
        if event and self.report_date and self.report_date < event.onset_date:
            errors["report_date"] = f"Report date {self.report_date} is before the onset {event.onset_date}."
        if self.resolved_on and self.report_date and self.resolved_on > self.report_date:
            errors["resolved_on"] = "The resolution cannot be after the report."
        if errors:
            raise ValidationError(errors)

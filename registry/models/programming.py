"""Programming sessions of an implant: the stimulation settings chosen on a day.

The latest session of an implant (latest date, then the one entered last) is its
current settings: `ProgrammingSession.objects.latest_of(...)` and the implants dataset
read it. Ranges are what current SCS/DRG/PNS systems offer (tonic 2-1,200 Hz, burst
40/500 Hz, 10 kHz; pulse width 10-1,000 us; amplitude up to 25.5 mA), wide enough for
every system and narrow enough to catch a unit typed wrong (kHz for Hz, ms for us).
The electrode configuration (`contacts`) is free text: the contact numbering differs
per lead model, so no code list fits; it stays at the site like any free text.
"""

from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import OuterRef, Subquery

from .base import ClinicalModel, history
from .choices import Paradigm
from .implants import Implant
from .plausibility import future_errors

FREQUENCY_HZ = (1, 10_000)
PULSE_WIDTH_US = (10, 1_000)
AMPLITUDE_MA = (Decimal("0"), Decimal("25.5"))
ECAP_TARGET_UV = (1, 2_000)
RECHARGE_DAYS = (1, 365)


def _between(low, high):
    return [MinValueValidator(low), MaxValueValidator(high)]


class ProgrammingSessionQuerySet(models.QuerySet):
    def latest_first(self):
        return self.order_by("implant_id", "-date", "-pk")


def latest_session_value(field: str, implant_ref: str = "pk"):
    """A subquery: `field` of the latest session of the implant at OuterRef(implant_ref)."""
    return Subquery(ProgrammingSession.objects.filter(implant_id=OuterRef(implant_ref))
                    .order_by("-date", "-pk").values(field)[:1])


class ProgrammingSession(ClinicalModel):
    implant = models.ForeignKey(Implant, on_delete=models.CASCADE, related_name="programming_sessions")
    date = models.DateField("date of programming")
    paradigm = models.CharField(max_length=8, choices=Paradigm.choices)
    frequency_hz = models.DecimalField("frequency (Hz)", max_digits=7, decimal_places=1, null=True,
                                       blank=True, validators=_between(*FREQUENCY_HZ),
                                       help_text="Burst: the burst rate (e.g. 40).")
    pulse_width_us = models.PositiveSmallIntegerField("pulse width (µs)", null=True, blank=True,
                                                      validators=_between(*PULSE_WIDTH_US))
    amplitude_min_ma = models.DecimalField("amplitude from (mA)", max_digits=4, decimal_places=2,
                                           null=True, blank=True, validators=_between(*AMPLITUDE_MA))
    amplitude_max_ma = models.DecimalField("amplitude up to (mA)", max_digits=4, decimal_places=2,
                                           null=True, blank=True, validators=_between(*AMPLITUDE_MA),
                                           help_text="The range the patient may use; one value: "
                                                     "give it in both.")
    contacts = models.CharField("electrode configuration", max_length=100, blank=True,
                                help_text="E.g. +3 -4 -5 on lead 1. Free text; never exported.")
    closed_loop_target_uv = models.PositiveSmallIntegerField(
        "closed-loop target (µV)", null=True, blank=True, validators=_between(*ECAP_TARGET_UV),
        help_text="ECAP amplitude the closed loop holds; closed-loop only.")
    recharge_interval_days = models.PositiveSmallIntegerField(
        "recharge every (days)", null=True, blank=True, validators=_between(*RECHARGE_DAYS),
        help_text="Rechargeable IPGs.")
    note = models.TextField(blank=True, help_text="Free text; never exported.")
    history = history()
    objects = ProgrammingSessionQuerySet.as_manager()

    class Meta:
        ordering = ["implant", "date", "pk"]
        indexes = [models.Index(fields=["implant", "date"], name="programming_implant_date")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(amplitude_min_ma__isnull=True) | models.Q(amplitude_max_ma__isnull=True)
                | models.Q(amplitude_min_ma__lte=models.F("amplitude_max_ma")),
                name="programming_amplitude_range"),
        ]

    def __str__(self):
        return f"{self.get_paradigm_display()} on {self.date}" + (
            f" ({self.implant.ref})" if self.implant_id else "")

    def clean(self):
        errors = {}
        implant = self.implant if self.implant_id else None
        patient = implant.patient if implant else None
        errors.update(future_errors({"date": ("Date of programming", self.date)}, patient))
        start = implant and (implant.trial_start or implant.implant_date)
        if self.date and start and self.date < start and "date" not in errors:
            errors["date"] = (f"Date of programming {self.date} is before the "
                              f"{'trial' if implant.trial_start else 'implant'} ({start}).")
        if self.date and implant and implant.explant_date and self.date > implant.explant_date:
            errors["date"] = (f"Date of programming {self.date} is after the explant "
                              f"({implant.explant_date}).")
        low, high = self.amplitude_min_ma, self.amplitude_max_ma
        if low is not None and high is not None and low > high:
            errors["amplitude_max_ma"] = f"Amplitude up to {high} mA is below the amplitude from {low} mA."
        if self.closed_loop_target_uv is not None and self.paradigm != Paradigm.CLOSED_LOOP:
            errors["closed_loop_target_uv"] = "Only a closed-loop (ECAP) session has a target."
        if self.paradigm == Paradigm.HF10 and self.frequency_hz is not None and self.frequency_hz < 1000:
            errors["frequency_hz"] = (f"{self.frequency_hz} Hz is not high frequency; give Hz "
                                      f"(10 kHz = 10000).")
        if self.recharge_interval_days is not None and implant and implant.ipg_rechargeable is False:
            errors["recharge_interval_days"] = "The implant's IPG is not rechargeable."
        if errors:
            raise ValidationError(errors)

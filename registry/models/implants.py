from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q

from .base import ClinicalModel, history
from .choices import IpgLocation, LeadType, Paradigm, Therapy
from .patients import Patient


class Implant(ClinicalModel):
    """One therapy episode: trial, implant, device, revisions, explant."""

    ref = models.CharField(
        "implant ref",
        max_length=30,
        unique=True,
        help_text="Stable key of this implant, e.g. NIJ-0007-I1 (used in bundles and exports).",
    )
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="implants")
    therapy = models.CharField(max_length=3, choices=Therapy.choices)
    trial_start = models.DateField(null=True, blank=True)
    trial_end = models.DateField(null=True, blank=True)
    trial_success = models.BooleanField(null=True, blank=True)
    trial_criterion = models.CharField(
        max_length=200, blank=True, default=">= 50 % pain relief during the trial"
    )
    implant_date = models.DateField(null=True, blank=True, db_index=True)
    manufacturer = models.CharField(max_length=100, blank=True)
    model = models.CharField(max_length=100, blank=True)
    lead_type = models.CharField(max_length=12, choices=LeadType.choices, blank=True)
    lead_count = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(8)]
    )
    target = models.CharField(
        max_length=100, blank=True, help_text="Vertebral level, DRG level or peripheral nerve."
    )
    ipg_rechargeable = models.BooleanField(null=True, blank=True)
    ipg_location = models.CharField(max_length=10, choices=IpgLocation.choices, blank=True)
    paradigm = models.CharField(max_length=8, choices=Paradigm.choices, blank=True)
    explant_date = models.DateField(null=True, blank=True)
    explant_reason = models.CharField(max_length=200, blank=True)
    history = history()

    class Meta:
        ordering = ["patient__registry_id", "ref"]
        constraints = [
            models.CheckConstraint(
                condition=Q(explant_date__isnull=True)
                | Q(implant_date__isnull=True)
                | Q(explant_date__gte=F("implant_date")),
                name="implant_explant_after_implant",
            ),
            models.CheckConstraint(
                condition=Q(trial_end__isnull=True)
                | Q(trial_start__isnull=True)
                | Q(trial_end__gte=F("trial_start")),
                name="implant_trial_end_after_start",
            ),
            models.CheckConstraint(
                condition=Q(lead_count__isnull=True) | Q(lead_count__gte=1, lead_count__lte=8),
                name="implant_lead_count_range",
            ),
        ]

    def __str__(self):
        return f"{self.ref} {self.therapy}"

    @property
    def is_explanted(self) -> bool:
        return self.explant_date is not None

    def clean(self):
        errors = {}
        if self.explant_date and not self.implant_date:
            errors["explant_date"] = "An explant date needs an implant date."
        if self.explant_date and self.implant_date and self.explant_date < self.implant_date:
            errors["explant_date"] = (
                f"Explant date {self.explant_date} is before the implant date {self.implant_date}."
            )
        if self.explant_date and not self.explant_reason:
            errors["explant_reason"] = "Give the reason for the explant."
        if self.trial_end and self.trial_start and self.trial_end < self.trial_start:
            errors["trial_end"] = (
                f"Trial end {self.trial_end} is before the trial start {self.trial_start}."
            )
        if self.implant_date and self.trial_start and self.implant_date < self.trial_start:
            errors["implant_date"] = (
                f"Implant date {self.implant_date} is before the trial start {self.trial_start}."
            )
        if errors:
            raise ValidationError(errors)


class Revision(ClinicalModel):
    implant = models.ForeignKey(Implant, on_delete=models.CASCADE, related_name="revisions")
    date = models.DateField()
    reason = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    history = history()

    class Meta:
        ordering = ["implant", "date"]

    def __str__(self):
        return f"Revision of {self.implant.ref} on {self.date}"

    def clean(self):
        implant_date = self.implant.implant_date if self.implant_id else None
        if self.date and implant_date and self.date < implant_date:
            raise ValidationError(
                {"date": f"Revision date {self.date} is before the implant date {implant_date}."}
            )


class DeviceIdentifier(ClinicalModel):
    """Device serial numbers and UDI: identifiers under HIPAA, so restricted like
    PatientIdentifiers."""

    implant = models.ForeignKey(Implant, on_delete=models.CASCADE, related_name="device_ids")
    component = models.CharField(max_length=50, help_text="IPG, lead 1, lead 2, ...")
    serial_number = models.CharField(max_length=100, blank=True)
    udi = models.CharField("UDI", max_length=200, blank=True)
    history = history()

    class Meta:
        ordering = ["implant", "component"]

    def __str__(self):
        return f"{self.component} of {self.implant.ref}"

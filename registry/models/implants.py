import datetime

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, OuterRef, Q, Subquery

from .base import ClinicalModel, history
from .choices import Enrolment, IpgLocation, LeadType, Paradigm, RemovalReason, Therapy
from .patients import Patient
from .plausibility import future_errors, overlap_message


class ImplantQuerySet(models.QuerySet):
    def first_first(self):
        """Implants in the order that makes the first one the patient's first implant: the
        earliest implant date; implants not implanted yet after them, in the order entered."""
        return self.order_by(F("implant_date").asc(nulls_last=True), "pk")


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
    explant_reason_code = models.CharField("explant reason", max_length=20,
                                           choices=RemovalReason.choices, blank=True)
    explant_reason = models.CharField("explant reason (detail)", max_length=200, blank=True,
                                      help_text="Free text; never exported.")
    history = history()
    objects = ImplantQuerySet.as_manager()

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
        if self.explant_date and not self.explant_reason_code and self.explant_reason:
            # A reason typed without a code (older bundles, the API) is kept as the detail.
            self.explant_reason_code = RemovalReason.OTHER
        if self.explant_date and not self.explant_reason_code:
            errors["explant_reason_code"] = "Give the reason for the explant."
            # Also at the detail: a bundle without the code column reports it there.
            errors["explant_reason"] = ("Give the reason for the explant: its code, or the "
                                        "detail for another reason.")
        if self.explant_reason_code and not self.explant_date:
            if self.explant_reason:
                errors["explant_date"] = "An explant reason is given; give the explant date too."
            else:
                self.explant_reason_code = ""  # the explant undone (date and detail cleared)
        if self.explant_reason_code == RemovalReason.OTHER and self.explant_date \
                and not self.explant_reason:
            errors["explant_reason"] = "Say what the other reason was."
        if self.trial_end and self.trial_start and self.trial_end < self.trial_start:
            errors["trial_end"] = (
                f"Trial end {self.trial_end} is before the trial start {self.trial_start}."
            )
        if self.implant_date and self.trial_start and self.implant_date < self.trial_start:
            errors["implant_date"] = (
                f"Implant date {self.implant_date} is before the trial start {self.trial_start}."
            )
        elif self.implant_date and self.trial_end and self.implant_date < self.trial_end:
            errors["implant_date"] = (
                f"Implant date {self.implant_date} is before the end of the trial "
                f"({self.trial_end}); the implant follows the trial."
            )
        patient = self.patient if self.patient_id else None
        if (self.trial_start and patient is not None and patient.consent_date
                and patient.enrolment != Enrolment.RETROSPECTIVE
                and self.trial_start < patient.consent_date):
            errors["trial_start"] = (
                f"Trial start {self.trial_start} is before the patient's consent "
                f"({patient.consent_date}); only a retrospective patient has a trial before consent."
            )
        if self.explant_date and self.pk and self.pk > 0 and "explant_date" not in errors:
            last = _latest_revision_after(self, self.explant_date)
            if last is not None:
                errors["explant_date"] = (
                    f"Explant date {self.explant_date} is before the revision of {last.date}; "
                    "a revision is within the implant's life."
                )
        for name, message in future_errors({
            "trial_start": ("Trial start", self.trial_start),
            "trial_end": ("Trial end", self.trial_end),
            "implant_date": ("Implant date", self.implant_date),
            "explant_date": ("Explant date", self.explant_date),
        }, patient).items():
            errors.setdefault(name, message)
        if "implant_date" not in errors and patient is not None and patient.pk and patient.pk > 0:
            message = overlap_message(self, _other_implants(patient, self))
            if message:
                errors["implant_date"] = message
        if errors:
            raise ValidationError(errors)

    # Possible but unusual (plausibility.py): the admin asks to confirm, the import reports.
    TRIAL_DAYS_UNUSUAL = 60
    TRIAL_TO_IMPLANT_DAYS_UNUSUAL = 365

    def unusual(self) -> dict[str, str]:
        found = {}
        if self.trial_start and self.trial_end and \
                (self.trial_end - self.trial_start).days > self.TRIAL_DAYS_UNUSUAL:
            found["trial_end"] = (
                f"Trial end {self.trial_end}: a trial of {(self.trial_end - self.trial_start).days} "
                f"days (from {self.trial_start}) is unusually long (more than "
                f"{self.TRIAL_DAYS_UNUSUAL})."
            )
        if self.trial_end and self.implant_date and \
                (self.implant_date - self.trial_end).days > self.TRIAL_TO_IMPLANT_DAYS_UNUSUAL:
            found["implant_date"] = (
                f"Implant date {self.implant_date} is {(self.implant_date - self.trial_end).days} "
                f"days after the end of the trial ({self.trial_end}): unusually late (more than "
                f"{self.TRIAL_TO_IMPLANT_DAYS_UNUSUAL})."
            )
        return found


def _prefetched(obj, name: str):
    """The rows `prefetch_related(name)` put on `obj`, or None (not prefetched): the data
    checks hand clean() each patient's implants and each implant's revisions that way,
    instead of one query per row (services.checks)."""
    return getattr(obj, "_prefetched_objects_cache", {}).get(name)


def _other_implants(patient, implant):
    cached = _prefetched(patient, "implants")
    if cached is None:
        return patient.implants.exclude(pk=implant.pk or 0)
    return [other for other in cached if other.pk != (implant.pk or 0)]


def _latest_revision_after(implant, day):
    cached = _prefetched(implant, "revisions")
    if cached is None:
        return implant.revisions.filter(date__gt=day).order_by("-date").first()
    later = [revision for revision in cached if revision.date > day]
    return max(later, key=lambda revision: revision.date) if later else None


def first_implant(patient) -> "Implant | None":
    """The patient's first implant (see ImplantQuerySet.first_first), or None."""
    cached = _prefetched(patient, "implants")
    if cached is not None:  # the same order as first_first, in Python
        return min(cached, key=lambda i: (i.implant_date is None, i.implant_date or datetime.date.min,
                                          i.pk), default=None)
    return patient.implants.first_first().first()


def first_implant_value(field: str, patient_ref: str = "patient") -> Subquery:
    """SQL: `field` of the patient's first implant, for the patient at `patient_ref` of the
    outer query (the same rule as `first_implant`)."""
    return Subquery(Implant.objects.filter(patient=OuterRef(patient_ref)).first_first()
                    .values(field)[:1])


class Revision(ClinicalModel):
    implant = models.ForeignKey(Implant, on_delete=models.CASCADE, related_name="revisions")
    date = models.DateField()
    reason_code = models.CharField("reason", max_length=20, choices=RemovalReason.choices,
                                   default=RemovalReason.OTHER)
    reason = models.CharField("reason (detail)", max_length=200, blank=True,
                              help_text="Free text; never exported.")
    description = models.TextField(blank=True)
    history = history()

    class Meta:
        ordering = ["implant", "date"]

    def __str__(self):
        return f"Revision of {self.implant.ref} on {self.date}"

    def clean(self):
        errors = {}
        implant = self.implant if self.implant_id else None
        implant_date = implant.implant_date if implant else None
        explant_date = implant.explant_date if implant else None
        if self.date and implant_date and self.date < implant_date:
            errors["date"] = f"Revision date {self.date} is before the implant date {implant_date}."
        elif self.date and explant_date and self.date > explant_date:
            errors["date"] = (f"Revision date {self.date} is after the explant ({explant_date}); a "
                              "revision is within the implant's life.")
        else:
            errors.update(future_errors({"date": ("Revision date", self.date)},
                                        implant.patient if implant else None))
        if self.reason_code == RemovalReason.OTHER and not self.reason:
            errors["reason"] = "Say what the other reason was."
        if errors:
            raise ValidationError(errors)


class DeviceIdentifier(ClinicalModel):
    """Device serial numbers and UDI: identifiers under HIPAA, so restricted like
    PatientIdentifiers."""

    implant = models.ForeignKey(Implant, on_delete=models.CASCADE, related_name="device_ids")
    component = models.CharField(max_length=50, help_text="IPG, lead 1, lead 2, ...")
    device_component = models.ForeignKey(
        "registry.DeviceComponent", null=True, blank=True, on_delete=models.CASCADE,
        related_name="identifiers", help_text="The component row these identifiers belong to.")
    serial_number = models.CharField(max_length=100, blank=True)
    udi = models.CharField("UDI", max_length=200, blank=True)
    udi_pi = models.CharField("UDI-PI", max_length=100, blank=True,
                              help_text="Production identifier (lot, serial, dates): identifies "
                                        "the patient's own device.")
    history = history()

    class Meta:
        ordering = ["implant", "component"]

    def __str__(self):
        return f"{self.component} of {self.implant.ref}"

    def clean(self):
        if self.device_component_id and self.implant_id and \
                self.device_component.implant_id != self.implant_id:
            raise ValidationError({"device_component": "This component belongs to another implant."})

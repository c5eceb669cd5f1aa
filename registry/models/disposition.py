"""Disposition: what became of a patient's follow-up, and the contact attempts behind it.

A patient's course is a dated sequence of `Disposition` rows; the one in effect on a
day is the latest dated on or before it (ties: the later entered). No row means active.
Withdrawn, lost to follow-up, deceased, follow-up completed and a transfer out of the
registry end follow-up from their date; a transfer to another site of this registry
and "active" (a lost patient found again, a re-consent) do not. The rule is
`ENDS_FOLLOW_UP` / `ends_follow_up_q`, read by `services/disposition.py`, the schedule
and the reminders.
"""

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Exists, OuterRef, Q, Subquery

from .base import ClinicalModel, history, today_anywhere
from .choices import (
    ContactMethod,
    ContactOutcome,
    DeathCause,
    DispositionStatus,
    Relatedness,
    WithdrawalLevel,
    WithdrawalReason,
)
from .patients import Patient
from .sites import Site

ENDING_STATUSES = (DispositionStatus.WITHDRAWN, DispositionStatus.LOST, DispositionStatus.DECEASED,
                   DispositionStatus.COMPLETED)


def ends_follow_up_q(prefix: str = "") -> Q:
    """Rows (at `prefix`) whose status ends follow-up: the ending statuses, and a transfer
    out of the registry (no receiving site)."""
    return (Q(**{f"{prefix}status__in": ENDING_STATUSES})
            | Q(**{f"{prefix}status": DispositionStatus.TRANSFERRED,
                   f"{prefix}transferred_to__isnull": True}))


def follow_up_ended_q(on, patient: str = "") -> Q:
    """Patients whose follow-up had ended on the day `on`: consent withdrawn by then, or
    the disposition in effect that day ends it. `patient` is the path from the outer
    query's model to the patient ("" on Patient, "patient" on Visit)."""
    ref = f"{patient}_id" if patient else "pk"
    prefix = f"{patient}__" if patient else ""
    latest = (Disposition.objects.filter(patient=OuterRef(OuterRef(ref)), date__lte=on)
              .order_by("-date", "-pk").values("pk")[:1])
    in_effect = Disposition.objects.filter(ends_follow_up_q(), pk=Subquery(latest))
    withdrawn = Q(**{f"{prefix}consent_status": "withdrawn", f"{prefix}withdrawal_date__lte": on})
    return withdrawn | Q(Exists(in_effect))


class Disposition(ClinicalModel):
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="dispositions")
    status = models.CharField(max_length=18, choices=DispositionStatus.choices)
    date = models.DateField(help_text="From this day on the status holds (the day of death, "
                                      "of the withdrawal, of the transfer, ...).")
    withdrawal_level = models.CharField(max_length=10, choices=WithdrawalLevel.choices, blank=True)
    withdrawal_reason = models.CharField(max_length=16, choices=WithdrawalReason.choices,
                                         blank=True)
    transferred_to = models.ForeignKey(
        Site, null=True, blank=True, on_delete=models.PROTECT, related_name="transfers_in",
        help_text="A site of this registry; empty = transferred out of the registry.")
    death_cause = models.CharField("cause of death", max_length=14, choices=DeathCause.choices,
                                   blank=True)
    death_device_relatedness = models.CharField(
        "death related to the device", max_length=12, choices=Relatedness.choices, blank=True)
    death_procedure_relatedness = models.CharField(
        "death related to the procedure", max_length=12, choices=Relatedness.choices, blank=True)
    note = models.TextField(blank=True, help_text="Free text; never exported.")
    history = history()

    class Meta:
        ordering = ["patient__registry_id", "date", "pk"]
        indexes = [models.Index(fields=["patient", "date"], name="disposition_patient_date")]

    def __str__(self):
        return f"{self.get_status_display()} from {self.date}"

    @property
    def ends_follow_up(self) -> bool:
        return self.status in ENDING_STATUSES or (
            self.status == DispositionStatus.TRANSFERRED and self.transferred_to_id is None)

    def clean(self):
        errors = {}
        status = self.status
        if self.date and self.date > today_anywhere():
            errors["date"] = f"Disposition date {self.date} is in the future."
        patient = self.patient if self.patient_id else None
        if patient and self.date and patient.consent_date and self.date < patient.consent_date:
            errors["date"] = (f"Disposition date {self.date} is before the patient's consent "
                              f"({patient.consent_date}).")
        if status == DispositionStatus.WITHDRAWN and not self.withdrawal_level:
            errors["withdrawal_level"] = ("Say what the withdrawal covers: no more contact, or no "
                                          "more data.")
        if status != DispositionStatus.WITHDRAWN:
            for name in ("withdrawal_level", "withdrawal_reason"):
                if getattr(self, name):
                    errors[name] = f"Only a withdrawal has a {self._meta.get_field(name).verbose_name}."
        if status != DispositionStatus.TRANSFERRED and self.transferred_to_id:
            errors["transferred_to"] = "Only a transfer has a receiving site."
        if status == DispositionStatus.TRANSFERRED and patient and \
                self.transferred_to_id == patient.site_id:
            errors["transferred_to"] = f"{patient} is already followed at {patient.site.code}."
        death_fields = ("death_cause", "death_device_relatedness", "death_procedure_relatedness")
        if status == DispositionStatus.DECEASED:
            for name in death_fields:
                if not getattr(self, name):
                    errors[name] = f"A death needs the {self._meta.get_field(name).verbose_name} " \
                                   f"(use 'unknown' or 'not related' where it is not known)." \
                        if name == "death_cause" else \
                        f"Give the {self._meta.get_field(name).verbose_name} (MDCG 2020-10/1 scale)."
        else:
            for name in death_fields:
                if getattr(self, name):
                    errors[name] = f"Only a death has a {self._meta.get_field(name).verbose_name}."
        if errors:
            raise ValidationError(errors)


class ContactAttempt(ClinicalModel):
    """One attempt to reach a patient (for a visit, or to trace her): lost to follow-up
    is recorded only after `REGISTRY_LOST_TO_FOLLOW_UP_ATTEMPTS` unanswered ones."""

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="contact_attempts")
    visit = models.ForeignKey("registry.Visit", null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="contact_attempts",
                              help_text="The visit it was about, if any.")
    date = models.DateField()
    method = models.CharField(max_length=10, choices=ContactMethod.choices)
    outcome = models.CharField(max_length=14, choices=ContactOutcome.choices)
    note = models.TextField(blank=True, help_text="Free text; never exported.")
    history = history()

    class Meta:
        ordering = ["patient__registry_id", "date", "pk"]

    def __str__(self):
        return f"{self.get_method_display()} on {self.date}: {self.get_outcome_display()}"

    @property
    def reached(self) -> bool:
        return self.outcome in (ContactOutcome.REACHED, ContactOutcome.DECLINED)

    def clean(self):
        errors = {}
        if self.date and self.date > today_anywhere():
            errors["date"] = f"Contact date {self.date} is in the future."
        if self.visit_id and self.patient_id and self.visit.patient_id != self.patient_id:
            errors["visit"] = f"Visit {self.visit} belongs to another patient."
        if errors:
            raise ValidationError(errors)

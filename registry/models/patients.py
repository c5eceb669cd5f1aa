
from django.core.exceptions import ValidationError
from django.db import models

from .base import ClinicalModel, history, today_anywhere
from .choices import (
    ConsentStatus,
    Diagnosis,
    Enrolment,
    EproChannel,
    Etiology,
    PatientLanguage,
    PriorTreatment,
    Sex,
    Side,
)
from .plausibility import future_errors
from .sites import Site


def validate_prior_treatments(value):
    if not isinstance(value, list):
        raise ValidationError("Prior treatments must be a list of codes.")
    unknown = [v for v in value if v not in PriorTreatment.values]
    if unknown:
        raise ValidationError(
            "Unknown prior treatment %(value)s; expected one of %(expected)s.",
            params={"value": ", ".join(map(str, unknown)), "expected": ", ".join(PriorTreatment.values)},
        )


class PatientQuerySet(models.QuerySet):
    def in_follow_up(self, *, on):
        """Patients whose follow-up has not ended on the day `on` (no withdrawal of consent
        by then, and the disposition in effect that day does not end follow-up; see
        models/disposition.py). The one rule for schedules, reminders and invitations."""
        from .disposition import follow_up_ended_q

        return self.exclude(follow_up_ended_q(on))

    def follow_up_ended(self, *, on):
        from .disposition import follow_up_ended_q

        return self.filter(follow_up_ended_q(on))


class Patient(ClinicalModel):
    """A registry participant, pseudonymous: no names or birth dates here."""

    registry_id = models.CharField(
        max_length=20, unique=True, help_text="Site code and number, e.g. NIJ-0007."
    )
    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="patients")
    sex = models.CharField(max_length=1, choices=Sex.choices)
    birth_year = models.PositiveSmallIntegerField()
    consent_date = models.DateField()
    consent_status = models.CharField(
        max_length=12, choices=ConsentStatus.choices, default=ConsentStatus.CONSENTED
    )
    withdrawal_date = models.DateField(null=True, blank=True)
    enrolment = models.CharField(
        max_length=13,
        choices=Enrolment.choices,
        default=Enrolment.PROSPECTIVE,
        help_text="Retrospective patients may have visits dated before consent.",
    )
    etiology = models.CharField(max_length=16, choices=Etiology.choices)
    diagnosis = models.CharField(max_length=8, choices=Diagnosis.choices)
    affected_region = models.CharField(
        max_length=200, blank=True, help_text="Affected nerve(s) or region, e.g. sural nerve."
    )
    side = models.CharField(max_length=10, choices=Side.choices, blank=True)
    pain_duration_months = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Pain duration before the implant, in months."
    )
    amputation_level = models.CharField(
        max_length=100, blank=True, help_text="Post-amputation patients, e.g. transtibial."
    )
    amputation_cause = models.CharField(max_length=100, blank=True)
    prior_treatments = models.JSONField(
        default=list, blank=True, validators=[validate_prior_treatments]
    )
    # Consent to be contacted for questionnaires (ePRO): no invitation without the date.
    # Clearing the date withdraws it (the history keeps when and by whom).
    epro_consent_date = models.DateField(
        "consent to questionnaire links", null=True, blank=True,
        help_text="Date the patient agreed to answer her follow-up questionnaires through a "
                  "link; empty = not asked, or withdrawn.")
    epro_channel = models.CharField(
        "questionnaire links by", max_length=10, choices=EproChannel.choices,
        default=EproChannel.EMAIL,
        help_text="E-mail: invitations go to the e-mail address in her identifiers.")
    epro_language = models.CharField(
        "questionnaire language", max_length=2, choices=PatientLanguage.choices,
        default=PatientLanguage.EN)
    history = history()
    objects = PatientQuerySet.as_manager()

    class Meta:
        ordering = ["registry_id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(birth_year__gte=1900) & models.Q(birth_year__lte=2100),
                name="patient_birth_year_range",
            ),
            models.CheckConstraint(
                condition=models.Q(withdrawal_date__isnull=True)
                | models.Q(withdrawal_date__gte=models.F("consent_date")),
                name="patient_withdrawal_after_consent",
            ),
        ]
        indexes = [models.Index(fields=["site", "registry_id"])]

    def __str__(self):
        return self.registry_id

    @property
    def is_withdrawn(self) -> bool:
        return self.consent_status == ConsentStatus.WITHDRAWN

    def clean(self):
        errors = {}
        this_year = today_anywhere().year
        if self.birth_year is not None and not (1900 <= self.birth_year <= this_year):
            errors["birth_year"] = (
                f"Birth year must be between 1900 and {this_year}, not {self.birth_year}."
            )
        errors.update(future_errors({"consent_date": ("Consent date", self.consent_date)}, self))
        if self.consent_date and self.birth_year and self.consent_date.year < self.birth_year:
            errors["consent_date"] = (
                f"Consent date {self.consent_date} is before the birth year {self.birth_year}."
            )
        if self.consent_status == ConsentStatus.WITHDRAWN and not self.withdrawal_date:
            errors["withdrawal_date"] = "A withdrawn patient needs the date of withdrawal."
        if self.withdrawal_date and self.consent_status != ConsentStatus.WITHDRAWN:
            errors["consent_status"] = "Set the status to withdrawn when a withdrawal date is given."
        if self.epro_consent_date and self.epro_consent_date > today_anywhere():
            errors["epro_consent_date"] = (
                f"Consent to questionnaire links {self.epro_consent_date} is in the future.")
        if self.withdrawal_date and self.consent_date and self.withdrawal_date < self.consent_date:
            errors["withdrawal_date"] = (
                f"Withdrawal date {self.withdrawal_date} is before consent ({self.consent_date})."
            )
        if self.registry_id and self.site_id and not self.registry_id.startswith(
            f"{self.site.code}-"
        ):
            if self._state.adding:
                errors["registry_id"] = (
                    f"Registry id '{self.registry_id}' must start with the site code "
                    f"'{self.site.code}-'."
                )
            else:
                # An enrolled patient's registry id never changes: it is the pseudonym
                # exports, REDCap, FHIR, implant refs and the date shift key on. So the
                # site, which it starts with, cannot change either.
                enrolled_at = self.registry_id.split("-", 1)[0]
                errors["site"] = (
                    f"{self.registry_id} stays at {enrolled_at}: a patient keeps the registry id "
                    f"in every export, REDCap and FHIR, and it must start with the site code, so "
                    f"the patient cannot move to {self.site.code}."
                )
        if errors:
            raise ValidationError(errors)


class PatientIdentifiers(ClinicalModel):
    """Direct identifiers, kept apart: only users of the patient's site see them,
    and they never leave through the API or exports."""

    patient = models.OneToOneField(Patient, on_delete=models.CASCADE, related_name="identifiers")
    record_number = models.CharField(
        "hospital record number", max_length=50, blank=True, db_index=True
    )
    full_name = models.CharField(max_length=200, blank=True)
    phone = models.CharField(max_length=50, blank=True)
    email = models.EmailField(blank=True)
    address = models.TextField(blank=True)
    history = history()

    class Meta:
        verbose_name = "patient identifiers"
        verbose_name_plural = "patient identifiers"

    def __str__(self):
        return f"Identifiers of {self.patient}"


from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q

from . import imdrf
from .base import ClinicalModel, history, today_anywhere
from .choices import (
    RELATED,
    AeAction,
    AeCategory,
    AeOutcome,
    Enrolment,
    Iso14155Class,
    Relatedness,
    SeriousCriterion,
    Severity,
)
from .implants import Implant
from .patients import Patient
from .plausibility import future_errors

CLOSED_OUTCOMES = {AeOutcome.RESOLVED, AeOutcome.RESOLVED_SEQUELAE, AeOutcome.FATAL}


def iso14155_class(*, serious, device_relatedness, procedure_relatedness, anticipated):
    """ISO 14155:2020 class of an event, derived from its coded fields.

    Related = possible, probable or causal (MDCG 2020-10/1) to the device or to
    the procedure (ISO 14155 3.1 note: implantation counts as use).
    Unanticipated only matters for serious device effects (USADE).
    """
    related = device_relatedness in RELATED or procedure_relatedness in RELATED
    if serious and related:
        return Iso14155Class.SADE if anticipated is not False else Iso14155Class.USADE
    if serious:
        return Iso14155Class.SAE
    if related:
        return Iso14155Class.ADE
    return Iso14155Class.AE


class AdverseEvent(ClinicalModel):
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="adverse_events")
    implant = models.ForeignKey(
        Implant, null=True, blank=True, on_delete=models.PROTECT, related_name="adverse_events"
    )
    onset_date = models.DateField()
    category = models.CharField(max_length=24, choices=AeCategory.choices)
    description = models.TextField(blank=True, help_text="Free text; never exported.")
    serious = models.BooleanField(default=False)
    serious_criterion = models.CharField(
        max_length=24, choices=SeriousCriterion.choices, blank=True
    )
    severity = models.CharField(max_length=10, choices=Severity.choices)
    device_relatedness = models.CharField(max_length=12, choices=Relatedness.choices)
    procedure_relatedness = models.CharField(max_length=12, choices=Relatedness.choices)
    anticipated = models.BooleanField(
        null=True, blank=True, help_text="Listed in the risk analysis / instructions for use."
    )
    action = models.CharField(max_length=14, choices=AeAction.choices, default=AeAction.NONE)
    outcome = models.CharField(max_length=20, choices=AeOutcome.choices, default=AeOutcome.ONGOING)
    resolved_on = models.DateField(null=True, blank=True)
    # Safety workflow (issue 20): reporting deadlines run from the day the site learned
    # of the event (MDR Art. 87, MDCG 2020-10/1); the IMDRF codes are proposed from the
    # category, seriousness and action when left empty (models/imdrf.py), and editable.
    awareness_date = models.DateField(
        null=True, blank=True,
        help_text="The day the site learned of the event; deadlines run from it. Empty = the onset.")
    reported_on = models.DateField(
        "reported to the authority on", null=True, blank=True,
        help_text="The day the report (MDR Art. 87 / ISO 14155) went out; the safety tabulation "
                  "says whether that was by the deadline.")
    public_health_threat = models.BooleanField(
        default=False, help_text="A serious public health threat (MDR Art. 2(66)): report within "
                                 "2 days.")
    imdrf_device_problem = models.CharField(
        "IMDRF device problem (Annex A)", max_length=10, blank=True,
        help_text="Empty = proposed from the category.")
    imdrf_clinical_signs = models.CharField(
        "IMDRF clinical signs (Annex E)", max_length=10, blank=True,
        help_text="Empty = proposed from the category.")
    imdrf_health_impact = models.CharField(
        "IMDRF health impact (Annex F)", max_length=10, blank=True,
        help_text="Empty = proposed from the outcome, seriousness and action.")
    history = history()

    class Meta:
        ordering = ["patient__registry_id", "onset_date"]
        constraints = [
            models.CheckConstraint(
                condition=Q(resolved_on__isnull=True) | Q(resolved_on__gte=F("onset_date")),
                name="ae_resolution_after_onset",
            ),
        ]
        indexes = [
            models.Index(fields=["category", "onset_date"], name="ae_category_onset"),
            # Admin list: newest events first.
            models.Index(fields=["onset_date", "id"], name="ae_onset_id"),
        ]

    def __str__(self):
        return f"{self.get_category_display()} ({self.onset_date})"

    @property
    def iso_class(self) -> str:
        return iso14155_class(
            serious=self.serious,
            device_relatedness=self.device_relatedness,
            procedure_relatedness=self.procedure_relatedness,
            anticipated=self.anticipated,
        )

    @property
    def is_closed(self) -> bool:
        return self.outcome in CLOSED_OUTCOMES

    def propose_imdrf(self) -> None:
        """Fill the empty IMDRF codes from the category and the outcome (models/imdrf.py)."""
        problem, signs = imdrf.BY_CATEGORY.get(self.category, ("", ""))
        self.imdrf_device_problem = self.imdrf_device_problem or problem
        self.imdrf_clinical_signs = self.imdrf_clinical_signs or signs
        self.imdrf_health_impact = self.imdrf_health_impact or imdrf.health_impact(
            outcome=self.outcome, serious_criterion=self.serious_criterion, action=self.action,
            category=self.category, public_health_threat=self.public_health_threat)

    def clean(self):
        errors = {}
        patient = self.patient if self.patient_id else None
        errors.update(future_errors({"onset_date": ("Onset date", self.onset_date),
                                     "resolved_on": ("Resolution date", self.resolved_on)}, patient))
        if self.serious and not self.serious_criterion:
            errors["serious_criterion"] = (
                "Serious is 'yes' but no seriousness criterion is given; a serious event meets "
                "one of the ISO 14155 criteria (death, life-threatening, permanent impairment, "
                "hospitalisation, intervention, foetal)."
            )
        if (self.onset_date and patient is not None and patient.consent_date
                and patient.enrolment != Enrolment.RETROSPECTIVE
                and self.onset_date < patient.consent_date and "onset_date" not in errors):
            errors["onset_date"] = (
                f"Onset date {self.onset_date} is before the patient's consent "
                f"({patient.consent_date}); only a retrospective patient has events before consent."
            )
        if self.awareness_date is None and self.onset_date:
            self.awareness_date = self.onset_date
        self.imdrf_device_problem = (self.imdrf_device_problem or "").strip().upper()
        self.imdrf_clinical_signs = (self.imdrf_clinical_signs or "").strip().upper()
        self.imdrf_health_impact = (self.imdrf_health_impact or "").strip().upper()
        self.propose_imdrf()
        for name, annex in (("imdrf_device_problem", "A"), ("imdrf_clinical_signs", "E"),
                            ("imdrf_health_impact", "F")):
            code = getattr(self, name)
            if code and not imdrf.valid(annex, code):
                errors[name] = (f"'{code}' is not an IMDRF Annex {annex} code (such as "
                                f"{ {'A': 'A010402', 'E': 'E2110', 'F': 'F1903'}[annex] }).")
        if (self.awareness_date and self.awareness_date != self.onset_date
                and self.awareness_date > today_anywhere()):  # an onset in the future is said once
            errors["awareness_date"] = f"Awareness date {self.awareness_date} is in the future."
        if self.awareness_date and self.onset_date and self.awareness_date < self.onset_date:
            errors["awareness_date"] = (f"Awareness date {self.awareness_date} is before the onset "
                                        f"{self.onset_date}.")
        if self.reported_on and self.reported_on > today_anywhere():
            errors["reported_on"] = f"Report date {self.reported_on} is in the future."
        elif self.reported_on and self.awareness_date and self.reported_on < self.awareness_date:
            errors["reported_on"] = (f"Report date {self.reported_on} is before the awareness "
                                     f"{self.awareness_date}.")
        if self.resolved_on and self.onset_date and self.resolved_on < self.onset_date:
            errors["resolved_on"] = (
                f"Resolution date {self.resolved_on} is before the onset {self.onset_date}."
            )
        if self.resolved_on and self.outcome in (AeOutcome.ONGOING, AeOutcome.UNKNOWN):
            errors["outcome"] = (
                f"A resolution date is given but the outcome is '{self.get_outcome_display()}'."
            )
        if self.outcome in (AeOutcome.RESOLVED, AeOutcome.RESOLVED_SEQUELAE) and not self.resolved_on:
            errors["resolved_on"] = "Give the date the event resolved."
        if self.serious_criterion and not self.serious:
            errors["serious"] = "A seriousness criterion is given; tick 'serious'."
        if self.outcome == AeOutcome.FATAL and not self.serious:
            errors["serious"] = "A fatal event is serious (ISO 14155)."
        if self.implant_id and self.patient_id and self.implant.patient_id != self.patient_id:
            errors["implant"] = f"Implant {self.implant.ref} belongs to another patient."
        if self.patient_id and self.onset_date:
            birth_year = self.patient.birth_year
            if birth_year and self.onset_date.year < birth_year:
                errors["onset_date"] = f"Onset {self.onset_date} is before the birth year."
        if errors:
            raise ValidationError(errors)

    # Possible but unusual (plausibility.py): the admin asks to confirm, the import reports.
    AFTER_EXPLANT_DAYS_UNUSUAL = 30

    def unusual(self) -> dict[str, str]:
        implant = self.implant if self.implant_id else None
        if implant and implant.explant_date and self.onset_date and \
                (self.onset_date - implant.explant_date).days > self.AFTER_EXPLANT_DAYS_UNUSUAL:
            return {"onset_date": (
                f"Onset date {self.onset_date} is {(self.onset_date - implant.explant_date).days} "
                f"days after the explant of {implant.ref} ({implant.explant_date}): unusual for an "
                "event of that implant."
            )}
        return {}

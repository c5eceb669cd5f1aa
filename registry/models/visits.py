import datetime
import re

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import F, Q

from .base import ClinicalModel, history
from .choices import (
    VALUE_MISSING_CHOICES,
    Enrolment,
    EnteredBy,
    MissingReason,
    PainSite,
    Pgic,
    Recall,
    Satisfaction,
    StimulationUse,
    VisitStatus,
)
from .implants import Implant, first_implant
from .patients import Patient
from .plausibility import future_errors

BASELINE = "baseline"
TRIAL_END = "trial_end"
UNSCHEDULED = "unscheduled"
TIMEPOINT_RE = re.compile(r"^(baseline|trial_end|unscheduled|m([1-9][0-9]{0,2}))$")
timepoint_validator = RegexValidator(
    TIMEPOINT_RE,
    "Timepoint must be baseline, trial_end, unscheduled or m<N> (N months after implant, "
    "e.g. m3, m12).",
)


def timepoint_months(code: str) -> int | None:
    """Months after implant for m<N> timepoints; None for the others."""
    match = TIMEPOINT_RE.match(code or "")
    return int(match.group(2)) if match and match.group(2) else None


def timepoint_label(code: str) -> str:
    months = timepoint_months(code)
    if months is None:
        return {BASELINE: "Baseline", TRIAL_END: "End of trial", UNSCHEDULED: "Unscheduled"}.get(
            code, code
        )
    if months % 12 == 0:
        years = months // 12
        return f"{years} year" + ("s" if years > 1 else "")
    return f"{months} month" + ("s" if months > 1 else "")


def timepoint_sort_key(code: str) -> tuple[int, int]:
    months = timepoint_months(code)
    order = {BASELINE: (0, 0), TRIAL_END: (1, 0), UNSCHEDULED: (3, 0)}
    return order.get(code, (2, months or 0))


nrs_validators = [
    MinValueValidator(0, "NRS is a 0-10 scale; %(limit_value)s is the lowest score."),
    MaxValueValidator(10, "NRS is a 0-10 scale; %(limit_value)s is the highest score."),
]


DUE_SOON_DAYS = 7  # "due this week": the window is open, or opens within this many days

SiteDays = dict[datetime.date, list[int]]  # site pks by the day it is there (services.dates.site_days)


class VisitQuerySet(models.QuerySet):
    """What is due and what is overdue: one rule each, for every list, badge and hub.

    "The day" is the site's own day. `on` is that day, or, for a list across
    time zones, the sites grouped by their day (`SiteDays`); `site_field` then
    names the visit's site in the query. The conditions lean on the (status,
    window_start / window_end) indexes of Visit.
    """

    def due_this_week(self, *, on: datetime.date | SiteDays, site_field: str = "patient__site_id"):
        """Scheduled visits whose window is open on the day or opens within DUE_SOON_DAYS."""
        return self.filter(_on_site_days(_due, on, site_field))

    def overdue(self, *, on: datetime.date | SiteDays, site_field: str = "patient__site_id"):
        """Scheduled visits whose window closed before the day (not done, not marked missed).
        A loaded row answers the same with `Visit.is_overdue`."""
        return self.filter(_on_site_days(overdue_on, on, site_field))

    def completed_without_nrs(self):
        """Completed visits without the primary NRS."""
        return self.filter(status=VisitStatus.COMPLETED, nrs__isnull=True)


def _due(day: datetime.date) -> Q:
    return Q(status=VisitStatus.SCHEDULED, window_start__lte=day + datetime.timedelta(days=DUE_SOON_DAYS),
             window_end__gte=day)


def overdue_on(day: datetime.date) -> Q:
    """The overdue condition for one day (see VisitQuerySet.overdue)."""
    return Q(status=VisitStatus.SCHEDULED, window_end__lt=day)



def _on_site_days(rule, on: datetime.date | SiteDays, site_field: str) -> Q:
    """`rule(day)` with each site's own day.

    Usually every site has the same day and the plain condition stands (the list
    indexes apply unchanged). For the hours when the European sites are already
    a day ahead of New York, the condition is the plain one for "either day"
    (index-friendly, one day wider) narrowed by the one-day edges of each group:
    a branch per day would make the planner give up the index scans on the
    registry-wide lists.
    """
    days = on if isinstance(on, dict) else {on: []}
    if not days:
        return Q(pk__in=[])  # no sites, so no visit at one
    if len(days) == 1:
        return rule(next(iter(days)))
    ordered = sorted(days.items())
    (behind, behind_ids), (ahead, ahead_ids) = ordered[0], ordered[-1]
    if len(days) > 2 or ahead - behind != datetime.timedelta(days=1):
        # Three different days at once (UTC-12 and UTC+14 sites): one branch per day.
        branches = Q()
        for day, ids in ordered:
            branches |= Q(**{f"{site_field}__in": ids}) & rule(day)
        return branches
    at_ahead, at_behind = Q(**{f"{site_field}__in": ahead_ids}), Q(**{f"{site_field}__in": behind_ids})
    if rule is overdue_on:
        # Closed before the ahead day; closing on the behind day is overdue only ahead.
        return overdue_on(ahead) & (Q(window_end__lt=behind) | at_ahead)
    # Due this week on either day, minus each group's edge that belongs to the other.
    week = datetime.timedelta(days=DUE_SOON_DAYS)
    either_day = Q(status=VisitStatus.SCHEDULED, window_start__lte=ahead + week,
                   window_end__gte=behind)
    return either_day & (
        Q(window_start__lte=behind + week, window_end__gte=ahead)
        | at_behind & Q(window_start__lte=behind + week)
        | at_ahead & Q(window_end__gte=ahead))


# The values that can carry a missing-data reason, and the field holding it.
MISSING_FIELDS = {"nrs": "nrs_missing", "satisfaction": "satisfaction_missing",
                  "pgic": "pgic_missing", "opioid_mme": "opioid_mme_missing"}
NOT_DONE = (VisitStatus.MISSED, VisitStatus.NOT_APPLICABLE)


class Visit(ClinicalModel):
    """A baseline, end-of-trial, scheduled follow-up or unscheduled visit."""

    # No index of its own: visit_patient_timepoint (patient, timepoint) serves every
    # lookup by patient, and each index costs every import and schedule (issue 21).
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="visits",
                                db_index=False)
    implant = models.ForeignKey(
        Implant, null=True, blank=True, on_delete=models.PROTECT, related_name="visits"
    )
    timepoint = models.CharField(max_length=16, validators=[timepoint_validator])
    target_date = models.DateField(null=True, blank=True)
    window_start = models.DateField(null=True, blank=True)
    window_end = models.DateField(null=True, blank=True)
    date_done = models.DateField("date of visit", null=True, blank=True)
    status = models.CharField(
        max_length=16, choices=VisitStatus.choices, default=VisitStatus.SCHEDULED
    )
    nrs = models.PositiveSmallIntegerField(
        "NRS pain (0-10)",
        null=True,
        blank=True,
        validators=nrs_validators,
        help_text="Primary pain, numeric rating scale: 0 = no pain, 10 = worst imaginable.",
    )
    satisfaction = models.PositiveSmallIntegerField(
        choices=Satisfaction.choices, null=True, blank=True
    )
    pgic = models.PositiveSmallIntegerField(
        "PGIC", choices=Pgic.choices, null=True, blank=True
    )
    would_choose_again = models.BooleanField(null=True, blank=True)
    opioid_mme = models.DecimalField(
        "opioid use (MME/day)",
        max_digits=6,
        decimal_places=1,
        null=True,
        blank=True,
        validators=[MinValueValidator(0, "Opioid use cannot be negative.")],
    )
    stimulation_use = models.CharField(
        max_length=12, choices=StimulationUse.choices, blank=True
    )
    notes = models.TextField(blank=True, help_text="Free text; never exported.")
    # Why a value is blank: beside the value, never in it (MISSING_FIELDS).
    nrs_missing = models.CharField("NRS missing because", max_length=20,
                                   choices=VALUE_MISSING_CHOICES, blank=True)
    satisfaction_missing = models.CharField("satisfaction missing because", max_length=20,
                                            choices=VALUE_MISSING_CHOICES, blank=True)
    pgic_missing = models.CharField("PGIC missing because", max_length=20,
                                    choices=VALUE_MISSING_CHOICES, blank=True)
    opioid_mme_missing = models.CharField("opioid use missing because", max_length=20,
                                          choices=VALUE_MISSING_CHOICES, blank=True)
    # Why a visit was missed or not done: one field for the data-management reason
    # (issue 18) and the missed-visit reason (issue 20); the attempts made to reach the
    # patient are its ContactAttempt rows.
    visit_missing = models.CharField(
        "visit not done because", max_length=20, choices=MissingReason.choices, blank=True,
        help_text="For a missed or not applicable visit: why it was not done.")
    # Where the answers came from; set by the services (the questionnaire link, the
    # import), never typed.
    entered_by = models.CharField(max_length=8, choices=EnteredBy.choices,
                                  default=EnteredBy.NURSE, editable=False)
    # A visit's history is read by visit (id) and date; indexes on these columns were
    # upkeep for every one of an import's 250,000 history rows and read by nothing.
    history = history(no_db_index=["patient", "implant", "updated_at"])

    objects = VisitQuerySet.as_manager()

    class Meta:
        ordering = ["patient__registry_id", "target_date", "date_done"]
        constraints = [
            models.CheckConstraint(
                condition=Q(nrs__isnull=True) | Q(nrs__gte=0, nrs__lte=10), name="visit_nrs_0_10"
            ),
            models.CheckConstraint(
                condition=Q(satisfaction__isnull=True) | Q(satisfaction__gte=1, satisfaction__lte=5),
                name="visit_satisfaction_1_5",
            ),
            models.CheckConstraint(
                condition=Q(pgic__isnull=True) | Q(pgic__gte=1, pgic__lte=7),
                name="visit_pgic_1_7",
            ),
            models.CheckConstraint(
                condition=~Q(status=VisitStatus.COMPLETED) | Q(date_done__isnull=False),
                name="visit_completed_has_date",
            ),
            models.CheckConstraint(
                condition=Q(window_start__isnull=True)
                | Q(window_end__isnull=True)
                | Q(window_end__gte=F("window_start")),
                name="visit_window_order",
            ),
            models.UniqueConstraint(
                fields=["patient"], condition=Q(timepoint=BASELINE), name="one_baseline_per_patient",
                violation_error_message="This patient already has a baseline visit; a patient has "
                                        "one baseline.",
            ),
            models.UniqueConstraint(
                fields=["implant", "timepoint"],
                condition=~Q(timepoint=UNSCHEDULED) & ~Q(timepoint=BASELINE),
                name="one_visit_per_implant_timepoint",
                violation_error_message="This implant already has a visit at this timepoint; record "
                                        "another contact as unscheduled.",
            ),
        ]
        indexes = [
            # Also the visits of one status (missed, say). No (status, window_end) index: every
            # query of window_end is of scheduled visits, which visit_scheduled_window serves,
            # and an import wrote it for 250,000 visits (issue 21).
            models.Index(fields=["status", "window_start"], name="visit_status_window_start"),
            models.Index(fields=["patient", "timepoint"], name="visit_patient_timepoint"),
            # Admin "due this week": windows overlapping a date, read from the index alone.
            models.Index(fields=["window_end", "window_start", "patient"], name="visit_scheduled_window",
                         condition=Q(status=VisitStatus.SCHEDULED)),
            # Admin "missing NRS" filter: a few rows among a million completed visits.
            models.Index(fields=["date_done"], name="visit_completed_no_nrs",
                         condition=Q(status=VisitStatus.COMPLETED, nrs__isnull=True)),
        ]

    def __str__(self):
        return f"{self.patient_id and self.patient.registry_id} {self.timepoint}"

    @property
    def timepoint_label(self) -> str:
        return timepoint_label(self.timepoint)

    @property
    def is_completed(self) -> bool:
        return self.status == VisitStatus.COMPLETED

    def is_overdue(self, on: datetime.date) -> bool:
        """VisitQuerySet.overdue for a loaded row: scheduled, window closed before
        `on`, the day at the visit's site."""
        return self.status == VisitStatus.SCHEDULED and self.window_end is not None \
            and self.window_end < on

    @property
    def outside_window(self) -> bool:
        """A completed visit done outside its window: allowed, but flagged."""
        if not (self.date_done and self.window_start and self.window_end):
            return False
        return not (self.window_start <= self.date_done <= self.window_end)

    def clean(self):
        errors = {}
        scores = {
            "nrs": self.nrs,
            "satisfaction": self.satisfaction,
            "pgic": self.pgic,
        }
        if self.nrs is not None and not 0 <= self.nrs <= 10:
            errors["nrs"] = f"NRS must be between 0 and 10; {self.nrs} is not on the scale."
        if self.status == VisitStatus.COMPLETED and not self.date_done:
            errors["date_done"] = "A completed visit needs the date it was done."
        if self.status != VisitStatus.COMPLETED:
            given = [name for name, value in scores.items() if value is not None]
            if given:
                errors["status"] = (
                    f"Scores were entered ({', '.join(given)}) but the visit is "
                    f"'{self.get_status_display()}'; set it to completed."
                )
        patient = self.patient if self.patient_id else None
        implant = self.implant if self.implant_id else None
        errors.update(future_errors({"date_done": ("Visit date", self.date_done)}, patient))
        if self.timepoint and not TIMEPOINT_RE.match(self.timepoint):
            errors["timepoint"] = (
                f"Unknown timepoint '{self.timepoint}'; use baseline, trial_end, unscheduled or "
                "m<N> (e.g. m3)."
            )
        if implant and patient and implant.patient_id != patient.pk:
            errors["implant"] = f"Implant {implant.ref} belongs to another patient."
        if (
            self.date_done
            and patient
            and patient.consent_date
            and patient.enrolment != Enrolment.RETROSPECTIVE
            and self.date_done < patient.consent_date
        ):
            errors["date_done"] = (
                f"Visit date {self.date_done} is before the patient's consent "
                f"({patient.consent_date})."
            )
        if timepoint_months(self.timepoint) and not implant:
            errors["implant"] = f"A {self.timepoint} follow-up visit needs the implant it follows."
        if (
            self.date_done
            and implant
            and implant.implant_date
            and timepoint_months(self.timepoint)
            and self.date_done < implant.implant_date
        ):
            errors["date_done"] = (
                f"Follow-up visit date {self.date_done} is before the implant date "
                f"{implant.implant_date}."
            )
        if self.timepoint == BASELINE and self.date_done:
            # The baseline is the pre-implant visit: not after the patient's first implant
            # (a patient not saved yet, as in an import, has only the implant given).
            first = None
            if patient and not patient._state.adding:
                first = first_implant(patient)
                first = first if first and first.implant_date else None
            if first is None and implant and implant.implant_date:
                first = implant
            if first and self.date_done > first.implant_date:
                errors["date_done"] = (
                    f"Baseline date {self.date_done} is after the first implant ({first.ref}, "
                    f"{first.implant_date}); the baseline is the pre-implant visit."
                )
        if self.window_start and self.window_end and self.window_end < self.window_start:
            errors["window_end"] = "The window must end on or after its start."
        for value_field, reason_field in MISSING_FIELDS.items():
            reason = getattr(self, reason_field)
            if reason and getattr(self, value_field) is not None:
                errors[reason_field] = (
                    f"A reason for a missing value ('{reason}') is given, but {value_field} has a value "
                    f"({getattr(self, value_field)}); clear one of them.")
            elif reason and self.status != VisitStatus.COMPLETED:
                errors[reason_field] = (
                    f"Missing-value reasons are for completed visits; this visit is "
                    f"'{self.get_status_display()}' (give the reason the visit was not done instead).")
        if self.visit_missing and self.status not in NOT_DONE:
            errors["visit_missing"] = (
                f"The reason a visit was not done ('{self.visit_missing}') is for missed or not "
                f"applicable visits; this one is '{self.get_status_display()}'.")
        # Satisfaction with the treatment and the change since it (PGIC) are asked once
        # there is a treatment: after the implant, never at baseline or the trial's end.
        before_implant = self.timepoint in (BASELINE, TRIAL_END) or bool(
            implant is not None and implant.implant_date and self.date_done
            and self.date_done < implant.implant_date)
        for name, label in (("satisfaction", "Satisfaction"), ("pgic", "PGIC")):
            value = getattr(self, name)
            if value is not None and before_implant and name not in errors:
                when = timepoint_label(self.timepoint).lower() if self.timepoint else "this visit"
                errors[name] = (
                    f"{label} {value} at {when}: {label} is asked after the implant (at its "
                    "follow-up visits), not before it."
                )
        if errors:
            raise ValidationError(errors)

    # Possible but unusual (plausibility.py): the admin asks to confirm, the import reports.
    OUTSIDE_WINDOW_DAYS_UNUSUAL = 90
    OPIOID_MME_UNUSUAL = 300

    def unusual(self) -> dict[str, str]:
        found = {}
        if self.outside_window:
            off = max((self.window_start - self.date_done).days, (self.date_done - self.window_end).days)
            if off > self.OUTSIDE_WINDOW_DAYS_UNUSUAL:
                found["date_done"] = (
                    f"Visit date {self.date_done} is {off} days outside the {self.timepoint} window "
                    f"({self.window_start} to {self.window_end}): is it this timepoint?"
                )
        if self.opioid_mme is not None and self.opioid_mme > self.OPIOID_MME_UNUSUAL:
            found["opioid_mme"] = (
                f"Opioid use {self.opioid_mme} MME/day is unusually high (more than "
                f"{self.OPIOID_MME_UNUSUAL}); check the unit (milligram morphine equivalents a day)."
            )
        return found


class PainScore(ClinicalModel):
    """A further pain score at a visit: per pain site and recall period
    (post-amputation patients rate residual and phantom limb pain apart)."""

    visit = models.ForeignKey(Visit, on_delete=models.CASCADE, related_name="pain_scores")
    pain_site = models.CharField(max_length=16, choices=PainSite.choices)
    recall = models.CharField(max_length=8, choices=Recall.choices, default=Recall.AVG_7D)
    score = models.PositiveSmallIntegerField("NRS (0-10)", validators=nrs_validators)
    history = history()

    class Meta:
        ordering = ["visit", "pain_site", "recall"]
        constraints = [
            models.CheckConstraint(
                condition=Q(score__gte=0, score__lte=10), name="painscore_0_10"
            ),
            models.UniqueConstraint(
                fields=["visit", "pain_site", "recall"], name="one_score_per_site_recall"
            ),
        ]

    def __str__(self):
        return f"{self.get_pain_site_display()} ({self.get_recall_display()}): {self.score}"

    def clean(self):
        if self.score is not None and not 0 <= self.score <= 10:
            raise ValidationError(
                {"score": f"Pain score must be between 0 and 10; {self.score} is not on the scale."}
            )

"""Patient-reported outcomes: item answers at a visit, and which instrument is due when.

The answers are the record (history, reasons). A visit's answers and scores are also kept
in one derived row, `PromSheet`, rewritten from the answers whenever they change
(services.proms.stored), so that no read path aggregates 24 M answers per request (issue 21).
"""

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from . import instruments
from .base import ClinicalModel, history
from .choices import VALUE_MISSING_CHOICES, Diagnosis
from .protocol import FollowUpProtocol
from .visits import BASELINE, TIMEPOINT_RE, TRIAL_END, Visit, timepoint_months

INSTRUMENT_CHOICES = [(code, i.name) for code, i in instruments.INSTRUMENTS.items()]


def _answer_ranges() -> Q:
    """The database's own guard, built from the definitions: each instrument's items
    with their allowed values (so bulk writes cannot store 7 on a 0-5 item either)."""
    allowed = Q()
    for code, instrument in instruments.INSTRUMENTS.items():
        by_range: dict[tuple[int, int], list[str]] = {}
        for item in instrument.items:
            by_range.setdefault((item.low, item.high), []).append(item.code)
        for (low, high), items in by_range.items():
            allowed |= Q(instrument=code, item__in=items, value__gte=low, value__lte=high)
    return allowed


class PromAnswer(ClinicalModel):
    """One item answer of a patient-reported outcome instrument at a visit.

    `instrument_version` is the instrument version the answer was given on
    (instruments.INSTRUMENTS), set from the definition when left empty (`version` is the
    row's own optimistic-locking counter, as on every clinical model).

    An item asked but not answered may be kept with the reason instead of the value
    (`value_missing`, issue 18: beside the value, never in it); a row holds one of the two.
    Scores count the values only, so a reason never scores.
    """

    visit = models.ForeignKey(Visit, on_delete=models.CASCADE, related_name="prom_answers")
    instrument = models.CharField(max_length=16, choices=INSTRUMENT_CHOICES)
    instrument_version = models.CharField(max_length=40, blank=True)
    item = models.CharField(max_length=24)
    value = models.PositiveSmallIntegerField(null=True, blank=True)
    value_missing = models.CharField("answer missing because", max_length=20,
                                     choices=VALUE_MISSING_CHOICES, blank=True)
    history = history()

    class Meta:
        ordering = ["visit", "instrument", "item"]
        constraints = [
            models.UniqueConstraint(
                fields=["visit", "instrument", "item"], name="one_prom_answer_per_item",
                violation_error_message="This visit already has an answer to this item; change it "
                                        "instead of adding another.",
            ),
            models.CheckConstraint(condition=_answer_ranges(), name="prom_answer_on_scale"),
            models.CheckConstraint(
                condition=Q(value__isnull=False, value_missing="")
                | Q(value__isnull=True) & ~Q(value_missing=""),
                name="prom_answer_value_or_reason",
                violation_error_message="Give the answer or the reason it is missing, not both."),
        ]

    def __str__(self):
        shown = self.value if self.value is not None else f"missing ({self.value_missing})"
        return f"{self.instrument}.{self.item} = {shown}"

    def clean(self):
        errors = {}
        if self.instrument not in instruments.INSTRUMENTS:
            errors["instrument"] = (f"Unknown instrument '{self.instrument}'; use one of "
                                    f"{', '.join(instruments.INSTRUMENTS)}.")
        else:
            definition = instruments.INSTRUMENTS[self.instrument]
            if not self.instrument_version:
                self.instrument_version = definition.version
            elif self.instrument_version != definition.version:
                errors["instrument_version"] = (
                    f"{definition.name} is held in version '{definition.version}', "
                    f"not '{self.instrument_version}'.")
            if self.value is None and not self.value_missing:
                errors["value"] = ("Give the answer, or the reason it is missing "
                                   "(value_missing).")
            elif self.value is not None and self.value_missing:
                errors["value_missing"] = (
                    f"A reason for a missing answer ('{self.value_missing}') is given, but the "
                    f"item has the answer {self.value}; clear one of them.")
            # An unknown item is named either way; a reason needs no value on the scale.
            problem = (instruments.answer_problem(self.instrument, self.item, self.value)
                       if self.value is not None or definition.item(self.item) is None else None)
            if problem and "value" not in errors:
                errors["item" if definition.item(self.item) is None else "value"] = problem
        if errors:
            raise ValidationError(errors)


TIMEPOINT_TOKENS = ("scheduled", "yearly")  # every scheduled timepoint; m12, m24, ...


def split_codes(text: str) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


class PromSchedule(ClinicalModel):
    """Which instrument a protocol asks for at which timepoints, for which diagnoses.

    `timepoints`: comma-separated baseline, trial_end, m<N>, or "scheduled" (baseline,
    end of trial and every m<N>) and "yearly" (m12, m24, ...). `diagnoses`: comma-separated
    pain diagnosis codes; empty = every diagnosis. Edited by data managers.
    """

    protocol = models.ForeignKey(FollowUpProtocol, on_delete=models.CASCADE, related_name="prom_schedules")
    instrument = models.CharField(max_length=16, choices=INSTRUMENT_CHOICES)
    timepoints = models.CharField(max_length=200, help_text="e.g. baseline,m6,yearly or scheduled")
    diagnoses = models.CharField(max_length=100, blank=True,
                                 help_text="Pain diagnosis codes (pn, rlp, plp, rlp_plp, other); "
                                           "empty = every diagnosis.")
    history = history()

    class Meta:
        ordering = ["protocol", "instrument"]
        constraints = [
            models.UniqueConstraint(
                fields=["protocol", "instrument"], name="one_prom_schedule_per_instrument",
                violation_error_message="This protocol already schedules this instrument; edit that row.",
            ),
        ]

    def __str__(self):
        return f"{self.instrument} at {self.timepoints}"

    def due_at(self, timepoint: str, diagnosis: str) -> bool:
        wanted = split_codes(self.diagnoses)
        if wanted and diagnosis not in wanted:
            return False
        codes = split_codes(self.timepoints)
        months = timepoint_months(timepoint)
        if timepoint in codes:
            return True
        if "scheduled" in codes and (timepoint in (BASELINE, TRIAL_END) or months):
            return True
        return bool("yearly" in codes and months and months % 12 == 0)

    def clean(self):
        errors = {}
        for code in split_codes(self.timepoints):
            if code not in TIMEPOINT_TOKENS and not TIMEPOINT_RE.match(code):
                errors["timepoints"] = (f"Unknown timepoint '{code}'; use baseline, trial_end, m<N>, "
                                        "scheduled or yearly, separated by commas.")
        if not split_codes(self.timepoints):
            errors["timepoints"] = "Name at least one timepoint."
        for code in split_codes(self.diagnoses):
            if code not in Diagnosis.values:
                errors["diagnoses"] = (f"Unknown diagnosis '{code}'; use {', '.join(Diagnosis.values)}, "
                                       "separated by commas.")
        if errors:
            raise ValidationError(errors)


# --- the derived sheet -------------------------------------------------------------------

def sheet_item(instrument: str, item: str) -> str:
    """The sheet's column of one item's value."""
    return f"item_{instrument}_{item}"


def sheet_rows(instrument: str) -> str:
    """The sheet's column counting the instrument's answer rows (a value or a reason)."""
    return f"rows_{instrument}"


def sheet_updated(instrument: str) -> str:
    """The sheet's column of the instrument's latest answer change (FHIR's lastUpdated)."""
    return f"updated_{instrument}"


def sheet_score(code: str, value_set: str) -> str:
    """The sheet's column of score `code`; the EQ-5D-5L index has one per value set."""
    _, score = instruments.SCORES[code]
    return f"{code}_{value_set.lower()}" if score.method == "index" else code


def is_integer(score: instruments.Score) -> bool:
    """Totals and single items are whole numbers (exported as integers)."""
    return score.method in ("value", "sum")


def _sheet_fields() -> dict[str, models.Field]:
    """One column per item, per instrument (answer rows, latest change) and per score
    (per value set for the index), from the declarations: a new item, score or value set
    is a new column, so `makemigrations --check` asks for the migration."""
    fields: dict[str, models.Field] = {}
    for code, instrument in instruments.INSTRUMENTS.items():
        fields[sheet_rows(code)] = models.PositiveSmallIntegerField(default=0)
        fields[sheet_updated(code)] = models.DateTimeField(null=True)
        for item in instrument.items:
            fields[sheet_item(code, item.code)] = models.PositiveSmallIntegerField(null=True)
        for score in instrument.scores:
            kind = models.IntegerField if is_integer(score) else models.FloatField
            value_sets = instruments.VALUE_SETS if score.method == "index" else [None]
            for value_set in value_sets:
                name = sheet_score(score.code, value_set) if value_set else score.code
                fields[name] = kind(null=True)
    return fields


class _SheetMeta:
    verbose_name = "PROM sheet (derived)"


PromSheet = type("PromSheet", (models.Model,), {
    "__module__": __name__,
    "__doc__": """A visit's PROM answers and scores in one row, derived from its PromAnswer rows
    and rewritten from them on every change (services.proms.stored: the answer service, the
    admin, ePRO, imports; a signal for any other save or delete). Never edited, never
    exported as such, no history of its own: the answers carry the audit trail. Only visits
    holding answers have one.""",
    "visit": models.OneToOneField(Visit, on_delete=models.CASCADE, primary_key=True,
                                  related_name="prom_sheet"),
    **_sheet_fields(),
    "Meta": _SheetMeta,
    "__str__": lambda self: f"PROM sheet of visit {self.visit_id}",
})

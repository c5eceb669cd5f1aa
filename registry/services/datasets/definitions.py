"""The analysis datasets, each declared once: one row per visit, per adverse event, per patient.

Every channel reads these declarations: the exports (CSV, JSON, xlsx, SPSS, Stata), the
REDCap project (data dictionary and records) and the codebook. To add a column, add a
`Column` to the list of its dataset: name, label, kind, SQL, code list, REDCap placement.

`days_from_implant`, one definition for every channel: the row's date (visit date,
event onset) minus the implant date of the row's own implant or, for rows without one
(baseline visits, events before an implant), of the patient's first implant; negative
before the implant, NULL when either date is missing. `age_at_implant` is counted the
same way, from the year of that implant.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import (
    Case,
    CharField,
    Count,
    DateField,
    F,
    FilteredRelation,
    FloatField,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Cast, Coalesce, Round
from django.db.models.lookups import IsNull

from registry.models import (
    BASELINE,
    RELATED,
    AdverseEvent,
    AeOutcome,
    DeviceComponent,
    DeviceDeficiency,
    Disposition,
    Implant,
    PainSite,
    Patient,
    ProgrammingSession,
    PromAnswer,
    Recall,
    ReportingRule,
    SeriousCriterion,
    Visit,
    VisitStatus,
    first_implant_value,
)
from registry.models.instruments import check_value_set
from registry.models.programming import latest_session_value

from .columns import Column, Redcap
from .sql import (
    AddDays,
    DaysBetween,
    GreaterThan,
    age_at,
    blank_is_null,
    iso_class,
    neutralised,
    row_implant,
    yes_no,
)

RESPONDER_THRESHOLD_PCT = 50
DATES_MODES = ("relative", "iso")


@dataclass
class Dataset:
    """A dataset: its rows' model, its columns in file order, and how its rows are read.

    `prepare` adds the joins the column expressions read (FilteredRelations);
    `order_by` gives the file order.
    """

    name: str
    model: type
    columns: list[Column]
    order_by: Callable[[], tuple]
    prepare: Callable[[QuerySet], QuerySet] = field(default=lambda qs: qs)
    # Rows of another model appended to the dataset (the safety tabulation's device
    # deficiencies without an event): its column SQL by name (absent = empty) and the
    # column names the combined rows are ordered by.
    extra_sql: dict[str, Callable[[], object]] | None = None
    extra_order: tuple[str, ...] = ()

    def columns_for(self, *, dates: str = "relative") -> list[Column]:
        check_dates(dates)
        return [c for c in self.columns if dates == "iso" or not c.dates_only]

    def select(self, queryset: QuerySet, *, dates: str = "relative",
               spreadsheet: bool = False, value_set: str | None = None) -> QuerySet:
        """A `values_list` queryset of the columns (in order) over `queryset`, which must
        already be access-scoped (services.access.visible). `spreadsheet`: text columns
        as `cells.to_cell` writes them (for CSV, which PostgreSQL's COPY writes itself).
        `value_set`: the EQ-5D-5L value set of the PROM score columns (default ENG)."""
        columns = self.columns_for(dates=dates)
        extra = getattr(queryset, EXTRA_ROWS, None)  # read before any clone drops it
        if queryset.query.distinct:
            # DISTINCT would pull the ORDER BY columns into the SELECT (and into COPY's output).
            queryset = queryset.model.objects.filter(pk__in=queryset.values("pk"))
        qs = self.prepare(queryset).annotate(**{f"c_{c.name}": c.expression(value_set) for c in columns})
        names = [f"c_{c.name}" for c in columns]
        if spreadsheet:
            text = [c for c in columns if c.kind in ("str", "code")]
            qs = qs.annotate(**{f"s_{c.name}": neutralised(f"c_{c.name}") for c in text})
            names = [f"s_{c.name}" if c in text else f"c_{c.name}" for c in columns]
        if extra is not None and self.extra_sql is not None:
            return self._with_extra(qs, extra, columns, names, spreadsheet)
        return qs.values_list(*names).order_by(*self.order_by())

    def _with_extra(self, qs, extra, columns, names, spreadsheet):
        """The rows of `qs` and of `extra` (scoped like `qs` by the caller), one UNION ALL:
        a column the extra model lacks is empty there."""
        extra = extra.annotate(**{f"c_{c.name}": self.extra_sql[c.name]() if c.name in self.extra_sql
                                  else Value(None, output_field=_OUTPUT[c.kind]()) for c in columns})
        if spreadsheet:
            extra = extra.annotate(**{n: neutralised(f"c_{c.name}")
                                      for c, n in zip(columns, names, strict=True)
                                      if n.startswith("s_")})
        by_name = dict(zip((c.name for c in columns), names, strict=True))
        combined = qs.values_list(*names).order_by().union(extra.values_list(*names).order_by(), all=True)
        return combined.order_by(*(by_name[n] for n in self.extra_order))


# The attribute of a queryset carrying the extra rows `Dataset.select` appends (with_extra_rows).
EXTRA_ROWS = "dataset_extra_rows"


def with_extra_rows(queryset: QuerySet, extra: QuerySet) -> QuerySet:
    """`queryset` carrying `extra` (already access-scoped and filtered) for a dataset that
    appends another model's rows (`Dataset.extra_sql`); pass the result to the export as is."""
    setattr(queryset, EXTRA_ROWS, extra)
    return queryset


# The SQL type of an empty column, per kind (yes/no columns are "yes"/"no" text).
_OUTPUT = {"str": CharField, "code": CharField, "int": IntegerField, "float": FloatField,
           "bool": CharField, "date": DateField, "age": CharField, "scale": IntegerField}


def check_dates(dates: str) -> None:
    if dates not in DATES_MODES:
        raise ValueError(f"Unknown dates mode '{dates}'; expected one of {', '.join(DATES_MODES)}.")


def _date_of(model, name):
    return model._meta.get_field(name)


# --- Patients (internal: the REDCap enrolment form) -----------------------------------

def _latest_disposition(field: str):
    return Subquery(Disposition.objects.filter(patient_id=OuterRef("pk")).order_by("-date", "-pk")
                    .values(field)[:1])


PATIENTS = Dataset(
    name="patients",
    model=Patient,
    columns=[
        Column("registry_id", "Registry id (pseudonym)", "str", "registry_id",
               redcap=Redcap("enrolment", name="record_id")),
        Column("site", "Site code", "str", "site__code", redcap=Redcap("enrolment")),
        Column("sex", "Sex", "code", "sex", codes="sex", redcap=Redcap("enrolment")),
        Column("age_at_implant", "Age at first implant (years; 90 = 90 or older)", "age",
               lambda: age_at(first_implant_value("implant_date", "pk"), "birth_year"),
               redcap=Redcap("enrolment", label="Age at implant (years)",
                             note="Ages over 89 are exported as 90+ (HIPAA safe harbour).")),
        Column("etiology", "Etiology", "code", "etiology", codes="etiology",
               redcap=Redcap("enrolment")),
        Column("diagnosis", "Pain diagnosis", "code", "diagnosis", codes="diagnosis",
               redcap=Redcap("enrolment")),
        # The disposition in effect (the latest recorded; issue 20), and when, relative.
        Column("disposition", "Disposition (latest recorded; empty = active)", "code",
               lambda: _latest_disposition("status"), codes="disposition_status",
               redcap=Redcap("enrolment")),
        Column("disposition_days_from_implant", "Disposition: day relative to the first implant (days)",
               "int", lambda: DaysBetween(_latest_disposition("date"),
                                          first_implant_value("implant_date", "pk")),
               redcap=Redcap("enrolment")),
    ],
    order_by=lambda: ("registry_id",),
)


# --- Visits ------------------------------------------------------------------------------

def _visit_joins(qs: QuerySet) -> QuerySet:
    return qs.annotate(
        base_visit=FilteredRelation("patient__visits",
                                    condition=Q(patient__visits__timepoint=BASELINE)),
        ps_rl=FilteredRelation("pain_scores", condition=Q(
            pain_scores__pain_site=PainSite.RESIDUAL_LIMB, pain_scores__recall=Recall.AVG_7D)),
        ps_pl=FilteredRelation("pain_scores", condition=Q(
            pain_scores__pain_site=PainSite.PHANTOM_LIMB, pain_scores__recall=Recall.AVG_7D)),
    )


def _visit_implant_date():
    return row_implant("implant_date", _date_of(Visit, "date_done"))


def visit_days_from_implant():
    """SQL of a visit's `days_from_implant` (module docstring), for the visits dataset and
    for any other channel that shows it (the REST visit resource annotates it)."""
    return DaysBetween(F("date_done"), _visit_implant_date())


def _reduction_ok() -> Q:
    return Q(base_visit__nrs__gt=0, nrs__isnull=False) & ~Q(timepoint=BASELINE)


def _nrs_reduction():
    reduction = Round(Cast((F("base_visit__nrs") - F("nrs")) * Value(100.0), FloatField())
                      / F("base_visit__nrs"), 1)
    return Case(When(_reduction_ok(), then=reduction), default=Value(None), output_field=FloatField())


def _responder():
    kept = (100 - RESPONDER_THRESHOLD_PCT) / 100.0
    return Case(When(_reduction_ok() & Q(nrs__lte=F("base_visit__nrs") * kept), then=Value("yes")),
                When(_reduction_ok(), then=Value("no")), default=Value(None), output_field=CharField())


NRS = {"minimum": "0", "maximum": "10"}


def _entered_by():
    # Only a completed visit has answers someone entered.
    return Case(When(status=VisitStatus.COMPLETED, then=F("entered_by")), default=Value(None),
                output_field=CharField())


def _patient_columns(implant_date) -> list[Column]:
    """The patient columns that open the visit and event rows (the age counted from the
    row's implant, `implant_date()`); REDCap has them once, on the enrolment form."""
    return [
        Column("registry_id", "Registry id (pseudonym)", "str", "patient__registry_id"),
        Column("site", "Site code", "str", "patient__site__code"),
        Column("sex", "Sex", "code", "patient__sex", codes="sex"),
        Column("age_at_implant", "Age at implant (years; 90 = 90 or older)", "age",
               lambda: age_at(implant_date(), "patient__birth_year")),
    ]

def _prom_columns() -> list[Column]:
    """PROM scores, read from the visit's PROM sheet (services.proms.sql; written from the
    item answers by services.proms.stored), and the value set and algorithm that made them,
    stated on every row."""
    from registry.services.proms.instruments import ALGORITHM_VERSION, SCORES
    from registry.services.proms.sql import is_integer, score_expression

    def sql(code):
        return lambda value_set: score_expression(code, value_set)

    def label(code):
        instrument, score = SCORES[code]
        return f"{score.label}, {instrument.version}; algorithm {ALGORITHM_VERSION}"

    return [
        Column("eq5d5l_value_set", f"EQ-5D-5L value set of eq5d5l_index (algorithm {ALGORITHM_VERSION})",
               "code", lambda value_set: Value(check_value_set(value_set)), codes="eq5d_value_set",
               takes_value_set=True),
        *(Column(code, label(code), "int" if is_integer(score) else "float", sql(code), takes_value_set=True)
          for code, (_, score) in SCORES.items()),
    ]


VISITS = Dataset(
    name="visits",
    model=Visit,
    columns=[
        *_patient_columns(_visit_implant_date),
        Column("etiology", "Etiology", "code", "patient__etiology", codes="etiology"),
        Column("diagnosis", "Pain diagnosis", "code", "patient__diagnosis", codes="diagnosis"),
        Column("therapy", "Therapy", "code", lambda: row_implant("therapy", CharField()),
               codes="therapy", redcap=Redcap("visit")),
        Column("implant_ref", "Implant ref", "str", lambda: row_implant("ref", CharField()),
               redcap=Redcap("visit", note="The implant this visit follows (baseline: the first implant).")),
        Column("timepoint", "Timepoint (baseline, trial_end, unscheduled, m<N> months)", "str",
               "timepoint", redcap=Redcap("visit", label="Timepoint",
                                          note="baseline, trial_end, unscheduled or m<N> months")),
        Column("status", "Visit status", "code", "status", codes="visit_status", redcap=Redcap("visit")),
        Column("days_from_implant", "Visit day relative to the implant (days)", "int",
               visit_days_from_implant, redcap=Redcap("visit")),
        Column("nrs", "NRS pain 0-10", "int", "nrs", reason="nrs_missing",
               redcap=Redcap("visit", note="0 = no pain, 10 = worst imaginable", section="Pain", **NRS)),
        Column("nrs_baseline", "Baseline NRS pain 0-10", "int", "base_visit__nrs",
               redcap=Redcap("visit", annotation="@READONLY", **NRS)),
        Column("nrs_reduction_pct", "NRS reduction from baseline (%)", "float", _nrs_reduction,
               redcap=Redcap("visit", annotation="@READONLY")),
        Column("responder", f"Responder (NRS reduction >= {RESPONDER_THRESHOLD_PCT} %)", "bool",
               _responder, redcap=Redcap("visit", annotation="@READONLY")),
        Column("satisfaction", "Satisfaction (1-5)", "scale", "satisfaction", codes="satisfaction",
               reason="satisfaction_missing", redcap=Redcap("visit", section="Outcome")),
        Column("pgic", "PGIC (1-7)", "scale", "pgic", codes="pgic", reason="pgic_missing",
               redcap=Redcap("visit")),
        Column("would_choose_again", "Would choose the treatment again", "bool",
               lambda: yes_no(Q(would_choose_again=True), Q(would_choose_again=False)),
               redcap=Redcap("visit")),
        Column("opioid_mme", "Opioid use (MME/day)", "float", "opioid_mme", reason="opioid_mme_missing",
               redcap=Redcap("visit", minimum="0")),
        Column("stimulation_use", "Stimulation use", "code", lambda: blank_is_null("stimulation_use"),
               codes="stimulation_use", redcap=Redcap("visit")),
        Column("nrs_residual_limb", "Residual limb pain NRS, 7-day average", "int", "ps_rl__score",
               redcap=Redcap("visit", **NRS)),
        Column("nrs_phantom_limb", "Phantom limb pain NRS, 7-day average", "int", "ps_pl__score",
               redcap=Redcap("visit", **NRS)),
        # Why a value is missing, beside it (services.missing; files with a missing-value
        # mechanism also carry it in the value's own column).
        *[Column(f"{name}_missing", f"{label} missing because", "code",
                 lambda name=name: blank_is_null(f"{name}_missing"), codes="missing_reason")
          for name, label in (("nrs", "NRS"), ("satisfaction", "Satisfaction"), ("pgic", "PGIC"),
                              ("opioid_mme", "Opioid use"))],
        Column("visit_missing", "Visit not done because", "code", lambda: blank_is_null("visit_missing"),
               codes="missing_reason",
               redcap=Redcap("visit", note="A missed or not-done visit: why (its value fields carry "
                                           "the same reason as REDCap's missing-data code).")),
        *_prom_columns(),
        Column("entered_by", "Answers entered by (patient through her link, nurse, import)", "code",
               _entered_by, codes="entered_by", redcap=Redcap("visit", annotation="@READONLY")),
        Column("visit_date", "Date of visit", "date", "date_done", dates_only=True),
        Column("implant_date", "Implant date", "date", _visit_implant_date, dates_only=True),
    ],
    prepare=_visit_joins,
    order_by=lambda: ("patient__registry_id", Coalesce("date_done", "target_date").asc(nulls_last=True),
                      "pk"),
)


# --- Adverse events ------------------------------------------------------------------------

def _event_implant_date():
    return row_implant("implant_date", _date_of(AdverseEvent, "onset_date"))


MDCG = "MDCG 2020-10/1"

EVENTS = Dataset(
    name="adverse-events",
    model=AdverseEvent,
    columns=[
        *_patient_columns(_event_implant_date),
        Column("implant_ref", "Implant ref", "str", lambda: row_implant("ref", CharField()),
               redcap=Redcap("adverse_event", name="ae_implant_ref")),
        Column("therapy", "Therapy", "code", lambda: row_implant("therapy", CharField()),
               codes="therapy", redcap=Redcap("adverse_event", name="ae_therapy")),
        Column("days_from_implant", "Onset day relative to the implant (days)", "int",
               lambda: DaysBetween(F("onset_date"), _event_implant_date()),
               redcap=Redcap("adverse_event", name="ae_days_from_implant")),
        Column("category", "Event category", "code", "category", codes="ae_category",
               redcap=Redcap("adverse_event", name="ae_category")),
        Column("serious", "Serious (ISO 14155)", "bool", lambda: yes_no(Q(serious=True), Q(serious=False)),
               redcap=Redcap("adverse_event", name="ae_serious")),
        Column("serious_criterion", "Seriousness criterion", "code",
               lambda: blank_is_null("serious_criterion"), codes="serious_criterion",
               redcap=Redcap("adverse_event", name="ae_serious_criterion")),
        Column("severity", "Severity", "code", "severity", codes="severity",
               redcap=Redcap("adverse_event", name="ae_severity")),
        Column("device_relatedness", "Relatedness to the device", "code", "device_relatedness",
               codes="relatedness", redcap=Redcap("adverse_event", name="ae_device_relatedness", note=MDCG)),
        Column("procedure_relatedness", "Relatedness to the procedure", "code", "procedure_relatedness",
               codes="relatedness",
               redcap=Redcap("adverse_event", name="ae_procedure_relatedness", note=MDCG)),
        Column("anticipated", "Anticipated", "bool",
               lambda: yes_no(Q(anticipated=True), Q(anticipated=False)),
               redcap=Redcap("adverse_event", name="ae_anticipated")),
        Column("iso_class", "ISO 14155 class", "code", iso_class, codes="iso_class",
               redcap=Redcap("adverse_event", name="ae_iso_class", annotation="@READONLY")),
        Column("action", "Action taken", "code", "action", codes="ae_action",
               redcap=Redcap("adverse_event", name="ae_action")),
        Column("outcome", "Outcome", "code", "outcome", codes="ae_outcome",
               redcap=Redcap("adverse_event", name="ae_outcome")),
        Column("days_to_resolution", "Days from onset to resolution", "int",
               lambda: DaysBetween(F("resolved_on"), F("onset_date")),
               redcap=Redcap("adverse_event", name="ae_days_to_resolution")),
        # The safety workflow (issue 20): as in the safety tabulation.
        Column("awareness_days_after_onset", "Awareness: days after the onset", "int",
               lambda: DaysBetween(Coalesce(F("awareness_date"), F("onset_date")), F("onset_date")),
               redcap=Redcap("adverse_event", name="ae_awareness_days")),
        Column("imdrf_device_problem", "IMDRF device problem (Annex A)", "str",
               lambda: blank_is_null("imdrf_device_problem"),
               redcap=Redcap("adverse_event", name="ae_imdrf_a")),
        Column("imdrf_clinical_signs", "IMDRF clinical signs (Annex E)", "str",
               lambda: blank_is_null("imdrf_clinical_signs"),
               redcap=Redcap("adverse_event", name="ae_imdrf_e")),
        Column("imdrf_health_impact", "IMDRF health impact (Annex F)", "str",
               lambda: blank_is_null("imdrf_health_impact"),
               redcap=Redcap("adverse_event", name="ae_imdrf_f")),
        Column("reporting_rule", "Reporting rule (MDR Art. 87/88)", "code", lambda: reporting_rule(),
               codes="reporting_rule",
               redcap=Redcap("adverse_event", name="ae_reporting_rule", annotation="@READONLY")),
        Column("reported_on_time", "Reported by the deadline", "bool", lambda: _reported_on_time(),
               redcap=Redcap("adverse_event", name="ae_reported_on_time", annotation="@READONLY")),
        Column("onset_date", "Onset date", "date", "onset_date", dates_only=True),
        Column("resolved_on", "Resolution date", "date", "resolved_on", dates_only=True),
        Column("implant_date", "Implant date", "date", _event_implant_date, dates_only=True),
        Column("awareness_date", "Awareness date", "date",
               lambda: Coalesce(F("awareness_date"), F("onset_date")), dates_only=True),
        Column("reported_on", "Reported on", "date", "reported_on", dates_only=True),
    ],
    order_by=lambda: ("patient__registry_id", "onset_date", "pk"),
)

# --- PROM item answers (the long export) ------------------------------------------------------

PROM_ANSWERS = Dataset(
    name="prom-answers",
    model=PromAnswer,
    columns=[
        Column("registry_id", "Registry id (pseudonym)", "str", "visit__patient__registry_id"),
        Column("site", "Site code", "str", "visit__patient__site__code"),
        Column("timepoint", "Timepoint (baseline, trial_end, unscheduled, m<N> months)", "str",
               "visit__timepoint"),
        Column("instrument", "PROM instrument", "code", "instrument", codes="prom_instrument"),
        Column("version", "Instrument version", "str", "instrument_version"),
        Column("item", "Item code (instrument definition; no licensed wording)", "str", "item"),
        Column("value", "Item answer (as scored on the instrument)", "int", "value",
               reason="value_missing"),
        Column("value_missing", "Answer missing because", "code",
               lambda: blank_is_null("value_missing"), codes="missing_reason"),
        Column("visit_date", "Date of visit", "date", "visit__date_done", dates_only=True),
    ],
    order_by=lambda: ("visit__patient__registry_id", "visit__date_done", "visit_id", "instrument", "item"),
)

# --- Implants, with the latest programming session (issue 20) -------------------------------

def _latest(field: str):
    return latest_session_value(field)


def _implant_date():
    return F("implant_date")


IMPLANTS = Dataset(
    name="implants",
    model=Implant,
    columns=[
        Column("registry_id", "Registry id (pseudonym)", "str", "patient__registry_id"),
        Column("site", "Site code", "str", "patient__site__code"),
        Column("sex", "Sex", "code", "patient__sex", codes="sex"),
        Column("age_at_implant", "Age at implant (years; 90 = 90 or older)", "age",
               lambda: age_at(F("implant_date"), "patient__birth_year")),
        Column("implant_ref", "Implant ref", "str", "ref"),
        Column("therapy", "Therapy", "code", "therapy", codes="therapy"),
        Column("trial_days", "Trial length (days)", "int",
               lambda: DaysBetween(F("trial_end"), F("trial_start"))),
        Column("trial_success", "Trial successful", "bool",
               lambda: yes_no(Q(trial_success=True), Q(trial_success=False))),
        Column("manufacturer", "Manufacturer", "str", "manufacturer"),
        Column("model", "Model", "str", "model"),
        Column("lead_type", "Lead type", "code", lambda: blank_is_null("lead_type"), codes="lead_type"),
        Column("lead_count", "Number of leads", "int", "lead_count"),
        Column("ipg_rechargeable", "IPG rechargeable", "bool",
               lambda: yes_no(Q(ipg_rechargeable=True), Q(ipg_rechargeable=False))),
        Column("ipg_location", "IPG location", "code", lambda: blank_is_null("ipg_location"),
               codes="ipg_location"),
        Column("paradigm", "Paradigm at implant", "code", lambda: blank_is_null("paradigm"),
               codes="paradigm"),
        Column("explanted", "Explanted", "bool",
               lambda: yes_no(Q(explant_date__isnull=False), Q(explant_date__isnull=True))),
        Column("days_to_explant", "Days from implant to explant", "int",
               lambda: DaysBetween(F("explant_date"), F("implant_date"))),
        Column("explant_cause", "Explant reason (coded)", "code",
               lambda: blank_is_null("explant_reason_code"), codes="removal_reason"),
        Column("programming_sessions", "Programming sessions recorded", "int",
               lambda: Coalesce(Subquery(ProgrammingSession.objects.filter(implant_id=OuterRef("pk"))
                                         .order_by().values("implant_id")
                                         .annotate(n=Count("pk")).values("n")[:1]), Value(0))),
        Column("prog_days_from_implant", "Latest programming: day relative to the implant (days)",
               "int", lambda: DaysBetween(_latest("date"), F("implant_date"))),
        Column("prog_paradigm", "Latest programming: paradigm", "code",
               lambda: _latest("paradigm"), codes="paradigm"),
        Column("prog_frequency_hz", "Latest programming: frequency (Hz)", "float",
               lambda: Cast(_latest("frequency_hz"), FloatField())),
        Column("prog_pulse_width_us", "Latest programming: pulse width (µs)", "int",
               lambda: _latest("pulse_width_us")),
        Column("prog_amplitude_min_ma", "Latest programming: amplitude from (mA)", "float",
               lambda: Cast(_latest("amplitude_min_ma"), FloatField())),
        Column("prog_amplitude_max_ma", "Latest programming: amplitude up to (mA)", "float",
               lambda: Cast(_latest("amplitude_max_ma"), FloatField())),
        Column("prog_closed_loop_target_uv", "Latest programming: closed-loop target (µV)", "int",
               lambda: _latest("closed_loop_target_uv")),
        Column("prog_recharge_interval_days", "Latest programming: recharge interval (days)", "int",
               lambda: _latest("recharge_interval_days")),
        Column("implant_date", "Implant date", "date", "implant_date", dates_only=True),
        Column("explant_date", "Explant date", "date", "explant_date", dates_only=True),
        Column("prog_date", "Latest programming: date", "date", lambda: _latest("date"),
               dates_only=True),
    ],
    order_by=lambda: ("patient__registry_id", "ref"),
)


# --- Device components (issue 20): the REDCap repeating instrument `device_component` -----

def _component_start():
    return Coalesce(F("implanted_on"), F("implant__implant_date"))


COMPONENTS = Dataset(
    name="components",
    model=DeviceComponent,
    columns=[
        Column("registry_id", "Registry id (pseudonym)", "str", "implant__patient__registry_id"),
        Column("site", "Site code", "str", "implant__patient__site__code"),
        Column("implant_ref", "Implant ref", "str", "implant__ref",
               redcap=Redcap("device_component", name="comp_implant_ref")),
        Column("kind", "Component", "code", "kind", codes="component_kind",
               redcap=Redcap("device_component", name="comp_kind")),
        Column("manufacturer", "Manufacturer", "str", lambda: blank_is_null("manufacturer"),
               redcap=Redcap("device_component", name="comp_manufacturer")),
        Column("model", "Model", "str", lambda: blank_is_null("model"),
               redcap=Redcap("device_component", name="comp_model")),
        Column("udi_di", "UDI-DI (device identifier of the model)", "str",
               lambda: blank_is_null("udi_di"),
               redcap=Redcap("device_component", name="comp_udi_di",
                             note="The model's identifier; never the UDI-PI or the serial number.")),
        Column("rechargeable", "Rechargeable (IPGs)", "bool",
               lambda: yes_no(Q(rechargeable=True), Q(rechargeable=False)),
               redcap=Redcap("device_component", name="comp_rechargeable")),
        Column("implanted_days_from_implant", "Implanted: day relative to the implant (days)", "int",
               lambda: DaysBetween(_component_start(), F("implant__implant_date")),
               redcap=Redcap("device_component", name="comp_implanted_day")),
        Column("removed_days_from_implant", "Removed: day relative to the implant (days)", "int",
               lambda: DaysBetween(F("removed_on"), F("implant__implant_date")),
               redcap=Redcap("device_component", name="comp_removed_day")),
        Column("removal_reason", "Removal reason (coded)", "code", lambda: blank_is_null("removal_reason"),
               codes="removal_reason", redcap=Redcap("device_component", name="comp_removal_reason")),
        Column("removed_at_explant", "Removed at the explant", "bool",
               lambda: yes_no(Q(removed_at_explant=True), Q(removed_at_explant=False)),
               redcap=Redcap("device_component", name="comp_removed_at_explant",
                             annotation="@READONLY")),
        Column("implanted_on", "Implanted on", "date", _component_start, dates_only=True),
        Column("removed_on", "Removed on", "date", "removed_on", dates_only=True),
    ],
    order_by=lambda: ("implant__patient__registry_id", "implant__ref", "pk"),
)


# --- The safety tabulation (MDCG 2020-10/2 style): serious or device-related events -----------

def _related() -> Q:
    return Q(device_relatedness__in=RELATED) | Q(procedure_relatedness__in=RELATED)


def reporting_rule():
    """SQL for services.safety.reportability.event_rule (the same rule, from the same fields)."""
    serious_related = Q(serious=True) & _related()
    return Case(
        When(serious_related & Q(public_health_threat=True),
             then=Value(ReportingRule.PUBLIC_HEALTH_THREAT.value)),
        When(serious_related & (Q(outcome=AeOutcome.FATAL) | Q(serious_criterion=SeriousCriterion.DEATH)
                                | Q(anticipated=False)),
             then=Value(ReportingRule.DEATH_OR_DETERIORATION.value)),
        When(serious_related, then=Value(ReportingRule.SERIOUS_INCIDENT.value)),
        When(_related(), then=Value(ReportingRule.TREND.value)),
        default=Value(ReportingRule.NOT_REPORTABLE.value), output_field=CharField())


def deadline_days():
    """Days from awareness to the reporting deadline (the settings in force), NULL when the
    rule sets none."""
    serious_related = Q(serious=True) & _related()
    return Case(
        When(serious_related & Q(public_health_threat=True),
             then=Value(settings.REGISTRY_SAFETY_DAYS_PUBLIC_HEALTH_THREAT)),
        When(serious_related & (Q(outcome=AeOutcome.FATAL) | Q(serious_criterion=SeriousCriterion.DEATH)
                                | Q(anticipated=False)),
             then=Value(settings.REGISTRY_SAFETY_DAYS_DEATH_OR_DETERIORATION)),
        When(serious_related, then=Value(settings.REGISTRY_SAFETY_DAYS_SERIOUS_INCIDENT)),
        default=Value(None), output_field=IntegerField())


def safety_tabulated(events: QuerySet) -> QuerySet:
    """The events the safety tabulation lists: serious, or related to the device or the
    procedure (SAE, ADE, SADE, USADE)."""
    return events.filter(Q(serious=True) | _related())


def _awareness():
    return Coalesce(F("awareness_date"), F("onset_date"))


def _reported_on_time():
    late = GreaterThan(DaysBetween(F("reported_on"), _awareness()), deadline_days())
    return Case(When(Q(reported_on__isnull=True), then=Value(None)),
                When(IsNull(deadline_days(), True), then=Value(None)),
                When(late, then=Value("no")), default=Value("yes"), output_field=CharField())


def _deficiency_rule():
    """services.safety.deficiency_reportability for a deficiency without an event."""
    return Case(When(might_have_led_to_serious=True, then=Value(ReportingRule.SERIOUS_INCIDENT.value)),
                default=Value(ReportingRule.NOT_REPORTABLE.value), output_field=CharField())


def _deficiency_deadline_days():
    return Case(When(might_have_led_to_serious=True,
                     then=Value(settings.REGISTRY_SAFETY_DAYS_SERIOUS_INCIDENT)),
                default=Value(None), output_field=IntegerField())


def _deficiency_reported_on_time():
    late = GreaterThan(DaysBetween(F("reported_on"), F("awareness_date")), _deficiency_deadline_days())
    return Case(When(Q(reported_on__isnull=True) | Q(awareness_date__isnull=True), then=Value(None)),
                When(might_have_led_to_serious=False, then=Value(None)),
                When(late, then=Value("no")), default=Value("yes"), output_field=CharField())


# The safety columns a device deficiency recorded without an adverse event fills (one row
# each; the event's columns stay empty). Its awareness is its own awareness date, as in
# services.safety.deficiency_reportability; its "onset" is the day it was observed.
DEFICIENCY_SQL = {
    "deficiency_id": lambda: F("pk"),
    "registry_id": lambda: F("patient__registry_id"),
    "site": lambda: F("patient__site__code"),
    "implant_ref": lambda: F("implant__ref"),
    "days_from_implant": lambda: DaysBetween(F("observed_on"), F("implant__implant_date")),
    "awareness_days_after_onset": lambda: DaysBetween(F("awareness_date"), F("observed_on")),
    "imdrf_device_problem": lambda: blank_is_null("imdrf_device_problem"),
    "reporting_rule": _deficiency_rule,
    "deadline_days": _deficiency_deadline_days,
    "reported_days_after_awareness": lambda: DaysBetween(F("reported_on"), F("awareness_date")),
    "reported_on_time": _deficiency_reported_on_time,
    "onset_date": lambda: F("observed_on"),
    "awareness_date": lambda: F("awareness_date"),
    "deadline": lambda: AddDays(F("awareness_date"), _deficiency_deadline_days()),
    "reported_on": lambda: F("reported_on"),
}


def safety_deficiencies(deficiencies: QuerySet) -> QuerySet:
    """The device deficiencies the tabulation lists on their own rows: those without an event
    (a deficiency with its event is counted on the event's row)."""
    return deficiencies.filter(adverse_event__isnull=True)


SAFETY = Dataset(
    name="safety",
    model=AdverseEvent,
    columns=[
        Column("event_id", "Event id", "int", "pk"),
        Column("deficiency_id", "Device deficiency id (a deficiency without an event)", "int",
               lambda: Value(None, output_field=IntegerField())),
        *_patient_columns(_event_implant_date)[:2],
        Column("implant_ref", "Implant ref", "str", lambda: row_implant("ref", CharField())),
        Column("days_from_implant", "Onset day relative to the implant (days)", "int",
               lambda: DaysBetween(F("onset_date"), _event_implant_date())),
        Column("awareness_days_after_onset", "Awareness: days after the onset", "int",
               lambda: DaysBetween(_awareness(), F("onset_date"))),
        Column("category", "Event category", "code", "category", codes="ae_category"),
        Column("iso_class", "ISO 14155 class", "code", iso_class, codes="iso_class"),
        Column("serious", "Serious (ISO 14155)", "bool", lambda: yes_no(Q(serious=True), Q(serious=False))),
        Column("serious_criterion", "Seriousness criterion", "code",
               lambda: blank_is_null("serious_criterion"), codes="serious_criterion"),
        Column("device_relatedness", "Relatedness to the device", "code", "device_relatedness",
               codes="relatedness"),
        Column("procedure_relatedness", "Relatedness to the procedure", "code", "procedure_relatedness",
               codes="relatedness"),
        Column("anticipated", "Anticipated", "bool",
               lambda: yes_no(Q(anticipated=True), Q(anticipated=False))),
        Column("imdrf_device_problem", "IMDRF device problem (Annex A)", "str",
               lambda: blank_is_null("imdrf_device_problem")),
        Column("imdrf_clinical_signs", "IMDRF clinical signs (Annex E)", "str",
               lambda: blank_is_null("imdrf_clinical_signs")),
        Column("imdrf_health_impact", "IMDRF health impact (Annex F)", "str",
               lambda: blank_is_null("imdrf_health_impact")),
        Column("device_deficiencies", "Device deficiencies recorded with the event", "int",
               lambda: Coalesce(Subquery(DeviceDeficiency.objects.filter(adverse_event_id=OuterRef("pk"))
                                         .order_by().values("adverse_event_id")
                                         .annotate(n=Count("pk")).values("n")[:1]), Value(0))),
        Column("reporting_rule", "Reporting rule (MDR Art. 87/88)", "code", reporting_rule,
               codes="reporting_rule"),
        Column("deadline_days", "Days from awareness to the reporting deadline", "int", deadline_days),
        Column("reported_days_after_awareness", "Reported: days after awareness", "int",
               lambda: DaysBetween(F("reported_on"), _awareness())),
        Column("reported_on_time", "Reported by the deadline", "bool", _reported_on_time),
        Column("outcome", "Outcome", "code", "outcome", codes="ae_outcome"),
        Column("onset_date", "Onset date", "date", "onset_date", dates_only=True),
        Column("awareness_date", "Awareness date", "date", _awareness, dates_only=True),
        Column("deadline", "Reporting deadline", "date",
               lambda: AddDays(_awareness(), deadline_days()), dates_only=True),
        Column("reported_on", "Reported on", "date", "reported_on", dates_only=True),
    ],
    order_by=lambda: ("patient__registry_id", "onset_date", "pk"),
    extra_sql=DEFICIENCY_SQL,
    extra_order=("registry_id", "days_from_implant", "event_id", "deficiency_id"),
)


# The datasets the export endpoints offer, by their URL name.
EXPORTED: dict[str, Dataset] = {VISITS.name: VISITS, EVENTS.name: EVENTS, PROM_ANSWERS.name: PROM_ANSWERS,
                                 IMPLANTS.name: IMPLANTS, SAFETY.name: SAFETY}
ALL: dict[str, Dataset] = {**EXPORTED, PATIENTS.name: PATIENTS, COMPONENTS.name: COMPONENTS}


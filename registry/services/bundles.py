"""The CSV bundle: its format, and the writer (`bundle_export`).

A bundle is a folder (or a .zip of one) holding `sites.csv`, `patients.csv`,
`implants.csv`, `visits.csv`, `adverse_events.csv` and optionally
`pain_scores.csv`, `prom_answers.csv`, `components.csv`, `programming_sessions.csv`,
`contact_attempts.csv` and `dispositions.csv`. `FILES` below
is the one definition of every file and column; the importer (services.imports), the
writer and the reference in
docs/import-format.md (`format_reference_markdown`) all read it, so they
cannot drift apart. Codes are those of registry.models.choices.

The writer is deterministic: the same registry always gives byte-identical
files (rows sorted by their keys in byte order, fixed formatting), so that
export -> import into an empty database -> export reproduces the files.
"""

import datetime
import decimal
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from itertools import groupby
from pathlib import Path

from django.db import connection, models
from django.db.models import F, Q, Window
from django.db.models.functions import Collate, RowNumber
from django.utils import timezone

from registry.models import (
    AdverseEvent,
    AeAction,
    AeCategory,
    AeOutcome,
    ComponentKind,
    ConsentStatus,
    ContactAttempt,
    DeathCause,
    DeviceComponent,
    Diagnosis,
    Disposition,
    DispositionStatus,
    Enrolment,
    EnteredBy,
    Etiology,
    ExportLog,
    Implant,
    IpgLocation,
    LeadType,
    MissingReason,
    PainScore,
    PainSite,
    Paradigm,
    Patient,
    Pgic,
    PriorTreatment,
    ProgrammingSession,
    PromAnswer,
    PromInstrument,
    Recall,
    Relatedness,
    RemovalReason,
    Satisfaction,
    SeriousCriterion,
    Severity,
    Sex,
    Side,
    Site,
    StimulationUse,
    Therapy,
    ValueMissingReason,
    Visit,
    VisitStatus,
    WithdrawalLevel,
    WithdrawalReason,
    timepoint_sort_key,
)
from registry.models.choices import ContactMethod, ContactOutcome
from registry.models.sites import parse_emails
from registry.models.visits import NOT_DONE
from registry.services.cells import CsvWriter, to_cell

# A visit in a bundle is done or not done; a scheduled one holds nothing to carry.
BundleVisitStatus = models.TextChoices("BundleVisitStatus", [
    (status.name, (status.value, status.label)) for status in VisitStatus
    if status != VisitStatus.SCHEDULED])

# Value kinds of a column, and how a cell is written.
TEXT, CODE, CODES, INT, DATE, BOOL, DECIMAL, KEY = (
    "text", "code", "codes", "int", "date", "bool", "decimal", "key",
)
KIND_HELP = {
    TEXT: "text",
    CODE: "code",
    CODES: "codes separated by `;`",
    INT: "whole number",
    DATE: "date `YYYY-MM-DD`",
    BOOL: "`yes` or `no`",
    DECIMAL: "number, `.` as decimal mark",
    KEY: "text (key)",
}


# What the export writes for a component's removal detail (free text stays at the site).
REMOVAL_DETAIL_KEPT = "(detail kept at the site)"


@dataclass(frozen=True)
class Column:
    name: str
    kind: str
    required: bool = True  # the header must have it (the cell may still be empty)
    field: str | None = None  # model field, when named differently (or None = same name)
    choices: type | None = None
    value_range: tuple[int, int] | None = None
    mandatory: bool = False  # the cell must not be empty (beyond what the model requires)
    help: str = ""
    # Free text the export does not write: what it writes instead ("" = an empty cell). A
    # re-imported cell holding that is not a difference from the registry's record.
    withheld: str | None = None

    @property
    def model_field(self) -> str:
        return self.field or self.name

    @cached_property
    def codes(self) -> list[str]:
        return [str(v) for v in self.choices.values] if self.choices else []

    @cached_property
    def int_range(self) -> tuple[int, int] | None:
        if self.value_range:
            return self.value_range
        if self.choices is not None and self.kind == INT:
            return min(self.choices.values), max(self.choices.values)
        return None


@dataclass(frozen=True)
class BundleFile:
    name: str
    model: type
    columns: tuple[Column, ...]
    required: bool = False
    key_help: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def required_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


SITES = BundleFile(
    "sites.csv", Site,
    (
        Column("code", KEY, help="Site code, 2-8 upper-case letters or digits (e.g. NIJ)."),
        Column("name", TEXT),
        Column("country", TEXT, help="ISO 3166-1 alpha-2 (e.g. NL)."),
        Column("timezone", TEXT, help="IANA name (e.g. Europe/Amsterdam)."),
        Column("reminder_emails", TEXT, required=False,
               help="Addresses for the follow-up digest, separated by `;`."),
    ),
    key_help="`code`",
    notes=("Optional when every site of patients.csv already exists in the registry.",),
)
PATIENTS = BundleFile(
    "patients.csv", Patient,
    (
        Column("registry_id", KEY, help="Site code, `-`, number (e.g. NIJ-0007)."),
        Column("site", KEY, help="Site code; in sites.csv or already in the registry."),
        Column("sex", CODE, choices=Sex),
        Column("birth_year", INT, help="1900 to this year (no birth dates in the registry)."),
        Column("etiology", CODE, choices=Etiology),
        Column("diagnosis", CODE, choices=Diagnosis),
        Column("consent_date", DATE),
        Column("enrolment", CODE, required=False, choices=Enrolment,
               help="Empty = prospective. Retrospective patients may have visits before consent."),
        Column("consent_status", CODE, required=False, choices=ConsentStatus,
               help="Empty = consented."),
        Column("withdrawal_date", DATE, required=False, help="Needed when withdrawn."),
        Column("affected_region", TEXT, required=False, help="Affected nerve(s) or region."),
        Column("side", CODE, required=False, choices=Side),
        Column("pain_duration_months", INT, required=False, help="Before the implant."),
        Column("amputation_level", TEXT, required=False, help="e.g. transtibial."),
        Column("amputation_cause", TEXT, required=False),
        Column("prior_treatments", CODES, required=False, choices=PriorTreatment),
        Column("epro_consent_date", DATE, required=False,
               help="Consent to be sent questionnaire links by e-mail; empty = not given."),
    ),
    required=True,
    key_help="`registry_id`",
)
IMPLANTS = BundleFile(
    "implants.csv", Implant,
    (
        Column("implant_ref", KEY, field="ref",
               help="Unique key of the therapy episode (e.g. NIJ-0007-I1)."),
        Column("registry_id", KEY, field="patient", help="In patients.csv or in the registry."),
        Column("therapy", CODE, choices=Therapy),
        Column("trial_start", DATE),
        Column("trial_end", DATE, help="On or after trial_start."),
        Column("trial_success", BOOL),
        Column("implant_date", DATE, help="On or after trial_start."),
        Column("explant_date", DATE, help="On or after implant_date."),
        Column("explant_reason", TEXT, help="Detail of the explant reason (free text); needed "
                                            "with the code `other`."),
        Column("explant_reason_code", CODE, required=False, choices=RemovalReason,
               help="Needed with an explant date; empty with a detail given = `other`."),
        Column("trial_criterion", TEXT, required=False),
        Column("manufacturer", TEXT, required=False),
        Column("model", TEXT, required=False),
        Column("lead_type", CODE, required=False, choices=LeadType),
        Column("lead_count", INT, required=False, value_range=(1, 8)),
        Column("target", TEXT, required=False, help="Vertebral level, DRG level or nerve."),
        Column("ipg_rechargeable", BOOL, required=False),
        Column("ipg_location", CODE, required=False, choices=IpgLocation),
        Column("paradigm", CODE, required=False, choices=Paradigm),
    ),
    key_help="`implant_ref`",
    notes=("Each imported implant gets its follow-up schedule from the site's protocol; "
           "timepoints already in visits.csv stay completed.",),
)
VISITS = BundleFile(
    "visits.csv", Visit,
    (
        Column("registry_id", KEY, field="patient"),
        Column("implant_ref", KEY, field="implant",
               help="Empty for the baseline; needed for m<N> follow-ups."),
        Column("timepoint", TEXT, mandatory=True,
               help="`baseline`, `trial_end`, `unscheduled` or `m<N>` (N months after implant, "
                    "e.g. m3, m12, m120)."),
        Column("visit_date", DATE, field="date_done",
               help="The day it was done: needed for a completed visit, empty for a missed or "
                    "not-applicable one. Not before consent (unless retrospective); follow-ups not "
                    "before the implant."),
        Column("nrs", INT, value_range=(0, 10), help="Primary pain, 0-10."),
        Column("satisfaction", INT, choices=Satisfaction, help="1-5, 5 = very satisfied."),
        Column("pgic", INT, choices=Pgic, help="1-7, 1 = very much improved."),
        Column("would_choose_again", BOOL, required=False),
        Column("opioid_mme", DECIMAL, required=False, help="Opioid use, MME/day, >= 0."),
        Column("stimulation_use", CODE, required=False, choices=StimulationUse),
        # Why a value is blank (issue 18), beside it: only with the value's cell empty.
        *[Column(f"{name}_missing", CODE, required=False, choices=ValueMissingReason,
                 help=f"Why {label} is empty (only with {label} empty).")
          for name, label in (("nrs", "nrs"), ("satisfaction", "satisfaction"), ("pgic", "pgic"),
                              ("opioid_mme", "opioid_mme"))],
        # Read by hand (services/imports/checks.py), not set as a field: empty = `import`.
        Column("entered_by", CODE, required=False, field="entered_by_at_source", choices=EnteredBy,
               help="Who entered the answers where the bundle was made (`patient` through her "
                    "questionnaire link, `nurse`, `import`); empty = `import`."),
        # A visit not done (issue 18): its status and why, no date and no values.
        Column("status", CODE, required=False, choices=BundleVisitStatus,
               help="Empty = `completed`; `missed` or `not_applicable`: the visit was not done "
                    "(visit_date and the values empty)."),
        Column("visit_missing", CODE, required=False, choices=MissingReason,
               help="Why the visit was not done (missed or not_applicable only)."),
    ),
    key_help="`registry_id` + `timepoint` for the baseline; `registry_id` + `implant_ref` + "
             "`timepoint` for the others; `unscheduled` visits add `visit_date`",
    notes=("A visit is completed (date done = visit_date) unless `status` says it was missed or "
           "not applicable; the export writes the completed visits and those not done with the "
           "reason why (`visit_missing`), never the scheduled ones (an import schedules the "
           "timepoints it does not hold itself).",),
)
PAIN_SCORES = BundleFile(
    "pain_scores.csv", PainScore,
    (
        Column("registry_id", KEY),
        Column("implant_ref", KEY),
        Column("timepoint", TEXT, mandatory=True),
        Column("visit_date", DATE, mandatory=True),
        Column("pain_site", CODE, choices=PainSite),
        Column("recall", CODE, choices=Recall),
        Column("score", INT, value_range=(0, 10), mandatory=True),
    ),
    key_help="the visit (`registry_id`, `implant_ref`, `timepoint`, `visit_date`, as in "
             "visits.csv) + `pain_site` + `recall`",
    notes=("Further pain scores per pain site and recall period (e.g. residual and phantom "
           "limb pain); the visit must be in visits.csv or in the registry.",),
)
ADVERSE_EVENTS = BundleFile(
    "adverse_events.csv", AdverseEvent,
    (
        Column("registry_id", KEY, field="patient"),
        Column("implant_ref", KEY, field="implant", help="Empty when not tied to an implant."),
        Column("onset_date", DATE),
        Column("category", CODE, choices=AeCategory),
        Column("serious", BOOL, mandatory=True, help="ISO 14155 serious adverse event."),
        Column("severity", CODE, choices=Severity),
        Column("device_relatedness", CODE, choices=Relatedness),
        Column("procedure_relatedness", CODE, choices=Relatedness),
        Column("action", CODE, choices=AeAction, help="Empty = none."),
        Column("outcome", CODE, choices=AeOutcome, help="Empty = ongoing."),
        Column("resolved_on", DATE, help="On or after onset; needed when resolved."),
        Column("serious_criterion", CODE, required=False, choices=SeriousCriterion),
        Column("anticipated", BOOL, required=False,
               help="Listed in the risk analysis; `no` on a serious related event = USADE."),
        # The safety workflow (issue 20), optional columns.
        Column("awareness_date", DATE, required=False,
               help="The day the site learned of it; empty = the onset date."),
        Column("public_health_threat", BOOL, required=False, help="Empty = no."),
        Column("reported_on", DATE, required=False, help="Reported to the authority on."),
        Column("imdrf_device_problem", TEXT, required=False,
               help="IMDRF Annex A code; empty = proposed from the category."),
        Column("imdrf_clinical_signs", TEXT, required=False, help="IMDRF Annex E code."),
        Column("imdrf_health_impact", TEXT, required=False, help="IMDRF Annex F code."),
    ),
    key_help="`registry_id` + `implant_ref` + `onset_date` + `category`",
    notes=("The ISO 14155 class (AE, SAE, ADE, SADE, USADE) is derived, not imported.",),
)
PROM_ANSWERS = BundleFile(
    "prom_answers.csv", PromAnswer,
    (
        Column("registry_id", KEY),
        Column("implant_ref", KEY),
        Column("timepoint", TEXT, mandatory=True),
        Column("visit_date", DATE, mandatory=True),
        Column("instrument", CODE, choices=PromInstrument, mandatory=True),
        Column("item", TEXT, mandatory=True,
               help="Item code of the instrument (e.g. `mo`, `s1`, `q14`; docs/proms.md)."),
        Column("value", INT,
               help="The item's answer on its own scale (EQ-5D-5L 1-5, VAS 0-100, ODI 0-5, BPI 0-10, "
                    "HADS 0-3, PCS 0-4, PSEQ 0-6); empty with `value_missing`."),
        # Why an item asked is not answered (issue 18), beside the value.
        Column("value_missing", CODE, required=False, choices=ValueMissingReason,
               help="Why the item is not answered (only with value empty)."),
    ),
    key_help="the visit (`registry_id`, `implant_ref`, `timepoint`, `visit_date`, as in "
             "visits.csv) + `instrument` + `item`",
    notes=("Patient-reported outcome answers, one row per item; scores are computed from them, "
           "never imported. The visit must be in visits.csv or in the registry.",),
)
COMPONENTS = BundleFile(
    "components.csv", DeviceComponent,
    (
        Column("implant_ref", KEY, field="implant", help="In implants.csv or in the registry."),
        Column("kind", CODE, choices=ComponentKind, mandatory=True),
        Column("position", INT, mandatory=True, value_range=(1, 99),
               help="1, 2, ... per implant and kind, in the order entered (lead 1, lead 2)."),
        Column("manufacturer", TEXT, required=False),
        Column("model", TEXT, required=False),
        Column("udi_di", TEXT, required=False, help="UDI device identifier (the model's); never "
                                                    "the UDI-PI or serial."),
        Column("rechargeable", BOOL, required=False, help="IPGs."),
        Column("implanted_on", DATE, required=False, help="Empty = the implant date."),
        Column("removed_on", DATE, required=False),
        Column("removal_reason", CODE, required=False, choices=RemovalReason,
               help="Needed with removed_on."),
        Column("removal_detail", TEXT, required=False, withheld=REMOVAL_DETAIL_KEPT,
               help="Free text, needed with `other`; the export writes `(detail kept at the site)`."),
    ),
    key_help="`implant_ref` + `kind` + `position`",
    notes=("Device components of an implant (IPG, leads, extensions). Serial numbers and UDI-PIs "
           "are identifiers and never in a bundle.",),
)
PROGRAMMING_SESSIONS = BundleFile(
    "programming_sessions.csv", ProgrammingSession,
    (
        Column("implant_ref", KEY, field="implant", help="In implants.csv or in the registry."),
        Column("date", DATE, mandatory=True, help="Within the implant's life (from the trial)."),
        Column("paradigm", CODE, choices=Paradigm, mandatory=True),
        Column("frequency_hz", DECIMAL, required=False, help="Hz, 1-10000 (burst: the burst rate)."),
        Column("pulse_width_us", INT, required=False, value_range=(10, 1000), help="µs."),
        Column("amplitude_min_ma", DECIMAL, required=False, help="mA, 0-25.5."),
        Column("amplitude_max_ma", DECIMAL, required=False, help="mA, 0-25.5, at least the minimum."),
        Column("closed_loop_target_uv", INT, required=False, value_range=(1, 2000),
               help="µV; closed-loop (ecap) sessions only."),
        Column("recharge_interval_days", INT, required=False, value_range=(1, 365)),
        Column("contacts", TEXT, required=False, withheld="",
               help="Electrode configuration (free text; not written by the export)."),
    ),
    key_help="`implant_ref` + `date` + `paradigm`",
    notes=("Stimulation settings chosen on a day; the latest is the implant's current setting. "
           "The export leaves `contacts` empty (free text stays at the site).",),
)
CONTACT_ATTEMPTS = BundleFile(
    "contact_attempts.csv", ContactAttempt,
    (
        Column("registry_id", KEY, field="patient", help="In patients.csv or in the registry."),
        Column("date", DATE, mandatory=True),
        Column("method", CODE, choices=ContactMethod, mandatory=True),
        Column("outcome", CODE, choices=ContactOutcome, mandatory=True),
        Column("note", TEXT, required=False, withheld="",
               help="Free text (not written by the export)."),
    ),
    key_help="`registry_id` + `date` + `method` + `outcome` (the same attempt may be listed "
             "more than once: each row is one attempt)",
    notes=("Attempts to reach a patient; a patient is lost to follow-up only after the unanswered "
           "ones the registry asks for (`REGISTRY_LOST_TO_FOLLOW_UP_ATTEMPTS`, since she was last "
           "reached or seen at a visit). The export leaves `note` empty (free text stays at the "
           "site).",),
)
DISPOSITIONS = BundleFile(
    "dispositions.csv", Disposition,
    (
        Column("registry_id", KEY, field="patient", help="In patients.csv or in the registry."),
        Column("status", CODE, choices=DispositionStatus, mandatory=True),
        Column("date", DATE, mandatory=True,
               help="From this day on the status holds (day of death, of the withdrawal, ...)."),
        Column("withdrawal_level", CODE, required=False, choices=WithdrawalLevel,
               help="Needed with `withdrawn`, empty otherwise."),
        Column("withdrawal_reason", CODE, required=False, choices=WithdrawalReason,
               help="Withdrawals only."),
        Column("transferred_to", KEY, required=False,
               help="Transfers only: the receiving site's code (in sites.csv or the registry); "
                    "empty = out of the registry."),
        Column("death_cause", CODE, required=False, choices=DeathCause,
               help="Needed with `deceased`, empty otherwise."),
        Column("death_device_relatedness", CODE, required=False, choices=Relatedness,
               help="Needed with `deceased`."),
        Column("death_procedure_relatedness", CODE, required=False, choices=Relatedness,
               help="Needed with `deceased`."),
        Column("note", TEXT, required=False, withheld="",
               help="Free text (not written by the export)."),
    ),
    key_help="`registry_id` + `date` + `status`",
    notes=("A patient's course, one row per change, in date order (rows of the same day in the "
           "order they were recorded). Each row is recorded as in the admin "
           "(services/disposition.py): lost to follow-up needs the contact attempts "
           "(contact_attempts.csv or the registry), nothing follows a death, a withdrawal sets "
           "the consent status, and the follow-up schedule and reminders stop from the date. "
           "The export leaves `note` empty (free text stays at the site).",),
)
FILES: tuple[BundleFile, ...] = (SITES, PATIENTS, IMPLANTS, VISITS, PAIN_SCORES, ADVERSE_EVENTS,
                                 PROM_ANSWERS, COMPONENTS, PROGRAMMING_SESSIONS, CONTACT_ATTEMPTS,
                                 DISPOSITIONS)
FILE_NAMES = [f.name for f in FILES]


# ---------------------------------------------------------------- formatting


def cell(value, kind: str = TEXT) -> str:
    """One value as the bundle writes it (and as the importer reads it back)."""
    if value is None:
        return ""
    if kind == BOOL or isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal) or kind == DECIMAL:
        # One fixed form whatever the back-end returns (12.5, never 12.50).
        return format(decimal.Decimal(value).quantize(decimal.Decimal("0.1")), "f")
    if kind == CODES:
        return ";".join(value)
    # Text a spreadsheet would run as a formula gets a quote; the importer takes it off.
    return to_cell(value) if isinstance(value, str) else str(value)


def visit_key(registry_id: str, implant_ref: str, timepoint: str, visit_date: str) -> tuple:
    """How a visit is found again: one baseline per patient, one visit per implant and
    timepoint, unscheduled visits by their date."""
    if timepoint == "baseline":
        return (registry_id, "baseline")
    if timepoint == "unscheduled":
        return (registry_id, implant_ref, timepoint, visit_date)
    return (registry_id, implant_ref, timepoint)


def _bytewise(name: str):
    # Sort keys in byte order on every back-end (database collations differ on '-').
    collation = {"postgresql": "C", "sqlite": "BINARY"}.get(connection.vendor)
    return Collate(F(name), collation) if collation else F(name)


# ---------------------------------------------------------------- writer


class _Writer:
    def __init__(self, target: Path, spec: BundleFile):
        self.handle = open(target / spec.name, "w", newline="", encoding="utf-8")  # noqa: SIM115
        self.csv = CsvWriter(self.handle)
        self.csv.writerow(spec.column_names)
        self.rows = 0

    def write(self, row: Iterable[str]):
        self.csv.writerow(row)
        self.rows += 1

    def close(self):
        self.handle.close()


def _rows(spec: BundleFile, queryset, paths: dict[str, str]) -> Iterator[tuple]:
    """Rows of `queryset` as tuples in the file's column order (model paths per column)."""
    fields = [paths.get(c.name, c.model_field) for c in spec.columns]
    return queryset.values_list(*fields).iterator(chunk_size=5000)


def _format(spec: BundleFile, row: tuple) -> list[str]:
    return [cell(value, column.kind) for column, value in zip(spec.columns, row, strict=True)]


def bundle_export(*, target: str | Path, site: Site | None = None, actor=None,
                  progress: Callable[[str, int], None] | None = None) -> dict[str, int]:
    """Write the registry (or one site) as a bundle into the folder `target`.

    Promises: every file of the format with its full header, completed visits
    and those not done with their reason (never scheduled ones), no direct identifiers (no
    PatientIdentifiers, device serials, free-text notes or descriptions), dates
    as they are, rows in byte order of their keys, so the same registry always
    gives the same bytes. Logged in ExportLog.
    Refuses a `target` that exists and is not an empty folder (no silent overwrite).
    """
    target = Path(target)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise FileExistsError(f"{target}: exists and is not an empty folder.")
    target.mkdir(parents=True, exist_ok=True)
    log = ExportLog.objects.create(user=actor, channel="command", dataset="bundle", format="csv",
                                   filters={"site": site.code} if site else {}, dates="absolute")
    counts: dict[str, int] = {}
    sites = Site.objects.all()
    patients = Patient.objects.all()
    if site is not None:
        sites = sites.filter(pk=site.pk)
        patients = patients.filter(site=site)

    def emit(spec, rows):
        writer = _Writer(target, spec)
        try:
            for row in rows:
                writer.write(_format(spec, row))
                if progress and writer.rows % 5000 == 0:
                    progress(spec.name, 5000)
        finally:
            writer.close()
        if progress:
            progress(spec.name, writer.rows % 5000)
        counts[spec.name.removesuffix(".csv")] = writer.rows

    emit(SITES, ((code, name, country, tz, ";".join(parse_emails(emails)))
                 for code, name, country, tz, emails in _rows(
                     SITES, sites.order_by(_bytewise("code")), {})))
    emit(PATIENTS, _rows(PATIENTS, patients.order_by(_bytewise("registry_id")),
                         {"site": "site__code"}))
    implants = Implant.objects.filter(patient__in=patients).order_by(
        _bytewise("patient__registry_id"), _bytewise("ref"))
    emit(IMPLANTS, _rows(IMPLANTS, implants, {"registry_id": "patient__registry_id"}))

    # Completed visits, and those not done with the reason why; a visit not done without
    # one says nothing the importing registry's own schedule would not say again.
    visits = Visit.objects.filter(
        Q(status=VisitStatus.COMPLETED) | Q(status__in=NOT_DONE, visit_missing__gt=""),
        patient__in=patients).order_by(_bytewise("patient__registry_id"))
    visit_rows = _rows(VISITS, visits, {"registry_id": "patient__registry_id",
                                         "implant_ref": "implant__ref", "entered_by": "entered_by"})
    # Visits not done (no date) after the dated ones, by timepoint.
    emit(VISITS, _sorted_per_patient(visit_rows, lambda r: (
        r[3] or datetime.date.max, timepoint_sort_key(r[2]), r[1] or "")))

    scores = PainScore.objects.filter(
        visit__patient__in=patients, visit__status=VisitStatus.COMPLETED,
    ).order_by(_bytewise("visit__patient__registry_id"))
    score_rows = _rows(PAIN_SCORES, scores, {
        "registry_id": "visit__patient__registry_id", "implant_ref": "visit__implant__ref",
        "timepoint": "visit__timepoint", "visit_date": "visit__date_done"})
    emit(PAIN_SCORES, _sorted_per_patient(score_rows, lambda r: (
        r[3], timepoint_sort_key(r[2]), r[1] or "", r[4], r[5])))

    events = AdverseEvent.objects.filter(patient__in=patients).order_by(
        _bytewise("patient__registry_id"))
    event_rows = _rows(ADVERSE_EVENTS, events, {"registry_id": "patient__registry_id",
                                                 "implant_ref": "implant__ref"})
    emit(ADVERSE_EVENTS, _sorted_per_patient(event_rows, lambda r: (r[2], r[3], r[1] or "")))

    answers = PromAnswer.objects.filter(
        visit__patient__in=patients, visit__status=VisitStatus.COMPLETED,
    ).order_by(_bytewise("visit__patient__registry_id"))
    answer_rows = _rows(PROM_ANSWERS, answers, {
        "registry_id": "visit__patient__registry_id", "implant_ref": "visit__implant__ref",
        "timepoint": "visit__timepoint", "visit_date": "visit__date_done"})
    emit(PROM_ANSWERS, _sorted_per_patient(answer_rows, lambda r: (
        r[3], timepoint_sort_key(r[2]), r[1] or "", r[4], r[5])))

    components = DeviceComponent.objects.filter(implant__patient__in=patients).annotate(
        position=Window(RowNumber(), partition_by=[F("implant_id"), F("kind")], order_by=F("pk").asc()))
    component_rows = sorted(_rows(COMPONENTS, components, {"implant_ref": "implant__ref"}),
                            key=lambda r: (r[0].encode(), r[1].encode(), r[2]))
    # The free-text detail stays at the site; `other` needs one, so a fixed text stands in.
    emit(COMPONENTS, (row[:-1] + (REMOVAL_DETAIL_KEPT if row[-1] else None,) for row in component_rows))

    sessions = ProgrammingSession.objects.filter(implant__patient__in=patients).order_by(
        _bytewise("implant__ref"), "date", _bytewise("paradigm"))
    # No free text leaves: the electrode configuration is written empty.
    emit(PROGRAMMING_SESSIONS, (row[:-1] + (None,) for row in _rows(
        PROGRAMMING_SESSIONS, sessions, {"implant_ref": "implant__ref"})))

    attempts = ContactAttempt.objects.filter(patient__in=patients).order_by(
        _bytewise("patient__registry_id"), "date", _bytewise("method"), _bytewise("outcome"))
    # No free text leaves: the note is written empty.
    emit(CONTACT_ATTEMPTS, (row[:-1] + (None,) for row in _rows(
        CONTACT_ATTEMPTS, attempts, {"registry_id": "patient__registry_id"})))

    # In the order they were recorded within a day (the later one is in effect), so an
    # import replaying the rows through the disposition service ends in the same state.
    dispositions = Disposition.objects.filter(patient__in=patients).order_by(
        _bytewise("patient__registry_id"), "date", "pk")
    emit(DISPOSITIONS, (row[:-1] + (None,) for row in _rows(
        DISPOSITIONS, dispositions, {"registry_id": "patient__registry_id",
                                     "transferred_to": "transferred_to__code"})))

    log.rows = sum(counts.values())
    log.finished_at = timezone.now()
    log.save(update_fields=["rows", "finished_at"])
    return counts


def _sorted_per_patient(rows: Iterator[tuple], key) -> Iterator[tuple]:
    # The database orders by patient (byte order); within a patient the order needs
    # Python (timepoints sort as baseline, trial_end, m1 < m3 < m12, unscheduled).
    for _registry_id, group in groupby(rows, key=lambda r: r[0]):
        yield from sorted(group, key=key)


# ---------------------------------------------------------------- reference text


def format_reference_markdown() -> str:
    """The column reference of docs/import-format.md, generated from FILES and the choices."""
    out = []
    for spec in FILES:
        status = "required" if spec.required else "optional"
        out.append(f"### `{spec.name}` ({status} file)")
        out.append("")
        if spec.key_help:
            out.append(f"Key: {spec.key_help}.")
        out.extend(spec.notes)
        out.append("")
        out.append("| column | header | type | values | notes |")
        out.append("| --- | --- | --- | --- | --- |")
        for c in spec.columns:
            header = "required" if c.required else "optional"
            if c.choices is not None and c.kind in (CODE, CODES, INT):
                values = ", ".join(f"`{v}`" for v in c.codes)
            elif c.value_range:
                values = f"{c.value_range[0]} to {c.value_range[1]}"
            else:
                values = ""
            notes = (c.help + (" Must not be empty." if c.mandatory else "")).strip()
            out.append(f"| `{c.name}` | {header} | {KIND_HELP[c.kind]} | {values} | {notes} |")
        out.append("")
    return "\n".join(out).strip() + "\n"


def code_labels_markdown() -> str:
    """Each code list with its labels (what the codes mean)."""
    seen, out = set(), []
    for spec in FILES:
        for c in spec.columns:
            if c.choices is None or c.choices in seen:
                continue
            seen.add(c.choices)
            out.append(f"- **{c.choices.__name__}**: " + "; ".join(
                f"`{value}` = {label}" for value, label in c.choices.choices))
    return "\n".join(out) + "\n"


__all__ = [
    "ADVERSE_EVENTS", "COMPONENTS", "CONTACT_ATTEMPTS", "DISPOSITIONS", "FILES", "FILE_NAMES",
    "IMPLANTS", "PAIN_SCORES", "PATIENTS",
    "PROGRAMMING_SESSIONS",
    "PROM_ANSWERS", "SITES",
    "VISITS", "BundleFile", "Column", "bundle_export", "cell", "code_labels_markdown",
    "format_reference_markdown", "visit_key",
]

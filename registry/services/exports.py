"""Analysis datasets: one row per visit (or adverse event), de-identified, streamed.

The dataset is defined once, as a Django queryset of SQL expressions
(`visit_dataset` / `event_dataset`), so every channel and every format gets the
same columns and the same derived values:

- CSV on PostgreSQL streams `COPY (<that SELECT>) TO STDOUT WITH CSV` in ~64 KB
  chunks (close to the speed of psql itself); elsewhere it streams
  `values_list().iterator()` through the csv module. Both write identical text.
- JSON streams the typed rows (`visit_rows` / `event_rows`).
- xlsx (openpyxl write-only), sav and dta (pyreadstat, with variable and value
  labels) are written to a temporary file, which the caller streams.

De-identification is the default and cannot be bypassed here: dates become
days from the implant, ages over 89 become "90+", free text (visit notes, event
descriptions) and identifiers are never selected. `dates="iso"` adds the real
dates; deciding who may ask for it is the caller's job (`export_dates_allowed`).

Public functions other channels reuse (REDCap, FHIR, commands):
`visit_rows(queryset, *, dates=...)`, `event_rows(...)`, `VISIT_COLUMNS`,
`EVENT_COLUMNS`, `columns_for(dataset, dates=...)`, `export_csv_stream`,
`export_json_stream`, `export_file`, `export_log_start` / `export_log_finish`.
The querysets passed in must already be scoped with `services.access.visible`.
"""

from __future__ import annotations

import csv
import datetime
import decimal
import io
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from django.db import connections
from django.db.models import (
    Case,
    CharField,
    F,
    FilteredRelation,
    FloatField,
    Func,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Cast, Coalesce, ExtractYear, Round
from django.utils import timezone

from registry.models import (
    BASELINE,
    RELATED,
    AdverseEvent,
    AeAction,
    AeCategory,
    AeOutcome,
    Diagnosis,
    Etiology,
    ExportLog,
    Implant,
    Iso14155Class,
    PainSite,
    Pgic,
    Recall,
    Satisfaction,
    SeriousCriterion,
    Severity,
    Sex,
    StimulationUse,
    Therapy,
    Visit,
    VisitStatus,
)
from registry.models import Relatedness as Rel

FORMATS = ("csv", "json", "xlsx", "sav", "dta")
DATES_MODES = ("relative", "iso")
DATASETS = ("visits", "adverse-events")
CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "sav": "application/x-spss-sav",
    "dta": "application/x-stata-dta",
}
RESPONDER_THRESHOLD_PCT = 50
AGE_TOP = 90  # HIPAA safe harbour: ages over 89 are one group
AGE_TOP_LABEL = "90+"
CHUNK_BYTES = 64 * 1024
YES_NO = {"yes": True, "no": False}


@dataclass(frozen=True)
class Column:
    """One dataset column: its name, a variable label, a kind and value labels.

    kind: "str" (free code), "code" (coded string, `labels` = code -> label),
    "int", "float", "bool" (yes/no), "date", "age" (int, 90 = "90+"),
    "scale" (int with `labels`, e.g. PGIC 1-7).
    """

    name: str
    label: str
    kind: str
    labels: tuple[tuple, ...] = ()


def _choices(choices) -> tuple[tuple, ...]:
    return tuple((value, str(label)) for value, label in choices.choices)


VISIT_COLUMNS: list[Column] = [
    Column("registry_id", "Registry id (pseudonym)", "str"),
    Column("site", "Site code", "str"),
    Column("sex", "Sex", "code", _choices(Sex)),
    Column("age_at_implant", "Age at implant (years; 90 = 90 or older)", "age"),
    Column("etiology", "Etiology", "code", _choices(Etiology)),
    Column("diagnosis", "Pain diagnosis", "code", _choices(Diagnosis)),
    Column("therapy", "Therapy", "code", _choices(Therapy)),
    Column("implant_ref", "Implant ref", "str"),
    Column("timepoint", "Timepoint (baseline, trial_end, unscheduled, m<N> months)", "str"),
    Column("status", "Visit status", "code", _choices(VisitStatus)),
    Column("days_from_implant", "Visit day relative to the implant (days)", "int"),
    Column("nrs", "NRS pain 0-10", "int"),
    Column("nrs_baseline", "Baseline NRS pain 0-10", "int"),
    Column("nrs_reduction_pct", "NRS reduction from baseline (%)", "float"),
    Column("responder", f"Responder (NRS reduction >= {RESPONDER_THRESHOLD_PCT} %)", "bool"),
    Column("satisfaction", "Satisfaction (1-5)", "scale", _choices(Satisfaction)),
    Column("pgic", "PGIC (1-7)", "scale", _choices(Pgic)),
    Column("would_choose_again", "Would choose the treatment again", "bool"),
    Column("opioid_mme", "Opioid use (MME/day)", "float"),
    Column("stimulation_use", "Stimulation use", "code", _choices(StimulationUse)),
    Column("nrs_residual_limb", "Residual limb pain NRS, 7-day average", "int"),
    Column("nrs_phantom_limb", "Phantom limb pain NRS, 7-day average", "int"),
]
VISIT_DATE_COLUMNS: list[Column] = [
    Column("visit_date", "Date of visit", "date"),
    Column("implant_date", "Implant date", "date"),
]

EVENT_COLUMNS: list[Column] = [
    Column("registry_id", "Registry id (pseudonym)", "str"),
    Column("site", "Site code", "str"),
    Column("sex", "Sex", "code", _choices(Sex)),
    Column("age_at_implant", "Age at implant (years; 90 = 90 or older)", "age"),
    Column("implant_ref", "Implant ref", "str"),
    Column("therapy", "Therapy", "code", _choices(Therapy)),
    Column("days_from_implant", "Onset day relative to the implant (days)", "int"),
    Column("category", "Event category", "code", _choices(AeCategory)),
    Column("serious", "Serious (ISO 14155)", "bool"),
    Column("serious_criterion", "Seriousness criterion", "code", _choices(SeriousCriterion)),
    Column("severity", "Severity", "code", _choices(Severity)),
    Column("device_relatedness", "Relatedness to the device", "code", _choices(Rel)),
    Column("procedure_relatedness", "Relatedness to the procedure", "code", _choices(Rel)),
    Column("anticipated", "Anticipated", "bool"),
    Column("iso_class", "ISO 14155 class", "code", _choices(Iso14155Class)),
    Column("action", "Action taken", "code", _choices(AeAction)),
    Column("outcome", "Outcome", "code", _choices(AeOutcome)),
    Column("days_to_resolution", "Days from onset to resolution", "int"),
]
EVENT_DATE_COLUMNS: list[Column] = [
    Column("onset_date", "Onset date", "date"),
    Column("resolved_on", "Resolution date", "date"),
    Column("implant_date", "Implant date", "date"),
]


def columns_for(dataset: str, *, dates: str = "relative") -> list[Column]:
    """The columns of `dataset` ("visits" or "adverse-events") in file order."""
    if dataset not in DATASETS:
        raise ValueError(f"Unknown dataset '{dataset}'; expected one of {', '.join(DATASETS)}.")
    base, extra = (VISIT_COLUMNS, VISIT_DATE_COLUMNS) if dataset == "visits" else (
        EVENT_COLUMNS, EVENT_DATE_COLUMNS)
    return base + (extra if dates == "iso" else [])


# --- The SELECT ---------------------------------------------------------------


class DaysBetween(Func):
    """later - earlier in whole days (NULL if either is NULL)."""

    output_field = IntegerField()
    arity = 2

    def as_sql(self, compiler, connection, **extra):
        # PostgreSQL: date - date is an integer number of days.
        return super().as_sql(compiler, connection, template="(%(expressions)s)", arg_joiner=" - ", **extra)

    def as_sqlite(self, compiler, connection, **extra):
        return super().as_sql(
            compiler, connection,
            template="CAST(julianday(%(expressions)s) AS INTEGER)",
            arg_joiner=") - julianday(", **extra)


def _yes_no(condition_true: Q, condition_false: Q):
    return Case(When(condition_true, then=Value("yes")), When(condition_false, then=Value("no")),
                default=Value(None), output_field=CharField())


def _first_implant(field: str):
    # Baseline visits (and events recorded before an implant) have no implant
    # of their own: they are dated from the patient's first implant.
    return Subquery(
        Implant.objects.filter(patient=OuterRef("patient"))
        .order_by(F("implant_date").asc(nulls_last=True), "pk")
        .values(field)[:1]
    )


def _implant_field(field: str, output_field):
    # CASE evaluates the correlated subquery only for rows without an implant.
    return Case(When(implant__isnull=False, then=F(f"implant__{field}")),
                default=_first_implant(field), output_field=output_field)


def _age_text():
    age = ExtractYear(_implant_field("implant_date", output_field=Visit._meta.get_field(
        "date_done"))) - F("patient__birth_year")
    return Case(When(Q(patient__birth_year__isnull=True), then=Value(None)),
                When(GreaterThan(age, AGE_TOP - 1), then=Value(AGE_TOP_LABEL)),
                default=Cast(age, CharField()), output_field=CharField())


class GreaterThan(Func):
    """a > b as a boolean expression usable in When()."""

    arity = 2
    template = "(%(expressions)s)"
    arg_joiner = " > "

    def __init__(self, *expressions):
        from django.db.models import BooleanField

        super().__init__(*expressions, output_field=BooleanField())


def _select(qs: QuerySet, exprs: dict) -> QuerySet:
    names = [f"c_{name}" for name in exprs]
    return qs.annotate(**{f"c_{k}": v for k, v in exprs.items()}).values_list(*names)


def visit_dataset(queryset: QuerySet, *, dates: str = "relative") -> QuerySet:
    """The visits dataset as a `values_list` queryset in `columns_for("visits")` order.

    `queryset` is a (filtered, access-scoped) Visit queryset. Values are
    CSV-ready: booleans as yes/no, age as text ("90+" over 89).
    """
    _check_dates(dates)
    date_field = Visit._meta.get_field("date_done")
    qs = queryset.annotate(
        base_visit=FilteredRelation("patient__visits",
                                    condition=Q(patient__visits__timepoint=BASELINE)),
        ps_rl=FilteredRelation("pain_scores", condition=Q(
            pain_scores__pain_site=PainSite.RESIDUAL_LIMB, pain_scores__recall=Recall.AVG_7D)),
        ps_pl=FilteredRelation("pain_scores", condition=Q(
            pain_scores__pain_site=PainSite.PHANTOM_LIMB, pain_scores__recall=Recall.AVG_7D)),
    )
    implant_date = _implant_field("implant_date", date_field)
    reduction_ok = Q(base_visit__nrs__gt=0, nrs__isnull=False) & ~Q(timepoint=BASELINE)
    reduction = Round(Cast((F("base_visit__nrs") - F("nrs")) * Value(100.0), FloatField())
                      / F("base_visit__nrs"), 1)
    exprs = {
        "registry_id": F("patient__registry_id"),
        "site": F("patient__site__code"),
        "sex": F("patient__sex"),
        "age_at_implant": _age_text(),
        "etiology": F("patient__etiology"),
        "diagnosis": F("patient__diagnosis"),
        "therapy": _implant_field("therapy", CharField()),
        "implant_ref": _implant_field("ref", CharField()),
        "timepoint": F("timepoint"),
        "status": F("status"),
        "days_from_implant": DaysBetween(F("date_done"), implant_date),
        "nrs": F("nrs"),
        "nrs_baseline": F("base_visit__nrs"),
        "nrs_reduction_pct": Case(When(reduction_ok, then=reduction), default=Value(None),
                                  output_field=FloatField()),
        "responder": Case(
            When(reduction_ok & Q(nrs__lte=F("base_visit__nrs") * (100 - RESPONDER_THRESHOLD_PCT)
                                  / 100.0), then=Value("yes")),
            When(reduction_ok, then=Value("no")), default=Value(None), output_field=CharField()),
        "satisfaction": F("satisfaction"),
        "pgic": F("pgic"),
        "would_choose_again": _yes_no(Q(would_choose_again=True), Q(would_choose_again=False)),
        "opioid_mme": F("opioid_mme"),
        "stimulation_use": Case(When(stimulation_use="", then=Value(None)),
                                default=F("stimulation_use"), output_field=CharField()),
        "nrs_residual_limb": F("ps_rl__score"),
        "nrs_phantom_limb": F("ps_pl__score"),
    }
    if dates == "iso":
        exprs["visit_date"] = F("date_done")
        exprs["implant_date"] = implant_date
    return _select(qs, exprs).order_by(
        "patient__registry_id", Coalesce("date_done", "target_date").asc(nulls_last=True), "pk")


def _iso_class():
    related = Q(device_relatedness__in=RELATED) | Q(procedure_relatedness__in=RELATED)
    return Case(
        When(Q(serious=True) & related & Q(anticipated=False), then=Value(Iso14155Class.USADE.value)),
        When(Q(serious=True) & related, then=Value(Iso14155Class.SADE.value)),
        When(serious=True, then=Value(Iso14155Class.SAE.value)),
        When(related, then=Value(Iso14155Class.ADE.value)),
        default=Value(Iso14155Class.AE.value), output_field=CharField())


def iso_class_expression():
    """SQL for the derived ISO 14155 class (the same rule as `iso14155_class`)."""
    return _iso_class()


def event_dataset(queryset: QuerySet, *, dates: str = "relative") -> QuerySet:
    """The adverse-events dataset as a `values_list` queryset (see `visit_dataset`)."""
    _check_dates(dates)
    date_field = AdverseEvent._meta.get_field("onset_date")
    implant_date = _implant_field("implant_date", date_field)
    exprs = {
        "registry_id": F("patient__registry_id"),
        "site": F("patient__site__code"),
        "sex": F("patient__sex"),
        "age_at_implant": _age_text(),
        "implant_ref": _implant_field("ref", CharField()),
        "therapy": _implant_field("therapy", CharField()),
        "days_from_implant": DaysBetween(F("onset_date"), implant_date),
        "category": F("category"),
        "serious": _yes_no(Q(serious=True), Q(serious=False)),
        "serious_criterion": Case(When(serious_criterion="", then=Value(None)),
                                  default=F("serious_criterion"), output_field=CharField()),
        "severity": F("severity"),
        "device_relatedness": F("device_relatedness"),
        "procedure_relatedness": F("procedure_relatedness"),
        "anticipated": _yes_no(Q(anticipated=True), Q(anticipated=False)),
        "iso_class": _iso_class(),
        "action": F("action"),
        "outcome": F("outcome"),
        "days_to_resolution": DaysBetween(F("resolved_on"), F("onset_date")),
    }
    if dates == "iso":
        exprs["onset_date"] = F("onset_date")
        exprs["resolved_on"] = F("resolved_on")
        exprs["implant_date"] = implant_date
    return _select(queryset, exprs).order_by("patient__registry_id", "onset_date", "pk")


def dataset_queryset(dataset: str, queryset: QuerySet, *, dates: str = "relative") -> QuerySet:
    """The dataset's values_list queryset for `dataset` over `queryset`."""
    if queryset.query.distinct:
        # DISTINCT would pull the ORDER BY columns into the SELECT (and into COPY's output).
        queryset = queryset.model.objects.filter(pk__in=queryset.values("pk"))
    if dataset == "visits":
        return visit_dataset(queryset, dates=dates)
    if dataset == "adverse-events":
        return event_dataset(queryset, dates=dates)
    raise ValueError(f"Unknown dataset '{dataset}'; expected one of {', '.join(DATASETS)}.")


def _check_dates(dates: str) -> None:
    if dates not in DATES_MODES:
        raise ValueError(f"Unknown dates mode '{dates}'; expected one of {', '.join(DATES_MODES)}.")


# --- Typed rows ---------------------------------------------------------------


def _typed(column: Column, value):
    if value is None or value == "":
        return None
    if column.kind == "bool":
        return YES_NO[value] if isinstance(value, str) else bool(value)
    if column.kind == "age":
        return value if value == AGE_TOP_LABEL else int(value)
    if column.kind in ("int", "scale"):
        return int(value)
    if column.kind == "float":
        return float(value)
    if column.kind == "date":
        return value if isinstance(value, datetime.date) else datetime.date.fromisoformat(str(value))
    return value


def _raw_rows(select: QuerySet, chunk_size: int) -> Iterator[tuple]:
    """The dataset's rows as tuples, one statement whatever the size.

    On PostgreSQL they are parsed from the COPY stream: a server-side cursor
    outside a transaction is declared WITH HOLD, which materialises the whole
    result first and is planned for the first rows - minutes at 1,000,000 visits.
    """
    if connections[select.db].vendor != "postgresql":
        yield from select.iterator(chunk_size=chunk_size)
        return
    rest = ""
    for chunk in _copy_chunks(select):
        lines = (rest + chunk.decode()).split("\n")
        rest = lines.pop()
        yield from csv.reader(lines)
    if rest:
        yield from csv.reader([rest])


def _rows(dataset: str, queryset: QuerySet, dates: str, chunk_size: int) -> Iterator[dict]:
    columns = columns_for(dataset, dates=dates)
    for raw in _raw_rows(dataset_queryset(dataset, queryset, dates=dates), chunk_size):
        yield {c.name: _typed(c, v) for c, v in zip(columns, raw, strict=True)}


def visit_rows(queryset: QuerySet, *, dates: str = "relative", chunk_size: int = 2000) -> Iterator[dict]:
    """One dict per visit, keys = `columns_for("visits", dates=...)` names, typed values.

    Codes are the bundle codes (str), yes/no columns are bool, integers int,
    percentages and MME float, dates (iso mode only) `datetime.date`,
    `age_at_implant` an int or the string "90+". One SQL query, streamed.
    """
    return _rows("visits", queryset, dates, chunk_size)


def event_rows(queryset: QuerySet, *, dates: str = "relative", chunk_size: int = 2000) -> Iterator[dict]:
    """One dict per adverse event (see `visit_rows`); `iso_class` is derived."""
    return _rows("adverse-events", queryset, dates, chunk_size)


def dataset_rows(dataset: str, queryset: QuerySet, *, dates: str = "relative") -> Iterator[dict]:
    return _rows(dataset, queryset, dates, 2000)


# --- CSV ----------------------------------------------------------------------


def _csv_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, decimal.Decimal):
        return format(value, "f")
    return str(value)


class RowCounter:
    """Counts the data rows that went out (for the export log)."""

    def __init__(self):
        self.rows = 0


def export_csv_stream(dataset: str, queryset: QuerySet, *, dates: str = "relative",
                      counter: RowCounter | None = None) -> Iterator[bytes]:
    """The dataset as CSV bytes in ~64 KB chunks, header first.

    PostgreSQL: psycopg's COPY of the dataset's SELECT (one statement, no
    Python per row). Other databases: one streamed ORM query. Same text both ways.
    """
    counter = counter or RowCounter()
    columns = columns_for(dataset, dates=dates)
    header = (",".join(c.name for c in columns) + "\n").encode()
    select = dataset_queryset(dataset, queryset, dates=dates)
    if connections[select.db].vendor == "postgresql":
        return _csv_copy(select, header, counter)
    return _csv_orm(select, header, counter)


def _copy_sql(select: QuerySet) -> str:
    import psycopg

    connection = connections[select.db]
    sql, params = select.query.sql_with_params()
    connection.ensure_connection()
    # ClientCursor.mogrify binds the parameters the way the server would
    # (quoting handled by psycopg, never by string formatting here).
    with psycopg.ClientCursor(connection.connection) as client:
        bound = client.mogrify(sql, params)
    return f"COPY ({bound}) TO STDOUT WITH (FORMAT csv)"


def copy_statement(dataset: str, queryset: QuerySet, *, dates: str = "relative") -> str:
    """The COPY statement the PostgreSQL CSV path runs (for psql comparisons)."""
    return _copy_sql(dataset_queryset(dataset, queryset, dates=dates))


def _copy_chunks(select: QuerySet) -> Iterator[bytes]:
    """COPY (select) TO STDOUT as CSV, in ~64 KB chunks (psycopg yields row-sized pieces)."""
    statement = _copy_sql(select)
    connection = connections[select.db]
    buffer = bytearray()
    with connection.cursor() as cursor, cursor.cursor.copy(statement) as copy:
        for data in copy:
            buffer += data
            if len(buffer) >= CHUNK_BYTES:
                yield bytes(buffer)
                buffer.clear()
    if buffer:
        yield bytes(buffer)


def _csv_copy(select: QuerySet, header: bytes, counter: RowCounter) -> Iterator[bytes]:
    yield header
    for chunk in _copy_chunks(select):
        # One row per line: no exported column holds a newline (no free text).
        counter.rows += chunk.count(b"\n")
        yield chunk


def _csv_orm(select: QuerySet, header: bytes, counter: RowCounter) -> Iterator[bytes]:
    yield header
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for raw in select.iterator(chunk_size=2000):
        writer.writerow([_csv_text(v) for v in raw])
        counter.rows += 1
        if out.tell() >= CHUNK_BYTES:
            yield out.getvalue().encode()
            out.seek(0)
            out.truncate()
    if out.tell():
        yield out.getvalue().encode()


# --- JSON ---------------------------------------------------------------------


def _json_default(value):
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    raise TypeError(f"Cannot encode {type(value).__name__}")


def export_json_stream(dataset: str, queryset: QuerySet, *, dates: str = "relative",
                       counter: RowCounter | None = None) -> Iterator[bytes]:
    """The dataset as one JSON array of objects, streamed in ~64 KB chunks."""
    counter = counter or RowCounter()
    encoder = json.JSONEncoder(default=_json_default, ensure_ascii=False, separators=(",", ":"))
    parts: list[str] = ["["]
    size = 1
    for row in _rows(dataset, queryset, dates, 2000):
        text = ("," if counter.rows else "") + "\n" + encoder.encode(row)
        counter.rows += 1
        parts.append(text)
        size += len(text)
        if size >= CHUNK_BYTES:
            yield "".join(parts).encode()
            parts, size = [], 0
    parts.append("\n]\n")
    yield "".join(parts).encode()


# --- Files: xlsx, sav, dta ----------------------------------------------------


def _file_rows(dataset, queryset, dates) -> tuple[list[Column], Iterable[dict]]:
    return columns_for(dataset, dates=dates), _rows(dataset, queryset, dates, 2000)


def _write_xlsx(path: str, columns: list[Column], rows: Iterable[dict], counter: RowCounter):
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("data")
    sheet.append([c.name for c in columns])
    for row in rows:
        sheet.append([row[c.name] for c in columns])
        counter.rows += 1
    labels = workbook.create_sheet("variables")
    labels.append(["variable", "label", "values"])
    for c in columns:
        labels.append([c.name, c.label, "; ".join(f"{v} = {lab}" for v, lab in c.labels)])
    workbook.save(path)


def _stat_frame(columns: list[Column], rows: Iterable[dict], counter: RowCounter, stata: bool):
    """A pandas frame typed for SPSS/Stata, with variable and value labels."""
    import pandas as pd

    # Stata labels only integers: a coded column becomes 1..k in the order of its
    # code list (the data dictionary's order), each number labelled.
    numbered = {c.name: {code: i for i, (code, _) in enumerate(c.labels, 1)}
                for c in columns if stata and c.kind == "code"}
    data: dict[str, list] = {c.name: [] for c in columns}
    for row in rows:
        counter.rows += 1
        for c in columns:
            value = row[c.name]
            if c.kind == "age" and value == AGE_TOP_LABEL:
                value = AGE_TOP
            elif c.kind == "bool" and value is not None:
                value = int(value)
            elif c.name in numbered:
                value = numbered[c.name].get(value)
            elif c.kind == "code" and value is None:
                value = ""
            elif c.kind == "str" and value is None:
                value = ""
            data[c.name].append(value)
    frame = pd.DataFrame(data, columns=[c.name for c in columns])
    value_labels: dict[str, dict] = {}
    for c in columns:
        if c.kind in ("int", "scale", "age", "bool", "float") or c.name in numbered:
            frame[c.name] = pd.to_numeric(frame[c.name], errors="coerce").astype("float64")
        if c.kind == "date":
            frame[c.name] = pd.to_datetime(frame[c.name])
        if c.kind == "bool":
            value_labels[c.name] = {0.0: "no", 1.0: "yes"}
        elif c.kind == "age":
            value_labels[c.name] = {float(AGE_TOP): AGE_TOP_LABEL}
        elif c.kind == "scale":
            value_labels[c.name] = {float(v): lab for v, lab in c.labels}
        elif c.name in numbered:
            value_labels[c.name] = {float(i): lab for i, (_, lab) in enumerate(c.labels, 1)}
        elif c.kind == "code":
            # SPSS labels the string codes themselves.
            value_labels[c.name] = {v: lab for v, lab in c.labels}
    return frame, value_labels


def _write_stat(path: str, columns, rows, counter, fmt: str):
    import pyreadstat

    frame, value_labels = _stat_frame(columns, rows, counter, stata=fmt == "dta")
    labels = [c.label for c in columns]
    if fmt == "sav":
        pyreadstat.write_sav(frame, path, column_labels=labels, variable_value_labels=value_labels)
    else:
        # Stata value labels need integer-valued columns: they are (floats without fraction).
        pyreadstat.write_dta(frame, path, column_labels=[lab[:80] for lab in labels],
                             variable_value_labels=value_labels, version=15)


def export_file(dataset: str, queryset: QuerySet, fmt: str, *, dates: str = "relative",
                counter: RowCounter | None = None) -> str:
    """Write the dataset as xlsx, sav or dta to a temporary file and return its path.

    The caller streams and then deletes the file. Refuses other formats.
    """
    counter = counter or RowCounter()
    if fmt not in ("xlsx", "sav", "dta"):
        raise ValueError(f"export_file writes xlsx, sav or dta, not '{fmt}'.")
    columns, rows = _file_rows(dataset, queryset, dates)
    handle, path = tempfile.mkstemp(prefix=f"registry-{dataset}-", suffix=f".{fmt}")
    os.close(handle)
    try:
        if fmt == "xlsx":
            _write_xlsx(path, columns, rows, counter)
        else:
            _write_stat(path, columns, rows, counter, fmt)
    except BaseException:
        os.unlink(path)
        raise
    return path


def file_chunks(path: str) -> Iterator[bytes]:
    """Stream a temporary export file in 64 KB chunks and delete it afterwards."""
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(CHUNK_BYTES):
                yield chunk
    finally:
        os.unlink(path)


# --- Log ----------------------------------------------------------------------


def export_log_start(*, user, dataset: str, fmt: str, filters: dict, dates: str,
                     channel: str = "api") -> ExportLog:
    """Record that `user` started an export (rows and finish time come later)."""
    return ExportLog.objects.create(user=user, channel=channel, dataset=dataset, format=fmt,
                                    filters=filters, dates=dates)


def export_log_record(*, user, dataset: str, fmt: str, filters: dict, dates: str, rows: int,
                      channel: str = "api") -> ExportLog:
    """Record, in one INSERT, a delivery that was complete before it was sent (a REST
    list page: `dataset` is its endpoint path, e.g. "/api/v1/visits/")."""
    return ExportLog.objects.create(user=user, channel=channel, dataset=dataset, format=fmt,
                                    filters=filters, dates=dates, rows=rows,
                                    finished_at=timezone.now())


def export_log_finish(*, log: ExportLog, rows: int) -> None:
    """Record the row count and finish time once the last byte went out."""
    log.rows = rows
    log.finished_at = timezone.now()
    ExportLog.objects.filter(pk=log.pk).update(rows=rows, finished_at=log.finished_at)


def logged(chunks: Iterable[bytes], *, log: ExportLog, counter: RowCounter) -> Iterator[bytes]:
    """Pass `chunks` through, finishing `log` when the stream is complete."""
    yield from chunks
    export_log_finish(log=log, rows=counter.rows)


def export_dates_allowed(user) -> bool:
    """Only data managers may export real dates."""
    from registry.services.access import is_data_manager

    return is_data_manager(user)

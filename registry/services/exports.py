"""Analysis datasets as files: CSV, JSON, xlsx, SPSS (.sav) and Stata (.dta), streamed.

The datasets themselves (columns, SQL, de-identification) are declared once in
`services.datasets`; this module only writes them in each format:

- CSV on PostgreSQL streams `COPY (<the dataset's SELECT>) TO STDOUT WITH CSV` in
  ~64 KB chunks (close to the speed of psql itself); elsewhere it streams
  `values_list().iterator()` through the csv module. Both write identical text.
- JSON streams the typed rows.
- xlsx (openpyxl write-only), sav and dta (pyreadstat, with variable and value
  labels) are written to a temporary file, which the caller streams. Stata stores
  codes as numbers: the frozen numbering of `models.choices.NUMBERING`, labelled.
  SPSS keeps the codes themselves (it labels string values natively).

The export log is `services.export_log` (its names are re-exported here).
`dates="iso"` adds real dates; deciding who may ask for it is the caller's job
(`export_dates_allowed`). The querysets passed in must already be scoped with
`services.access.visible`.
"""

from __future__ import annotations

import datetime
import decimal
import io
import json
import os
import tempfile
from collections.abc import Iterable, Iterator

from django.db.models import QuerySet

from registry.models import choices
from registry.models.instruments import check_value_set

from . import datasets, missing
from .cells import CsvWriter, to_cell
from .datasets import (  # noqa: F401  (re-exported: the names other channels use)
    AGE_TOP,
    AGE_TOP_LABEL,
    CHUNK_BYTES,
    DATES_MODES,
    RESPONDER_THRESHOLD_PCT,
    Column,
    pg,
)
from .export_log import (  # noqa: F401  (re-exported)
    RowCounter,
    export_log_finish,
    export_log_record,
    export_log_start,
    logged,
)

FORMATS = ("csv", "json", "xlsx", "sav", "dta")
DATASETS = tuple(datasets.EXPORTED)
CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "sav": "application/x-spss-sav",
    "dta": "application/x-stata-dta",
}


def columns_for(dataset: str, *, dates: str = "relative") -> list[Column]:
    """The columns of `dataset` ("visits" or "adverse-events") in file order."""
    return datasets.get(dataset).columns_for(dates=dates)


def dataset_queryset(dataset: str, queryset: QuerySet, *, dates: str = "relative",
                     value_set: str | None = None) -> QuerySet:
    """The dataset's values_list queryset for `dataset` over `queryset`."""
    return datasets.get(dataset).select(queryset, dates=dates, value_set=value_set)


def visit_dataset(queryset: QuerySet, *, dates: str = "relative", value_set: str | None = None) -> QuerySet:
    return datasets.VISITS.select(queryset, dates=dates, value_set=value_set)


def event_dataset(queryset: QuerySet, *, dates: str = "relative") -> QuerySet:
    return datasets.EVENTS.select(queryset, dates=dates)


def iso_class_expression():
    """SQL for the derived ISO 14155 class (the same rule as `iso14155_class`)."""
    return datasets.iso_class()


def __getattr__(name: str):
    # VISIT_COLUMNS / EVENT_COLUMNS read the declarations when asked, so a column added to a
    # dataset (even at run time, as a test does) is seen here too.
    if name == "VISIT_COLUMNS":
        return datasets.VISITS.columns_for()
    if name == "EVENT_COLUMNS":
        return datasets.EVENTS.columns_for()
    raise AttributeError(name)


# --- Typed rows ---------------------------------------------------------------


def _rows(dataset: str, queryset: QuerySet, dates: str, chunk_size: int,
          value_set: str | None = None) -> Iterator[dict]:
    return datasets.typed_rows(datasets.get(dataset), queryset, dates=dates, chunk_size=chunk_size,
                               value_set=value_set)


def visit_rows(queryset: QuerySet, *, dates: str = "relative", chunk_size: int = 2000,
               value_set: str | None = None) -> Iterator[dict]:
    """One dict per visit, keys = `columns_for("visits", dates=...)` names, typed values.

    Codes are the bundle codes (str), yes/no columns are bool, integers int,
    percentages and MME float, dates (iso mode only) `datetime.date`,
    `age_at_implant` an int or the string "90+". One SQL query, streamed.
    """
    return _rows("visits", queryset, dates, chunk_size, value_set)


def event_rows(queryset: QuerySet, *, dates: str = "relative", chunk_size: int = 2000) -> Iterator[dict]:
    """One dict per adverse event (see `visit_rows`); `iso_class` is derived."""
    return _rows("adverse-events", queryset, dates, chunk_size)


def dataset_rows(dataset: str, queryset: QuerySet, *, dates: str = "relative",
                 value_set: str | None = None) -> Iterator[dict]:
    return _rows(dataset, queryset, dates, 2000, value_set)


# --- CSV ----------------------------------------------------------------------


def _csv_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, decimal.Decimal):
        return format(value, "f")
    return str(value)


def export_csv_stream(dataset: str, queryset: QuerySet, *, dates: str = "relative",
                      counter: RowCounter | None = None, value_set: str | None = None) -> Iterator[bytes]:
    """The dataset as CSV bytes in ~64 KB chunks, header first.

    PostgreSQL: psycopg's COPY of the dataset's SELECT (one statement, no
    Python per row). Other databases: one streamed ORM query. Same text both ways.
    """
    counter = counter or RowCounter()
    columns = columns_for(dataset, dates=dates)
    header = (",".join(c.name for c in columns) + "\n").encode()
    # Text cells a spreadsheet would run as formulas get a quote (services.cells).
    if pg.available(queryset.db):
        rows, db = pg.csv_rows(datasets.get(dataset), queryset, dates=dates, value_set=value_set)
        return _csv_copy(pg.copy_stream(rows, db, lines=False), header, counter)
    select = datasets.get(dataset).select(queryset, dates=dates, spreadsheet=True, value_set=value_set)
    return _csv_orm(select, header, counter)


def copy_statement(dataset: str, queryset: QuerySet, *, dates: str = "relative",
                   value_set: str | None = None) -> str:
    """The COPY statement the PostgreSQL CSV path runs (for psql comparisons)."""
    return datasets.copy_sql(dataset_queryset(dataset, queryset, dates=dates, value_set=value_set))


def _csv_copy(chunks: Iterator[bytes], header: bytes, counter: RowCounter) -> Iterator[bytes]:
    # The header goes out with the first rows (one chunk fewer; nothing is sent
    # before the database has answered the query's first rows).
    pending = header
    for chunk in chunks:
        # One row per line: no exported column holds a newline (no free text).
        counter.rows += chunk.count(b"\n")
        yield pending + chunk
        pending = b""
    if pending:
        yield pending


def _csv_orm(select: QuerySet, header: bytes, counter: RowCounter) -> Iterator[bytes]:
    out = io.StringIO()
    out.write(header.decode())  # sent with the first rows (see _csv_copy)
    writer = CsvWriter(out)
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
                       counter: RowCounter | None = None, value_set: str | None = None,
                       sql: bool | None = None) -> Iterator[bytes]:
    """The dataset as one JSON array of objects, streamed in ~64 KB chunks.

    PostgreSQL (`sql` None or True): each object is written by the database from the same
    column declarations (`datasets.pg.json_lines`) and streamed by COPY; `sql=False`, and
    other databases: typed rows encoded by Python (the reference; the same bytes)."""
    counter = counter or RowCounter()
    if sql is not False and pg.available(queryset.db):
        lines, db = pg.json_lines(datasets.get(dataset), queryset, dates=dates, value_set=value_set)
        return pg.joined(pg.copy_stream(lines, db, lines=True), first=b"[\n", between=b",\n",
                         last=b"\n]\n", empty=b"[\n]\n", counter=counter)
    return _json_python(dataset, queryset, dates, counter, value_set)


def _json_python(dataset, queryset, dates, counter, value_set=None) -> Iterator[bytes]:
    encoder = json.JSONEncoder(default=_json_default, ensure_ascii=False, separators=(",", ":"))
    parts: list[str] = ["["]
    size = 1
    for row in _rows(dataset, queryset, dates, 2000, value_set):
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


def _file_rows(dataset, queryset, dates, value_set=None) -> tuple[list[Column], Iterable[dict]]:
    return columns_for(dataset, dates=dates), _rows(dataset, queryset, dates, 2000, value_set)


def _write_xlsx(path: str, columns: list[Column], rows: Iterable[dict], counter: RowCounter,
                value_set: str | None = None):
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("data")
    sheet.append([c.name for c in columns])
    for row in rows:
        sheet.append([to_cell(row[c.name]) for c in columns])  # numbers stay numbers
        counter.rows += 1
    # The codebook, from the same declarations as the data sheet.
    variables = workbook.create_sheet("variables")
    variables.append(list(datasets.CODEBOOK_COLUMNS))
    for entry in datasets.codebook_of(columns, value_set=value_set):
        variables.append([entry[k] for k in datasets.CODEBOOK_COLUMNS])
    workbook.save(path)


def _stat_frame(columns: list[Column], rows: Iterable[dict], counter: RowCounter, stata: bool):
    """A pandas frame typed for SPSS/Stata, with variable and value labels, and the missing
    values: a value column with a reason column (`Column.reason`) holds the reason as SPSS
    user-missing number or Stata extended missing letter (services.missing), labelled."""
    import pandas as pd

    # Stata labels only integers: a coded column holds the code's frozen number
    # (models.choices.NUMBERING, the same numbers as REDCap's raw values), labelled.
    numbered = {c.name: c.codes for c in columns if stata and c.kind == "code"}
    data: dict[str, list] = {c.name: [] for c in columns}
    present = {c.name for c in columns}
    with_reason = {c.name: c.reason for c in columns if c.reason and c.reason in present}
    marked: dict[str, set] = {name: set() for name in with_reason}  # row numbers with a reason
    for index, row in enumerate(rows):
        counter.rows += 1
        for c in columns:
            value = row[c.name]
            if value is None and c.name in with_reason and row[with_reason[c.name]]:
                found = missing.reason(row[with_reason[c.name]])
                data[c.name].append(found.stata if stata else found.spss)
                marked[c.name].add(index)
                continue
            if c.kind == "age" and value == AGE_TOP_LABEL:
                value = AGE_TOP
            elif c.kind == "bool" and value is not None:
                value = int(value)
            elif c.name in numbered:
                value = choices.code_number(numbered[c.name], value)
            elif c.kind == "code" and value is None:
                value = ""
            elif c.kind == "str" and value is None:
                value = ""
            data[c.name].append(value)
    frame = pd.DataFrame(data, columns=[c.name for c in columns])
    value_labels: dict[str, dict] = {}
    for c in columns:
        if stata and marked.get(c.name):
            # Numbers with Stata's missing letters among them (pyreadstat writes .a-.e).
            frame[c.name] = [v if i in marked[c.name] else (None if v is None else float(v))
                             for i, v in enumerate(data[c.name])]
        elif c.kind in ("int", "scale", "age", "bool", "float") or c.name in numbered:
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
            value_labels[c.name] = {float(n): lab for n, _, lab in choices.numbered(c.codes)}
        elif c.kind == "code":
            # SPSS labels the string codes themselves.
            value_labels[c.name] = {v: lab for v, lab in c.labels}
        if c.name in with_reason:
            value_labels[c.name] = {**value_labels.get(c.name, {}), **{
                (r.stata if stata else r.spss): r.label for r in missing.VALUE_REASONS.values()}}
    declared = {name: ([r.stata for r in missing.VALUE_REASONS.values()] if stata
                       else [missing.SPSS_RANGE])
                for name in with_reason}
    return frame, value_labels, declared


def _write_stat(path: str, columns, rows, counter, fmt: str, value_set: str | None = None):
    import pyreadstat

    from .datasets.codebook import value_set_labels

    frame, value_labels, declared = _stat_frame(columns, rows, counter, stata=fmt == "dta")
    stated = value_set_labels(value_set, columns)  # the value set in the variable label
    labels = [stated.get(c.name, c.label) for c in columns]
    if fmt == "sav":
        pyreadstat.write_sav(frame, path, column_labels=labels, variable_value_labels=value_labels,
                             missing_ranges=declared)
    else:
        # Stata value labels need integer-valued columns: they are (floats without fraction).
        pyreadstat.write_dta(frame, path, column_labels=[lab[:80] for lab in labels],
                             variable_value_labels=value_labels, version=15,
                             missing_user_values=declared)


def export_file(dataset: str, queryset: QuerySet, fmt: str, *, dates: str = "relative",
                counter: RowCounter | None = None, value_set: str | None = None) -> str:
    """Write the dataset as xlsx, sav or dta to a temporary file and return its path.

    The caller streams and then deletes the file. Refuses other formats.
    """
    counter = counter or RowCounter()
    if fmt not in ("xlsx", "sav", "dta"):
        raise ValueError(f"export_file writes xlsx, sav or dta, not '{fmt}'.")
    columns, rows = _file_rows(dataset, queryset, dates, value_set)
    value_set = check_value_set(value_set)  # the one the rows were scored with, stated in the labels
    handle, path = tempfile.mkstemp(prefix=f"registry-{dataset}-", suffix=f".{fmt}")
    os.close(handle)
    try:
        if fmt == "xlsx":
            _write_xlsx(path, columns, rows, counter, value_set)
        else:
            _write_stat(path, columns, rows, counter, fmt, value_set)
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


def export_dates_allowed(user) -> bool:
    """Only data managers may export real dates."""
    from registry.services.access import is_data_manager

    return is_data_manager(user)

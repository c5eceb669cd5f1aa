"""Datasets written as text by PostgreSQL itself: the fast paths of the JSON export and REDCap.

The Python paths (`rows.typed_rows` + json, `redcap.RecordExport.rows`) are the reference
and the SQLite path; these build the same text in SQL from the same `Column` declarations,
so a column added to a dataset reaches them without a second list. Tests compare the two
byte for byte (tests/interop/test_channel_outputs.py).

How: the dataset's own SELECT (`Dataset.select`, the one definition) is wrapped as a
subquery with positional column names, each column is turned into its JSON or REDCap
text by an expression chosen by its kind, and the result is streamed by COPY. A single
text column goes through `COPY ... (FORMAT binary)`, so each line is the value verbatim
(COPY's text format would double every backslash of a JSON escape, its CSV quote some).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from django.db import connections
from django.db.models import QuerySet

from ..cells import FORMULA_STARTS
from .columns import AGE_TOP_LABEL, Column
from .definitions import Dataset
from .rows import CHUNK_BYTES


def available(select_or_alias) -> bool:
    alias = select_or_alias if isinstance(select_or_alias, str) else select_or_alias.db
    return connections[alias].vendor == "postgresql"


class Sql:
    """SQL text with its parameters in order (%s placeholders, as psycopg and Django write)."""

    def __init__(self, text: str = "", params: list | None = None):
        self.text = text
        self.params = list(params or [])

    def add(self, text: str, *params) -> Sql:
        self.text += text
        self.params += params
        return self

    def extend(self, other: Sql) -> Sql:
        self.text += other.text
        self.params += other.params
        return self


def subquery(select: QuerySet) -> Sql:
    """A values_list queryset as SQL (its ORDER BY kept: a sorted subquery is never flattened
    by PostgreSQL, so a plain SELECT over it reads the rows in that order)."""
    sql, params = select.query.sql_with_params()
    return Sql(sql, list(params))


def quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def aliases(prefix: str, columns: list[Column]) -> list[str]:
    return [quoted(f"{prefix}{c.name}") for c in columns]


def literal(value: str) -> tuple[str, list]:
    return "%s::text", [value]


def case(ref: str, values: dict[str, str], otherwise: Sql | str = "NULL") -> Sql:
    """`(CASE ref WHEN key THEN value ... ELSE otherwise END)`, keys and values bound as text."""
    sql = Sql(f"(CASE {ref}")
    for key, value in values.items():
        sql.add(" WHEN %s THEN %s::text", key, value)
    sql.add(" ELSE ")
    return (sql.extend(otherwise) if isinstance(otherwise, Sql) else sql.add(otherwise)).add(" END)")


# --- JSON of a dataset's rows ---------------------------------------------------------------

NUMBER_TYPES = frozenset({"IntegerField", "BigIntegerField", "SmallIntegerField", "PositiveIntegerField",
                          "PositiveSmallIntegerField", "PositiveBigIntegerField", "AutoField", "BigAutoField",
                          "SmallAutoField", "FloatField", "DecimalField"})
TEXT_TYPES = frozenset({"CharField", "TextField"})


def json_typed(column: Column, ref: str, sql_type: str = "") -> str:
    """SQL of `ref` typed so that row_to_json writes it as Python's json module writes
    `Column.typed(value)`: NULL for a missing value (`Column.typed` reads "" as missing),
    a boolean, a bigint, text, or json text where Python's form differs from the type's own.
    `sql_type`: the internal type of the column's output field; a number or text column
    is taken as it is (no round trip through text per value), any other through its text."""
    number, text = sql_type in NUMBER_TYPES, sql_type in TEXT_TYPES
    missing = f"{ref} IS NULL" if number else f"{ref} IS NULL OR {ref}::text = ''"
    if column.kind == "bool":
        return (f"(CASE {ref}::text WHEN 'yes' THEN true WHEN 'true' THEN true "
                f"WHEN 'no' THEN false WHEN 'false' THEN false END)")
    if column.kind == "age":
        return (f"(CASE WHEN {missing} THEN NULL WHEN {ref}::text = '{AGE_TOP_LABEL}' "
                f"THEN '\"{AGE_TOP_LABEL}\"'::json ELSE to_json(({ref}::text)::bigint) END)")
    if column.kind in ("int", "scale"):
        if number:
            return f"({ref})::bigint"
        return f"(CASE WHEN {missing} THEN NULL ELSE ({ref}::text)::bigint END)"
    if column.kind == "float":
        # float8's text is the shortest exact form, as Python's repr; an integral float gets
        # repr's ".0" (the two differ only beyond 1e15, far from any MME or percentage).
        value = f"({ref})::float8" if number else f"({ref}::text)::float8"
        return (f"(CASE WHEN {missing} THEN NULL WHEN {value} = trunc({value}) AND abs({value}) < 1e15 "
                f"THEN ({value}::text || '.0')::json ELSE to_json({value}) END)")
    if text:  # str, code: row_to_json writes the text as a JSON string
        return f"NULLIF({ref}::text, '')"
    # date and the rest: a JSON string (a date as ISO 8601, as date.isoformat writes it).
    return f"(CASE WHEN {missing} THEN NULL ELSE to_json({ref}) END)"


def output_types(select: QuerySet, columns: list[Column]) -> dict[str, str]:
    """The internal type of each column's output field in `select` (`Dataset.select`)."""
    query = select.query.combined_queries[0] if select.query.combinator else select.query
    found = {}
    for c in columns:
        annotation = query.annotations.get(f"c_{c.name}")
        found[c.name] = annotation.output_field.get_internal_type() if annotation is not None else ""
    return found


def json_lines(dataset: Dataset, queryset: QuerySet, *, dates: str = "relative",
               value_set: str | None = None) -> tuple[Sql, str]:
    """SQL of one JSON object per row of `dataset` over `queryset`, in file order; and the db.

    row_to_json writes each object in one pass, with the separators Python's encoder is
    given (",", ":") and the keys in column order (the aliases: names of up to 63 bytes,
    PostgreSQL's identifier length, as `Column` demands)."""
    columns = dataset.columns_for(dates=dates)
    select = dataset.select(queryset, dates=dates, value_set=value_set)
    names = aliases("c_", columns)
    types = output_types(select, columns)
    typed = [f"{json_typed(c, f't.{n}', types[c.name])} AS {quoted(c.name)}"
             for c, n in zip(columns, names, strict=True)]
    sql = Sql(f"SELECT row_to_json(j)::text FROM (SELECT {', '.join(typed)} FROM (")
    sql.extend(subquery(select)).add(f") AS t({', '.join(names)})) AS j")
    return sql, select.db


# --- CSV with the formula guard, each value evaluated once -------------------------------

def guarded(ref: str) -> Sql:
    """`ref` as `cells.to_cell` writes it: a quote in front of text a spreadsheet would run.

    Over a subquery's column, so the column's expression is computed once: the same rule
    written around the expression itself (`datasets.sql.neutralised`, the SQLite path)
    repeats it per prefix (visits of the registry: 14.4 s without the guard, 24.7 s with
    it, issue 21)."""
    marks = ", ".join(["%s"] * len(FORMULA_STARTS))
    return Sql(f"(CASE WHEN left({ref}::text, 1) IN ({marks}) THEN '''' || {ref} ELSE {ref} END)",
               list(FORMULA_STARTS))


def csv_rows(dataset: Dataset, queryset: QuerySet, *, dates: str = "relative",
             value_set: str | None = None) -> tuple[Sql, str]:
    """SQL of the CSV export's rows, text columns guarded (the text of
    `Dataset.select(spreadsheet=True)`); and the db."""
    columns = dataset.columns_for(dates=dates)
    select = dataset.select(queryset, dates=dates, value_set=value_set)
    names = aliases("c_", columns)
    sql = Sql("SELECT ")
    for i, (column, name) in enumerate(zip(columns, names, strict=True)):
        sql.add(", " if i else "")
        if column.kind in ("str", "code"):
            sql.extend(guarded(f"t.{name}"))
        else:
            sql.add(f"t.{name}")
    sql.add(" FROM (").extend(subquery(select)).add(f") AS t({', '.join(names)})")
    return sql, select.db


# --- Streaming ---------------------------------------------------------------------------

def bound(sql: Sql, db: str) -> str:
    """The statement with its parameters bound by psycopg (never by string formatting)."""
    import psycopg

    connection = connections[db]
    connection.ensure_connection()
    with psycopg.ClientCursor(connection.connection) as client:
        return client.mogrify(sql.text, sql.params)


@contextlib.contextmanager
def no_jit(cursor):
    """No JIT for the statements run on `cursor` (a Django cursor) in the block. The
    planner's cost of a whole-registry statement (correlated or grouped PROM scores, the
    outcome rows of 100,000 patients) turns on JIT with optimisation, which compiled for
    9 s to run 2 s (docs/benchmarks.md, "PROMs in the SQL paths"; 3.6 s of a 5.4 s PROM
    outcomes query, issue 21). Back to the default afterwards."""
    from psycopg import pq

    cursor.cursor.execute("SET jit = off")
    try:
        yield cursor
    finally:
        # In a failed transaction the SET is rolled back with it (and RESET would fail).
        if cursor.cursor.connection.info.transaction_status != pq.TransactionStatus.INERROR:
            cursor.cursor.execute("RESET jit")


def copy_stream(sql: Sql, db: str, *, lines: bool) -> Iterator[bytes]:
    """COPY (sql) TO STDOUT in ~64 KB chunks, each ending at a row's end.

    `lines`: one text column per row, written verbatim with a newline after it (JSON, or
    several CSV lines in one text), read from COPY's binary format: no quoting to scan for,
    which for CSV costs the server a pass over every byte (7.5 GB of eav JSON, issue 21).
    Else CSV with NULL as an empty field (the caller makes every empty value NULL, as
    Python's csv module writes "" unquoted)."""
    statement = f"COPY ({bound(sql, db)}) TO STDOUT WITH (FORMAT {'binary' if lines else 'csv'})"
    buffer = bytearray()
    # wrap_database_errors: psycopg errors come out as Django's DatabaseError (export_log.begun).
    with connections[db].wrap_database_errors, connections[db].cursor() as cursor, no_jit(cursor):
        with cursor.cursor.copy(statement) as copy:
            for data in (_binary_lines(copy) if lines else copy):
                buffer += data
                if len(buffer) >= CHUNK_BYTES:
                    yield bytes(buffer)
                    buffer.clear()
    if buffer:
        yield bytes(buffer)


BINARY_HEADER = 19  # signature (11 bytes), flags and header extension length (4 + 4)


def _binary_lines(messages) -> Iterator[bytes]:
    """Each row's one text field and a newline, from COPY's binary messages (a row is a
    field count, int16, then the field's length, int32, and its bytes; the end is a count
    of -1). PostgreSQL sends a row per message, the header with the first; a row split
    over messages is put together all the same."""
    rest = b""
    skip = BINARY_HEADER
    for data in messages:
        data = rest + bytes(data) if rest else bytes(data)
        pos, size = skip, len(data)
        skip = 0
        if pos > size:
            rest, skip = b"", pos - size
            continue
        while size - pos >= 2:
            if data[pos:pos + 2] == b"\xff\xff":  # the end (psycopg reads on to COPY's close)
                pos = size
                break
            if size - pos < 6:
                break
            length = int.from_bytes(data[pos + 2:pos + 6], "big", signed=True)
            if length < 0:
                raise ValueError("COPY lines: a NULL row (each line's SQL must give text)")
            end = pos + 6 + length
            if end > size:
                break
            yield data[pos + 6:end] + b"\n"
            pos = end
        rest = data[pos:]


def joined(chunks: Iterator[bytes], *, first: bytes, between: bytes, last: bytes, empty: bytes,
           counter=None) -> Iterator[bytes]:
    """Lines ("a\\nb\\n") as first + "a" + between + "b" + last (`empty` without lines),
    chunk by chunk (one C-level replace per chunk); counts the lines in `counter.rows`."""
    seen = False
    for chunk in chunks:
        body = chunk[:-1].replace(b"\n", between)  # every chunk ends with a row's "\n"
        if counter is not None:
            counter.rows += chunk.count(b"\n")
        yield (between if seen else first) + body
        seen = True
    yield last if seen else empty

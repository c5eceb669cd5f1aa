"""Datasets written as text by PostgreSQL itself: the fast paths of the JSON export and REDCap.

The Python paths (`rows.typed_rows` + json, `redcap.RecordExport.rows`) are the reference
and the SQLite path; these build the same text in SQL from the same `Column` declarations,
so a column added to a dataset reaches them without a second list. Tests compare the two
byte for byte (tests/interop/test_channel_outputs.py).

How: the dataset's own SELECT (`Dataset.select`, the one definition) is wrapped as a
subquery with positional column names, each column is turned into its JSON or REDCap
text by an expression chosen by its kind, and the result is streamed by COPY. A single
text column goes through `COPY ... (FORMAT csv)` with a quote and delimiter byte that JSON
text never holds raw (\\x01, \\x02), so each line is the value verbatim (COPY's text format
would double every backslash of a JSON escape).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

from django.db import connections
from django.db.models import QuerySet

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


# --- JSON text of one typed value, as Python's json module writes `Column.typed(value)` ---

def json_value(column: Column, ref: str) -> str:
    """SQL giving the JSON text of `ref` (never NULL). `Column.typed` reads "" as missing.

    Floats: PostgreSQL's float8 text is the shortest exact form, as Python's repr; an
    integral float gets repr's ".0" (the two differ only beyond 1e15, far from any MME or
    percentage).
    """
    missing = f"{ref} IS NULL OR {ref}::text = ''"
    if column.kind == "bool":
        return (f"(CASE {ref}::text WHEN 'yes' THEN 'true' WHEN 'true' THEN 'true' "
                f"WHEN 'no' THEN 'false' WHEN 'false' THEN 'false' ELSE 'null' END)")
    if column.kind == "age":
        return (f"(CASE WHEN {missing} THEN 'null' WHEN {ref}::text = '{AGE_TOP_LABEL}' "
                f"THEN '\"{AGE_TOP_LABEL}\"' ELSE ({ref}::text)::bigint::text END)")
    if column.kind in ("int", "scale"):
        return f"(CASE WHEN {missing} THEN 'null' ELSE ({ref}::text)::bigint::text END)"
    if column.kind == "float":
        text = f"({ref})::float8::text"
        return (f"(CASE WHEN {missing} THEN 'null' WHEN {text} ~ '^-?[0-9]+$' THEN {text} || '.0' "
                f"ELSE {text} END)")
    # str, code, date: a JSON string (a date as ISO 8601, as date.isoformat writes it).
    return f"(CASE WHEN {missing} THEN 'null' ELSE to_json({ref})::text END)"


def json_object(pairs: list[tuple[str, str]]) -> Sql:
    """'{"name":<value sql>,...}' as one text expression (keys bound as parameters)."""
    sql = Sql("(")
    for i, (name, value_sql) in enumerate(pairs):
        key = ("{" if i == 0 else ",") + json.dumps(name, ensure_ascii=False) + ":"
        sql.add(("" if i == 0 else " || ") + "%s::text || " + value_sql, key)
    sql.add(" || '}')" if pairs else "'{}')")
    return sql


def json_lines(dataset: Dataset, queryset: QuerySet, *, dates: str = "relative",
               value_set: str | None = None) -> tuple[Sql, str]:
    """SQL of one JSON object per row of `dataset` over `queryset`, in file order; and the db."""
    columns = dataset.columns_for(dates=dates)
    select = dataset.select(queryset, dates=dates, value_set=value_set)
    names = aliases("c_", columns)
    obj = json_object([(c.name, json_value(c, f"t.{n}")) for c, n in zip(columns, names, strict=True)])
    sql = Sql("SELECT ").extend(obj).add(" FROM (").extend(subquery(select))
    sql.add(f") AS t({', '.join(names)})")
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

    `lines`: one text column written verbatim per line (JSON); else CSV with NULL as an
    empty field (the caller makes every empty value NULL, as Python's csv module writes
    "" unquoted)."""

    options = "FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02'" if lines else "FORMAT csv"
    statement = f"COPY ({bound(sql, db)}) TO STDOUT WITH ({options})"
    buffer = bytearray()
    # wrap_database_errors: psycopg errors come out as Django's DatabaseError (export_log.begun).
    with connections[db].wrap_database_errors, connections[db].cursor() as cursor, no_jit(cursor):
        with cursor.cursor.copy(statement) as copy:
            for data in copy:
                buffer += data
                if len(buffer) >= CHUNK_BYTES:
                    yield bytes(buffer)
                    buffer.clear()
    if buffer:
        yield bytes(buffer)


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

"""Reading a dataset: typed rows, and PostgreSQL's COPY of its SELECT."""

from __future__ import annotations

import csv
from collections.abc import Iterator

from django.db import connections
from django.db.models import QuerySet

from .definitions import Dataset

CHUNK_BYTES = 64 * 1024


def typed_rows(dataset: Dataset, queryset: QuerySet, *, dates: str = "relative",
               chunk_size: int = 2000, value_set: str | None = None) -> Iterator[dict]:
    """One dict per row, keys = column names, values typed (`Column.typed`), streamed.

    On PostgreSQL the rows are parsed from the COPY stream: a server-side cursor outside
    a transaction is declared WITH HOLD, which materialises the whole result first and is
    planned for the first rows - minutes at 1,000,000 visits. For a bounded read (a
    batch of patients) `fetched_rows` gives the driver's own typed values instead.
    """
    columns = dataset.columns_for(dates=dates)
    select = dataset.select(queryset, dates=dates, value_set=value_set)
    if connections[select.db].vendor == "postgresql":
        raw_rows = _copy_rows(select)
    else:
        raw_rows = select.iterator(chunk_size=chunk_size)
    for raw in raw_rows:
        yield {c.name: c.typed(v) for c, v in zip(columns, raw, strict=True)}


def fetched_rows(dataset: Dataset, queryset: QuerySet, *, dates: str = "relative",
                 value_set: str | None = None) -> list[dict]:
    """The rows of a bounded queryset, typed from the database driver's values (one query,
    no COPY text parsed back): for readers that take the data in batches (REDCap)."""
    columns = dataset.columns_for(dates=dates)
    return [{c.name: c.typed(v) for c, v in zip(columns, raw, strict=True)}
            for raw in dataset.select(queryset, dates=dates, value_set=value_set)]


def copy_sql(select: QuerySet) -> str:
    """COPY (select) TO STDOUT WITH CSV, parameters bound by psycopg (never by formatting)."""
    from . import pg  # pg builds on this module

    return f"COPY ({pg.bound(pg.subquery(select), select.db)}) TO STDOUT WITH (FORMAT csv)"


def copy_chunks(select: QuerySet) -> Iterator[bytes]:
    """COPY (select) TO STDOUT as CSV, in ~64 KB chunks: `pg.copy_stream` of the select."""
    from . import pg

    return pg.copy_stream(pg.subquery(select), select.db, lines=False)


def _copy_rows(select: QuerySet) -> Iterator[list[str]]:
    rest = ""
    for chunk in copy_chunks(select):
        lines = (rest + chunk.decode()).split("\n")
        rest = lines.pop()
        yield from csv.reader(lines)
    if rest:
        yield from csv.reader([rest])

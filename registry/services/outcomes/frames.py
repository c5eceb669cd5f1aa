"""Numeric outcome rows from PostgreSQL as NumPy arrays, no text in between (issue 21).

`analysis._copied_frame` has PostgreSQL write the rows as CSV text that pandas parses;
for rows of numbers and dates only (the outcome candidates, the PROM visit scores, the
attrition's visit keys) the database can hand over the values themselves: per block of
rows, one bytea per column, the values in network order (`int8send`, `float8send`,
`int4send` of the day number), read by `numpy.frombuffer`. No number is written or
parsed as text, and a float arrives with its exact bits (the cursor path's value).
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from django.db import connections

from ..datasets import pg

INT, FLOAT, DATE, TEXT = "int", "float", "date", "text"

# A NULL date travels as this day number (no date of the registry is near it).
NO_DAY = -(2 ** 31)

# Per kind: the SQL of one value's bytes (never NULL: string_agg would skip it and the
# columns would no longer line up) and its NumPy type in network order.
_SEND = {
    INT: ("int8send({ref}::bigint)", ">i8"),
    FLOAT: ("float8send(COALESCE({ref}::float8, 'NaN'::float8))", ">f8"),
    DATE: (f"int4send(COALESCE({{ref}}::date - DATE '1970-01-01', {NO_DAY}))", ">i4"),
}


def numeric(columns: dict[str, str]) -> bool:
    """Whether `frame` can read these columns (no text)."""
    return all(kind in _SEND for kind in columns.values())


def frame(sql: pg.Sql, db: str, columns: dict[str, str], block_rows: int) -> pd.DataFrame | None:
    """The rows of `sql` (its columns in the order of `columns`, kinds INT, FLOAT, DATE) as
    a frame of the types `analysis._frame` gives (int64, float64 with NaN, datetime64[ns]
    with NaT), or None when it returns no row."""
    names = [f"c{i}" for i in range(len(columns))]
    aggregates = ", ".join(
        f"string_agg({_SEND[kind][0].format(ref=f'u.{n}')}, ''::bytea)"
        for kind, n in zip(columns.values(), names, strict=True))
    blocks = pg.Sql(f"SELECT {aggregates} FROM (SELECT t.*, (row_number() OVER ()) / {block_rows} "
                    "AS block FROM (").extend(sql)
    blocks.add(f") AS t({', '.join(names)})) AS u GROUP BY u.block")
    # Through COPY (binary: one message per block), as `_copied_frame`: libpq would hold
    # every block of a result set until the last is read.
    statement = f"COPY ({pg.bound(blocks, db)}) TO STDOUT (FORMAT binary)"
    parts: list[list[np.ndarray]] = [[] for _ in columns]
    with connections[db].cursor() as cursor, pg.no_jit(cursor), cursor.cursor.copy(statement) as copy:
        copy.set_types(["bytea"] * len(columns))
        rows = copy.rows()
        first = next(rows, None)
        if first is None:
            return None
        for block in itertools.chain([first], rows):
            for i, (kind, data) in enumerate(zip(columns.values(), block, strict=True)):
                parts[i].append(np.frombuffer(data, dtype=_SEND[kind][1]))
    out = {}
    for (name, kind), pieces in zip(columns.items(), parts, strict=True):
        values = np.concatenate(pieces)
        if kind == INT:
            out[name] = values.astype(np.int64)
        elif kind == FLOAT:
            out[name] = values.astype(np.float64)
        else:
            days = values.astype(np.int64)
            dates = days.astype("datetime64[D]").astype("datetime64[ns]")
            dates[days == NO_DAY] = np.datetime64("NaT")
            out[name] = dates
    lengths = {len(values) for values in out.values()}
    if len(lengths) != 1:  # pragma: no cover - a NULL integer (INT columns must not be NULL)
        raise ValueError(f"columns of unequal length {sorted(lengths)}: an INT column holds NULL")
    return pd.DataFrame(out)

"""Numeric outcome rows from PostgreSQL as NumPy arrays, no text in between (issue 21).

`analysis._copied_frame` has PostgreSQL write the rows as CSV text that pandas parses;
for rows of numbers and dates only (the PROM visit scores of a chunk, the attrition's
visit keys: `_frame(..., arrays=True)`) the database can hand over the values themselves:
one bytea per column, the values in network order (`int8send`, `float8send`,
`int4send` of the day number), read by `numpy.frombuffer`. No number is written or
parsed as text, and a float arrives with its exact bits (the cursor path's value).
"""

from __future__ import annotations

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


def frame(sql: pg.Sql, db: str, columns: dict[str, str]) -> pd.DataFrame | None:
    """The rows of `sql` (its columns in the order of `columns`, kinds INT, FLOAT, DATE) as
    a frame of the types `analysis._frame` gives (int64, float64 with NaN, datetime64[ns]
    with NaT), or None when it returns no row.

    One aggregate row: one bytea per column (8 MB per million values), no blocks. Blocks
    of rows (`row_number() OVER ()` grouped) cost a window, a sort spilled to disk and a
    group per block for nothing here: every value is held until the frame is built anyway
    (EXPLAIN ANALYZE of a PROM chunk of 80,000 visits: 437 ms with blocks, the plain
    select 225 ms)."""
    names = [f"c{i}" for i in range(len(columns))]
    aggregates = ", ".join(
        f"string_agg({_SEND[kind][0].format(ref=f't.{n}')}, ''::bytea)"
        for kind, n in zip(columns.values(), names, strict=True))
    select = pg.Sql(f"SELECT {aggregates} FROM (").extend(sql)
    select.add(f") AS t({', '.join(names)})")
    # Through COPY (binary), as `_copied_frame`: one message, the bytes verbatim.
    statement = f"COPY ({pg.bound(select, db)}) TO STDOUT (FORMAT binary)"
    with connections[db].cursor() as cursor, pg.no_jit(cursor), cursor.cursor.copy(statement) as copy:
        copy.set_types(["bytea"] * len(columns))
        rows = list(copy.rows())  # one row (read to the end: the COPY must finish)
    row = rows.pop()
    if row[0] is None:  # no row: every aggregate is NULL
        return None
    out = {}
    row = list(row)
    for i, (name, kind) in enumerate(columns.items()):
        values = np.frombuffer(row[i], dtype=_SEND[kind][1])
        row[i] = None  # each column's bytes let go once converted
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
    return pd.DataFrame(out, copy=False)  # the arrays as they are: no consolidated copy

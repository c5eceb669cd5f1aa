"""What a dataset column is: everything every channel needs to know about it, in one place.

A `Column` carries its name, variable label, kind, SQL expression, code list and REDCap
placement. The CSV and JSON streams, the xlsx/SPSS/Stata files, the REDCap data
dictionary and records, and the codebook all read these objects, so adding a column to
a dataset (`definitions.py`) is one edit.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass

from django.db.models import Expression, F

from registry.models import choices

# kind: "str" (free code such as a registry id), "code" (coded string, `codes` names its
# list), "int", "float", "bool" (yes/no), "date", "age" (int, 90 = "90+"),
# "scale" (int with a code list, e.g. PGIC 1-7).
KINDS = ("str", "code", "int", "float", "bool", "date", "age", "scale")
AGE_TOP = 90  # HIPAA safe harbour: ages over 89 are one group
AGE_TOP_LABEL = "90+"
YES_NO = {"yes": True, "no": False}
NAME_BYTES = 63  # PostgreSQL's identifier length (NAMEDATALEN - 1)


@dataclass(frozen=True)
class Redcap:
    """Where a column stands in the REDCap project: its instrument and field name.

    Fields of one instrument are listed in the dataset's column order. `label` overrides
    the column label where REDCap's wording is shorter.
    """

    form: str  # enrolment | visit | adverse_event | device_component
    name: str = ""
    label: str = ""
    note: str = ""
    minimum: str = ""
    maximum: str = ""
    annotation: str = ""
    section: str = ""


@dataclass(frozen=True)
class Column:
    """One dataset column.

    `sql` is a field path (read with F) or a callable returning an expression (called
    once per query, so expressions are never shared between querysets). `dates_only`
    columns are real calendar dates, present only with `dates="iso"`.
    """

    name: str
    label: str
    kind: str
    sql: str | Callable[[], Expression]
    codes: str = ""
    redcap: Redcap | None = None
    dates_only: bool = False
    takes_value_set: bool = False  # `sql(value_set)`: the EQ-5D-5L value set chosen for the query
    # The column holding why this value is missing (services.missing): files with a
    # missing-value mechanism (SPSS, Stata, REDCap, FHIR) carry the reason in this column.
    reason: str = ""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"Column {self.name}: unknown kind '{self.kind}'")
        if self.kind in ("code", "scale") and self.codes not in choices.CODE_LISTS:
            raise ValueError(f"Column {self.name}: kind {self.kind} needs a code list, not '{self.codes}'")
        if len(self.name.encode()) > NAME_BYTES:
            # The JSON export's keys are SQL aliases (datasets.pg.json_lines), cut at 63 bytes.
            raise ValueError(f"Column {self.name}: a name of at most {NAME_BYTES} bytes")

    def expression(self, value_set: str | None = None) -> Expression:
        if isinstance(self.sql, str):
            return F(self.sql)
        return self.sql(value_set) if self.takes_value_set else self.sql()

    @property
    def labels(self) -> tuple[tuple, ...]:
        """(code, label) pairs in the frozen numbering's order (empty for uncoded columns)."""
        if not self.codes:
            return ()
        return tuple((code, label) for _, code, label in choices.numbered(self.codes))

    def typed(self, value):
        """A value as the database (or COPY's CSV text) gives it, typed for JSON and files:
        codes str, yes/no bool, integers int, floats float, dates date, age int or "90+"."""
        if value is None or value == "":
            return None
        if self.kind == "bool":
            return YES_NO[value] if isinstance(value, str) else bool(value)
        if self.kind == "age":
            return value if value == AGE_TOP_LABEL else int(value)
        if self.kind in ("int", "scale"):
            return int(value)
        if self.kind == "float":
            return float(value)
        if self.kind == "date":
            return value if isinstance(value, datetime.date) else datetime.date.fromisoformat(str(value))
        return value

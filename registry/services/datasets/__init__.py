"""The analysis datasets, each declared once and read by every channel.

- `definitions`: the datasets (`VISITS`, `EVENTS`, and `PATIENTS` for REDCap's enrolment
  form, `COMPONENTS` for its device-component form), their columns in file order, and one
  definition of `days_from_implant`;
- `columns`: what a column declares (name, label, kind, SQL, code list, REDCap placement);
- `sql`: the expressions the columns are built from;
- `rows`: typed rows, PostgreSQL COPY of a dataset's SELECT;
- `codebook`: the variables of a dataset as a table.

The querysets passed in must already be scoped with `services.access.visible`.
De-identification is built in: dates are days from the implant unless `dates="iso"`
(the caller decides who may ask: `exports.export_dates_allowed`), ages over 89 are
"90+", free text and identifiers are never selected.
"""

from .codebook import CODEBOOK_COLUMNS, codebook, codebook_of
from .columns import AGE_TOP, AGE_TOP_LABEL, Column, Redcap
from .definitions import (
    ALL,
    COMPONENTS,
    DATES_MODES,
    EVENTS,
    EXPORTED,
    PATIENTS,
    RESPONDER_THRESHOLD_PCT,
    VISITS,
    Dataset,
    check_dates,
    safety_deficiencies,
    safety_tabulated,
    visit_days_from_implant,
    with_extra_rows,
)
from .rows import CHUNK_BYTES, copy_chunks, copy_sql, fetched_rows, typed_rows
from .sql import iso_class


def get(name: str) -> Dataset:
    """An exported dataset by its URL name ("visits", "adverse-events")."""
    try:
        return EXPORTED[name]
    except KeyError:
        raise ValueError(f"Unknown dataset '{name}'; expected one of {', '.join(EXPORTED)}.") from None


__all__ = [
    "AGE_TOP", "AGE_TOP_LABEL", "ALL", "CHUNK_BYTES", "COMPONENTS", "CODEBOOK_COLUMNS", "Column",
    "DATES_MODES",
    "Dataset", "EVENTS", "EXPORTED", "PATIENTS", "RESPONDER_THRESHOLD_PCT", "Redcap", "VISITS",
    "check_dates", "codebook", "codebook_of", "copy_chunks", "copy_sql", "fetched_rows", "get", "iso_class",
    "safety_deficiencies", "safety_tabulated",
    "typed_rows", "visit_days_from_implant", "with_extra_rows",
]

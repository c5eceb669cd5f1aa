"""The codebook: one row per column of a dataset, read from the same declarations."""

from __future__ import annotations

from registry.models import choices

from .columns import Column
from .definitions import Dataset

KIND_TEXT = {
    "str": "text", "code": "coded text", "int": "integer", "float": "number", "bool": "yes/no",
    "date": "date (YYYY-MM-DD)", "age": "integer (90 = 90 or older)", "scale": "integer scale",
}
CODEBOOK_COLUMNS = ("variable", "label", "type", "values", "numbering", "redcap_form", "redcap_field")


def codebook(dataset: Dataset, *, dates: str = "relative", value_set: str | None = None) -> list[dict]:
    """The variables of `dataset` in file order: name, label, type, the codes with their
    labels, the frozen numbers Stata and REDCap use for them, and the REDCap placement.
    With `value_set`, the EQ-5D-5L columns' labels state it (code, citation, algorithm)."""
    return codebook_of(dataset.columns_for(dates=dates), value_set=value_set)


def value_set_labels(value_set: str | None, columns: list[Column]) -> dict[str, str]:
    """Labels of the EQ-5D-5L columns stating the value set the file was made with (first,
    so that Stata's 80 characters keep it), then the column's label and the citation."""
    if not value_set:
        return {}
    from registry.services.proms.instruments import check_value_set, value_set_note

    code, note = check_value_set(value_set), value_set_note(value_set)
    return {c.name: f"Value set {code}: {c.label}; {note}" for c in columns
            if c.name in ("eq5d5l_index", "eq5d5l_value_set")}


def codebook_of(columns: list[Column], *, value_set: str | None = None) -> list[dict]:
    out = []
    stated = value_set_labels(value_set, columns)
    for column in columns:
        numbered = choices.numbered(column.codes) if column.codes else []
        out.append({
            "variable": column.name,
            "label": stated.get(column.name, column.label),
            "type": KIND_TEXT[column.kind],
            "values": "; ".join(f"{code} = {label}" for _, code, label in numbered),
            "numbering": "; ".join(f"{n} = {code}" for n, code, _ in numbered),
            "redcap_form": column.redcap.form if column.redcap else "",
            "redcap_field": (column.redcap.name or column.name) if column.redcap else "",
        })
    return out

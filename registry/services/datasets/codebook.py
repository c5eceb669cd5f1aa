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


def codebook(dataset: Dataset, *, dates: str = "relative") -> list[dict]:
    """The variables of `dataset` in file order: name, label, type, the codes with their
    labels, the frozen numbers Stata and REDCap use for them, and the REDCap placement."""
    return codebook_of(dataset.columns_for(dates=dates))


def codebook_of(columns: list[Column]) -> list[dict]:
    out = []
    for column in columns:
        numbered = choices.numbered(column.codes) if column.codes else []
        out.append({
            "variable": column.name,
            "label": column.label,
            "type": KIND_TEXT[column.kind],
            "values": "; ".join(f"{code} = {label}" for _, code, label in numbered),
            "numbering": "; ".join(f"{n} = {code}" for n, code, _ in numbered),
            "redcap_form": column.redcap.form if column.redcap else "",
            "redcap_field": (column.redcap.name or column.name) if column.redcap else "",
        })
    return out

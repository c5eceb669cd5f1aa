"""One cell's text as a value: the column's kind (codes, dates, yes/no, numbers)
and what an empty cell means for the model field it fills."""

import datetime
import decimal
import re

from django.db import models

from ..bundles import (
    BOOL,
    CODE,
    CODES,
    DATE,
    DECIMAL,
    INT,
    KEY,
    TEXT,
    Column,
)

DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
INT_RE = re.compile(r"^-?\d+$")
DECIMAL_RE = re.compile(r"^-?\d+(\.\d+)?$")


# ---------------------------------------------------------------- values


class _Bad(Exception):
    pass


def _parse(column: Column, text: str):
    """A cell's value, or _Bad(expected)."""
    if text == "":
        if column.mandatory:
            raise _Bad("expected a value.")
        return None
    kind = column.kind
    if kind in (TEXT, KEY):
        return text
    if kind == CODE:
        if text not in column.codes:
            raise _Bad("expected one of " + ", ".join(column.codes) + ".")
        return text
    if kind == CODES:
        codes = [part.strip() for part in text.split(";") if part.strip()]
        unknown = [c for c in codes if c not in column.codes]
        if unknown:
            raise _Bad(f"unknown code {', '.join(unknown)}; expected codes separated by ';' "
                       "from " + ", ".join(column.codes) + ".")
        return codes
    if kind == INT:
        if not INT_RE.match(text):
            raise _Bad(f"expected {_int_expectation(column)}.")
        value = int(text)
        low_high = column.int_range
        if low_high and not low_high[0] <= value <= low_high[1]:
            raise _Bad(f"expected {_int_expectation(column)}.")
        return value
    if kind == DATE:
        if not DATE_RE.match(text):
            raise _Bad("expected a date as YYYY-MM-DD.")
        try:
            return datetime.date.fromisoformat(text)
        except ValueError:
            raise _Bad("expected a date as YYYY-MM-DD (this day does not exist).") from None
    if kind == BOOL:
        lowered = text.lower()
        if lowered not in ("yes", "no"):
            raise _Bad("expected yes or no.")
        return lowered == "yes"
    if kind == DECIMAL:
        if not DECIMAL_RE.match(text):
            raise _Bad("expected a number with '.' as decimal mark.")
        return decimal.Decimal(text)
    raise AssertionError(kind)


def _int_expectation(column: Column) -> str:
    if column.int_range:
        return f"a whole number from {column.int_range[0]} to {column.int_range[1]}"
    return "a whole number"


def _required(model_field: models.Field) -> bool:
    """An empty cell is an error (the admin would say 'This field is required')."""
    return not (model_field.null or model_field.blank or model_field.has_default())


def _empty_value(model_field: models.Field):
    """What an empty cell means for a field: missing (None), blank text, or the default."""
    if model_field.null:
        return None
    if model_field.blank and isinstance(model_field, models.CharField | models.TextField):
        return ""
    if model_field.has_default():
        return model_field.get_default()
    return "" if isinstance(model_field, models.CharField | models.TextField) else None

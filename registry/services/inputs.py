"""Input every channel refuses before it reaches the database.

One definition, read by the request middleware (every query and form parameter
of the admin, the REST API, FHIR), the REDCap view (its form body) and the
bundle import (every cell).

Promises: `value_problem` names the parameter and the value when the value holds
a character no database here can store (NUL: PostgreSQL refuses it in text,
SQLite would keep it; a lone UTF-16 surrogate: not encodable as UTF-8), and
`instant_problem` does so for a time stamp parameter whose UTC offset lies beyond
±15:59 (PostgreSQL's limit; Python accepts up to ±23:59). Both return None when
the value is fine.
"""

import re

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
UNSTORABLE = _UNSTORABLE  # the readers' quick test before value_problem
# Parameters that carry an instant (REST `updated_since`, FHIR `_since` and `_lastUpdated`).
INSTANT_PARAMS = frozenset({"updated_since", "_since", "_lastUpdated"})
_OFFSET = re.compile(r"([+-])(\d{2}):?(\d{2})(?::?\d{2}(?:\.\d+)?)?$", re.ASCII)
MAX_OFFSET_MINUTES = 15 * 60 + 59


def _shown(value: str) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "...'"


def value_problem(name: str, value: str) -> str | None:
    """A message naming `name` and `value` if the value cannot be stored, else None."""
    for text in (name, value):
        match = _UNSTORABLE.search(text or "")
        if match:
            char = "a NUL character (\\x00)" if match.group() == "\x00" else (
                f"an unpaired surrogate (\\u{ord(match.group()):04x})")
            return (f"{_shown(name)}: the value {_shown(value)} holds {char}, which cannot be "
                    "stored; remove it.")
    return None


def instant_problem(name: str, value: str) -> str | None:
    """A message naming `name` and `value` if it is an instant with a UTC offset beyond
    ±15:59, else None (a malformed instant is left to the parameter's own parser)."""
    if name not in INSTANT_PARAMS or ("T" not in value and ":" not in value):
        return None
    match = _OFFSET.search(value.strip())
    if not match:
        return None
    minutes = int(match.group(2)) * 60 + int(match.group(3))
    if minutes > MAX_OFFSET_MINUTES:
        return (f"{name}: the value {_shown(value)} has a UTC offset beyond ±15:59; "
                "give the time in UTC (Z) or with a real offset.")
    return None


def params_problem(params) -> tuple[str, str] | None:
    """The first problem among the names and values of a QueryDict (or a mapping of
    lists), as (parameter name, message), or None."""
    for name in params:
        for value in params.getlist(name) if hasattr(params, "getlist") else params[name]:
            if not isinstance(value, str):
                continue  # uploaded files: their content is checked by their reader
            problem = value_problem(name, value) or instant_problem(name, value)
            if problem:
                return name, problem
    return None

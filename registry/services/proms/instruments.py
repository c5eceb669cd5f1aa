"""The PROM instrument registry, for every channel (admin, exports, ePRO, data checks).

- `INSTRUMENTS`: code -> `Instrument` (name, version, items with code, short label and
  allowed values, scores with range, direction, minimal important change and citation,
  missing-item rule, licence note); `SCORES`: score column -> (instrument, score).
- `VALUE_SETS`: the EQ-5D-5L value sets (NL, ENG, US, DE, BE) with their citations.
- `score(instrument, answers, value_set=None)`, `is_scorable(instrument, answers)`:
  pure functions over an item-code -> value mapping.
- `expected_instruments(visit)`: the instruments the visit's protocol asks for.

The definitions themselves are pure data in `registry.models.instruments` (the model
validates answers against them, and models sit below services).
"""

from __future__ import annotations

from registry.models import FollowUpProtocol, PromSchedule, Visit
from registry.models.instruments import (  # noqa: F401  (the public names)
    ALGORITHM_VERSION,
    COUNTRY_VALUE_SETS,
    DEFAULT_VALUE_SET,
    HIGHER_BETTER,
    HIGHER_WORSE,
    INSTRUMENTS,
    SCORES,
    VALUE_SETS,
    Instrument,
    Item,
    Mic,
    Score,
    ValueSet,
    answer_problem,
    check_value_set,
    instrument_of,
    is_scorable,
    score,
    value_set_for_country,
)


def schedules_for(protocol: FollowUpProtocol | None) -> list[PromSchedule]:
    """The PROM rows of `protocol`; a protocol without any follows the registry default
    (a site protocol made before PROMs existed still asks for them)."""
    rows = list(protocol.prom_schedules.all()) if protocol else []
    if not rows:
        default = FollowUpProtocol.objects.filter(is_default=True).first()
        rows = list(default.prom_schedules.all()) if default else []
    return rows


def expected_instruments(visit: Visit, *, schedules: list[PromSchedule] | None = None) -> list[str]:
    """Instrument codes due at `visit` (its timepoint and the patient's diagnosis), in the
    order of INSTRUMENTS. `schedules` (from `schedules_for`) saves the look-up in loops."""
    from registry.services.scheduling import protocol_for

    if schedules is None:
        schedules = schedules_for(protocol_for(site=visit.patient.site))
    diagnosis = visit.patient.diagnosis
    due = {row.instrument for row in schedules if row.due_at(visit.timepoint, diagnosis)}
    return [code for code in INSTRUMENTS if code in due]


def default_value_set(countries) -> str:
    """The value set for an analysis over sites of `countries`: their country's when they
    share one value set, else DEFAULT_VALUE_SET (England)."""
    chosen = {value_set_for_country(c) for c in countries}
    return chosen.pop() if len(chosen) == 1 else DEFAULT_VALUE_SET


def value_set_note(value_set: str) -> str:
    """How every output states its value set and algorithm."""

    chosen = VALUE_SETS[check_value_set(value_set)]
    return f"EQ-5D-5L value set {chosen.code} ({chosen.country}): {chosen.citation}; scores by " \
           f"{ALGORITHM_VERSION}"

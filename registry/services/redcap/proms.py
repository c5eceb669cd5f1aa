"""The PROM instruments as REDCap instruments: one form per instrument (services.proms).

Each form holds one integer field per item (`<instrument>_<item>`, validated to the item's
range: 0-5 means 0-5 here as everywhere) and the instrument's scores as read-only number
fields, the registry's scores by the published algorithm (the PostgreSQL path reads them
from the visit's PROM sheet, the Python path computes them from the answers; REDCap's own
calculated fields are not used). The EQ-5D-5L
form also says which value set made its index (`eq5d5l_value_set`, raw = the code's
frozen number, as every coded field): the one of the country of the user's sites
(services.proms.instruments.default_value_set), as in the exports.

Item wording is licensed and not held: labels are the instrument's item codes and the
registry's short labels (models.instruments).
"""

from __future__ import annotations

from registry.models import PromAnswer
from registry.models.instruments import ALGORITHM_VERSION, INSTRUMENTS

from .project import Field

PROM_FORMS = tuple((code, instrument.name) for code, instrument in INSTRUMENTS.items())
PROM_FORM_NAMES = tuple(code for code, _ in PROM_FORMS)
VALUE_SET_FIELD = "eq5d5l_value_set"


def item_field(instrument: str, item: str) -> str:
    return f"{instrument}_{item}"


def prom_fields() -> tuple[Field, ...]:
    """The fields of the PROM forms, in form order: items, then scores."""
    out = []
    for code, instrument in INSTRUMENTS.items():
        first = True
        for item in instrument.items:
            name = item_field(code, item.code)
            out.append(Field(name, code, f"{instrument.name}: {item.label} ({item.code})", "int",
                             source=f"prom:{code}:{item.code}", minimum=str(item.low), maximum=str(item.high),
                             section=f"{instrument.name} ({instrument.version}); {instrument.licence}"
                             if first else ""))
            first = False
        held = {f.name for f in out}
        for score in instrument.scores:
            if score.code in held:  # a score that is one item as given (EQ VAS): the item field
                continue
            out.append(Field(score.code, code, f"{score.label} (computed)", "number",
                             source=f"score:{score.code}", annotation="@READONLY",
                             note=f"Computed by the registry on read ({ALGORITHM_VERSION}): {score.rule}"))
        if code == "eq5d5l":
            out.append(Field(VALUE_SET_FIELD, code, "EQ-5D-5L value set of the index", "code",
                             source=f"score:{VALUE_SET_FIELD}", codes="eq5d_value_set",
                             annotation="@READONLY"))
    return tuple(out)


def answers_of(visit_ids: list[int]) -> dict[int, dict[str, dict[str, int]]]:
    """visit id -> instrument -> item -> value, one query (a batch of visits)."""
    out: dict[int, dict[str, dict[str, int]]] = {}
    for visit_id, instrument, item, value in PromAnswer.objects.filter(visit_id__in=visit_ids) \
            .values_list("visit_id", "instrument", "item", "value").order_by():
        out.setdefault(visit_id, {}).setdefault(instrument, {})[item] = value
    return out


def prom_values(answers: dict[str, dict[str, int]], value_set: str) -> dict[str, object]:
    """The registry values of every PROM field of one visit (field source -> value)."""
    from registry.models.instruments import score

    out: dict[str, object] = {}
    for code, instrument in INSTRUMENTS.items():
        given = answers.get(code, {})
        for item in instrument.items:
            out[f"prom:{code}:{item.code}"] = given.get(item.code)
        for name, value in score(code, given, value_set).items():
            out[f"score:{name}"] = value
    out[f"score:{VALUE_SET_FIELD}"] = value_set if answers.get("eq5d5l") else None
    return out


def form_complete(answers: dict[str, dict[str, int]], form: str) -> bool:
    return all(item in answers.get(form, {}) for item in INSTRUMENTS[form].item_codes)

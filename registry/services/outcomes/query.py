"""The cohort and analysis parameters of an outcome summary, validated.

`outcome_query_clean` turns Python values or strings (query string, command
line) into an OutcomeQuery, or refuses them with an OutcomeQueryError naming
the parameter and the value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

from registry.models import (
    Diagnosis,
    Etiology,
    PainSite,
    Recall,
    Therapy,
    timepoint_months,
)

LAST = "last"
GROUP_BY_CHOICES = ("therapy", "etiology", "site")


class OutcomeQueryError(ValueError):
    """A bad cohort parameter; names the parameter and the value."""

    def __init__(self, param: str, value, message: str):
        self.param = param
        self.value = value
        super().__init__(message)


@dataclass(frozen=True)
class OutcomeQuery:
    """A validated cohort and analysis choice (see `outcome_query_clean`)."""

    therapy: tuple[str, ...] = ()
    etiology: tuple[str, ...] = ()
    diagnosis: tuple[str, ...] = ()
    site: tuple[str, ...] = ()
    implant_year_from: int | None = None
    implant_year_to: int | None = None
    pain_site: str | None = None
    recall: str = Recall.AVG_7D
    timepoint: str = LAST
    threshold: float = 50
    group_by: str | None = None
    extra: dict = field(default_factory=dict, compare=False)

    def as_dict(self) -> dict:
        data = asdict(self)
        data.pop("extra")
        for key in ("therapy", "etiology", "diagnosis", "site"):
            data[key] = list(data[key])
        return data


PARAMS = (
    "therapy", "etiology", "diagnosis", "site", "implant_year_from", "implant_year_to",
    "pain_site", "recall", "timepoint", "threshold", "group_by",
)


def _codes(param: str, raw, allowed: Iterable[str], *, upper: bool = False) -> tuple[str, ...]:
    if raw in (None, "", [], ()):
        return ()
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    values = []
    allowed = list(allowed)
    for item in items:
        code = str(item).strip()
        code = code.upper() if upper else code.lower()
        if not code:
            continue
        if code not in allowed:
            raise OutcomeQueryError(
                param, item, f"Unknown {param} '{item}'; expected one of {', '.join(allowed)}."
            )
        if code not in values:
            values.append(code)
    return tuple(values)


def _year(param: str, raw) -> int | None:
    if raw in (None, ""):
        return None
    try:
        year = int(str(raw).strip())
    except ValueError:
        raise OutcomeQueryError(param, raw, f"{param} must be a year such as 2015, not '{raw}'.") from None
    if not 1900 <= year <= 2100:
        raise OutcomeQueryError(param, raw, f"{param} must be between 1900 and 2100, not {year}.")
    return year


def outcome_query_clean(**raw) -> OutcomeQuery:
    """Validate cohort parameters given as Python values or strings (query
    string, command line): comma-separated codes, years, `last` or `m<N>`,
    a threshold in (0, 100]. Refuses unknown parameters and values with an
    OutcomeQueryError naming the parameter and the value. Site codes are
    checked for their form here and against the database in the summary."""
    unknown = sorted(set(raw) - set(PARAMS))
    if unknown:
        raise OutcomeQueryError(
            unknown[0], raw[unknown[0]],
            f"Unknown parameter '{unknown[0]}' (given '{raw[unknown[0]]}'); expected one of "
            f"{', '.join(PARAMS)}.",
        )
    sites = ()
    if raw.get("site") not in (None, "", [], ()):
        items = raw["site"].split(",") if isinstance(raw["site"], str) else list(raw["site"])
        sites = tuple(dict.fromkeys(str(s).strip().upper() for s in items if str(s).strip()))
        for code in sites:
            if not code.isalnum() or len(code) > 8:
                raise OutcomeQueryError("site", code, f"'{code}' is not a site code (e.g. NIJ).")
    year_from = _year("implant_year_from", raw.get("implant_year_from"))
    year_to = _year("implant_year_to", raw.get("implant_year_to"))
    if year_from and year_to and year_from > year_to:
        raise OutcomeQueryError(
            "implant_year_to", year_to,
            f"implant_year_to ({year_to}) is before implant_year_from ({year_from}).",
        )
    pain_sites = _codes("pain_site", raw.get("pain_site"), PainSite.values)
    if len(pain_sites) > 1:
        raise OutcomeQueryError("pain_site", raw.get("pain_site"), "Give one pain site at a time.")
    recall_raw = raw.get("recall")
    recall = _codes("recall", recall_raw, Recall.values) if recall_raw not in (None, "") else ()
    if len(recall) > 1:
        raise OutcomeQueryError("recall", recall_raw, "Give one recall period.")
    timepoint = str(raw.get("timepoint") or LAST).strip().lower()
    if timepoint != LAST and not timepoint_months(timepoint):
        raise OutcomeQueryError(
            "timepoint", raw.get("timepoint"),
            f"Unknown timepoint '{raw.get('timepoint')}'; use 'last' or m<N> such as m12.",
        )
    threshold_raw = raw.get("threshold")
    threshold = 50.0
    if threshold_raw not in (None, ""):
        try:
            threshold = float(str(threshold_raw).strip().rstrip("%"))
        except ValueError:
            raise OutcomeQueryError(
                "threshold", threshold_raw,
                f"threshold must be a percentage such as 50, not '{threshold_raw}'.",
            ) from None
        if not (0 < threshold <= 100) or math.isnan(threshold):
            raise OutcomeQueryError(
                "threshold", threshold_raw, f"threshold must be above 0 and at most 100, not {threshold_raw}."
            )
    group_by = raw.get("group_by") or None
    if group_by is not None:
        group_by = str(group_by).strip().lower()
        if group_by not in GROUP_BY_CHOICES:
            raise OutcomeQueryError(
                "group_by", raw.get("group_by"),
                f"Unknown group_by '{raw.get('group_by')}'; expected one of {', '.join(GROUP_BY_CHOICES)}.",
            )
    return OutcomeQuery(
        therapy=_codes("therapy", raw.get("therapy"), Therapy.values, upper=True),
        etiology=_codes("etiology", raw.get("etiology"), Etiology.values),
        diagnosis=_codes("diagnosis", raw.get("diagnosis"), Diagnosis.values),
        site=sites,
        implant_year_from=year_from,
        implant_year_to=year_to,
        pain_site=pain_sites[0] if pain_sites else None,
        recall=recall[0] if recall else Recall.AVG_7D,
        timepoint=timepoint,
        threshold=int(threshold) if float(threshold).is_integer() else threshold,
        group_by=group_by,
    )

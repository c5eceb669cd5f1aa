"""The PROM scores as SQL, for the datasets (one query, streamed, COPY on PostgreSQL).

Built from the same declarations as `Score.compute` (method, items, minimum answered,
decimals; value-set coefficients), so the dataset and the Python scores cannot drift:
tests/proms/test_exports.py compares both over generated answer sets. One correlated
subquery per score over the (visit, instrument, item) unique index.
"""

from __future__ import annotations

from django.db.models import (
    Case,
    Count,
    Expression,
    F,
    FloatField,
    IntegerField,
    Max,
    OuterRef,
    Q,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Cast, Round

from registry.models import PromAnswer
from registry.models.instruments import EQ5D_DIMENSIONS, SCORES, VALUE_SETS, Score

from .instruments import check_value_set


def _float(expression) -> Expression:
    return Cast(expression, FloatField())


def score_expression(code: str, value_set: str | None = None, visit_ref: str = "pk") -> Expression:
    """The SQL of score `code` (e.g. "odi_score") of the row's visit (`visit_ref`)."""
    instrument, score = SCORES[code]
    answers = PromAnswer.objects.filter(visit=OuterRef(visit_ref), instrument=instrument.code,
                                        item__in=score.items).order_by().values("visit")
    n = Count("value")
    value = _value(score, check_value_set(value_set))
    grouped = answers.annotate(n=n, total=Sum("value"), worst=Max("value"), decrement=_decrement(score,
                                                                                               value_set))
    output = IntegerField() if is_integer(score) else FloatField()
    scored = grouped.annotate(score=Case(When(n__gte=score.min_answered, then=value), default=Value(None),
                                         output_field=output)).values("score")
    return Subquery(scored[:1], output_field=output)


def is_integer(score: Score) -> bool:
    """Totals and single items are whole numbers (exported as integers)."""
    return score.method in ("value", "sum")


def _decrement(score: Score, value_set: str | None):
    if score.method != "index":
        return Value(0.0, output_field=FloatField())
    chosen = VALUE_SETS[check_value_set(value_set)]
    whens = [When(item=dim, value=level, then=Value(chosen.decrements[dim][level - 2]))
             for dim in EQ5D_DIMENSIONS for level in range(2, 6)]
    return Sum(Case(*whens, default=Value(0.0), output_field=FloatField()))


def _value(score: Score, value_set: str):
    total = _float("total")
    if score.method == "index":
        chosen = VALUE_SETS[value_set]
        return Case(When(Q(worst=1), then=Value(1.0)),
                    default=Round(Value(1.0 - chosen.constant) - _float("decrement"), 3),
                    output_field=FloatField())
    if score.method in ("value", "sum"):
        return F("total")
    if score.method == "percent":
        raw = total * Value(100.0) / (_float("n") * Value(float(score.item_max)))
    elif score.method == "mean":
        raw = total / _float("n")
    else:  # prorated
        raw = total * Value(float(len(score.items))) / _float("n")
    return Round(raw, score.decimals)

"""The PROM scores as SQL, for the datasets (one query, streamed, COPY on PostgreSQL)
and the PROM outcomes.

Built from the same declarations as `Score.compute` (method, items, minimum answered,
decimals; value-set coefficients), so the dataset and the Python scores cannot drift:
tests/proms/test_exports.py compares both over generated answer sets. The expressions
(`_scored`) write each visit's PROM sheet (services.proms.stored); the readers
(`score_expression`, `visit_scores`) read the sheet's columns. Computing them from the
answers on every read made every visit-level channel PROM-bound (24 M answers at 100,000
patients: the visits export 5 s -> 49 s, issue 21).
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
    Q,
    QuerySet,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Cast, Round
from django.db.models.lookups import Exact, GreaterThanOrEqual

from registry.models.instruments import EQ5D_DIMENSIONS, SCORES, VALUE_SETS, Score
from registry.models.proms import is_integer, sheet_score

from .instruments import check_value_set


def _float(expression) -> Expression:
    return Cast(expression, FloatField())


def score_expression(code: str, value_set: str | None = None) -> Expression:
    """Score `code` (e.g. "odi_score") of a Visit row, in `value_set`: its stored value in
    the visit's PROM sheet (models.PromSheet, a left join; written by `stored` from the
    expressions below)."""
    return F(f"prom_sheet__{sheet_score(code, check_value_set(value_set))}")


def visit_scores(visits: QuerySet, value_set: str | None = None) -> QuerySet:
    """`visits` (a Visit queryset) annotated with every score (SCORES, named by its code),
    from their PROM sheets; only visits holding answers (those with a sheet)."""
    value_set = check_value_set(value_set)
    return visits.filter(prom_sheet__isnull=False).annotate(**{
        code: score_expression(code, value_set) for code in SCORES})


ANSWERS = "prom_answers__"  # a visit's answers, as a Visit query reaches them


def _answers_of(instrument, score: Score, prefix: str) -> Q:
    """The answers of `score` among a visit's: those of its instrument and items, said with
    the fewest comparisons (each is made for every answer row of the registry): an answer
    holds one of its instrument's items (constraint prom_answer_on_scale), so a score of
    every item is its instrument's answers, one of all items but a few is those without."""
    others = tuple(code for code in instrument.item_codes if code not in score.items)
    of_instrument = Q(**{f"{prefix}instrument": instrument.code})
    if not others:
        return of_instrument
    if len(others) < len(score.items):
        return of_instrument & ~Q(**{f"{prefix}item__in": others})
    return of_instrument & Q(**{f"{prefix}item__in": score.items})


def _output(score: Score):
    return IntegerField() if is_integer(score) else FloatField()


def _scored(score: Score, value_set: str, answers: Q | None = None, prefix: str = "") -> Expression:
    """The score from its answers (the rows `prefix` reaches, those matching `answers` if
    given): None unless at least `min_answered` items are answered."""
    value = f"{prefix}value"
    n = Count(value, filter=answers)
    scored = _value(score, value_set, n=n, total=Sum(value, filter=answers), worst=Max(value, filter=answers),
                    decrement=_decrement(score, value_set, answers, prefix))
    return Case(When(GreaterThanOrEqual(n, score.min_answered), then=scored), default=Value(None),
                output_field=_output(score))


def _decrement(score: Score, value_set: str | None, answers: Q | None = None, prefix: str = ""):
    if score.method != "index":
        return Value(0.0, output_field=FloatField())
    chosen = VALUE_SETS[check_value_set(value_set)]
    whens = [When(Q(**{f"{prefix}item": dim, f"{prefix}value": level}),
                  then=Value(chosen.decrements[dim][level - 2]))
             for dim in EQ5D_DIMENSIONS for level in range(2, 6)]
    return Sum(Case(*whens, default=Value(0.0), output_field=FloatField()), filter=answers)


def _value(score: Score, value_set: str, *, n, total, worst, decrement):
    """The score of the aggregates of its answered items (count, sum, worst level,
    value-set decrement)."""
    if score.method == "index":
        chosen = VALUE_SETS[value_set]
        return Case(When(Exact(worst, 1), then=Value(1.0)),
                    default=Round(Value(1.0 - chosen.constant) - _float(decrement), 3),
                    output_field=FloatField())
    if score.method in ("value", "sum"):
        return total
    if score.method == "percent":
        raw = _float(total) * Value(100.0) / (_float(n) * Value(float(score.item_max)))
    elif score.method == "mean":
        raw = _float(total) / _float(n)
    else:  # prorated
        raw = _float(total) * Value(float(len(score.items))) / _float(n)
    return Round(raw, score.decimals)

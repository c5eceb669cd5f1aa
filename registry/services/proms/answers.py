"""Item answers at a visit: recording them with their audit trail, and scores on read.

`prom_answers_record` is the one write path (admin, import, ePRO, API): it validates every
item against the instrument definition before writing any, so a bad answer saves
nothing; each row goes through services.audit (history with actor and reason).
Each change rewrites the visit's derived PROM sheet once (services.proms.stored), which
the read paths use; the single-visit scores here are computed from the answers.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import transaction

from registry.models import PromAnswer, Visit, VisitStatus
from registry.services.audit import record_delete, record_save

from .instruments import INSTRUMENTS, answer_problem, check_value_set, expected_instruments, score
from .stored import sheets_deferred


def prom_answers_record(*, visit: Visit, instrument: str, answers: Mapping[str, int | None], actor,
                        reason: str = "") -> dict[str, int]:
    """Set the answers of one instrument at `visit` (item code -> value; None removes an
    answer; items not named are left as they are). Refuses the whole set (ValidationError
    naming each item and value) when any answer is off its scale or names an unknown item,
    a change to an answer of a completed visit without a reason, and answers at a missed or
    not-applicable visit. Returns the answers
    the visit now holds for the instrument."""
    if instrument not in INSTRUMENTS:
        raise ValidationError({"instrument": f"Unknown instrument '{instrument}'; use one of "
                                             f"{', '.join(INSTRUMENTS)}."})
    problems = {f"{instrument}.{item}": problem for item, value in answers.items()
                if value is not None and (problem := answer_problem(instrument, item, value))}
    problems.update({f"{instrument}.{item}": answer_problem(instrument, item, 0)
                     for item, value in answers.items()
                     if value is None and INSTRUMENTS[instrument].item(item) is None})
    if problems:
        raise ValidationError(problems)
    if visit.status in (VisitStatus.MISSED, VisitStatus.NOT_APPLICABLE):
        # Scheduled visits take answers (a patient may answer before the nurse completes
        # the visit); a missed or not-applicable one holds no data.
        raise ValidationError({"status": f"The visit is '{visit.get_status_display()}'; it holds no "
                                         f"answers. Set it to completed first."})
    reason = (reason or "").strip()
    with transaction.atomic(), sheets_deferred():
        held = {a.item: a for a in PromAnswer.objects.select_for_update()
                .filter(visit=visit, instrument=instrument)}
        changes = [item for item, value in answers.items()
                   if item in held and held[item].value != value]
        if changes and visit.status == VisitStatus.COMPLETED and not reason:
            raise ValidationError({"__all__": (
                f"The visit is completed and {instrument} answers were already recorded "
                f"({', '.join(sorted(changes))}): give a reason for the change.")}, code="reason_required")
        for item, value in answers.items():
            row = held.get(item)
            if value is None:
                if row is not None:
                    record_delete(row, actor=actor, reason=reason)
                    del held[item]
            elif row is None:
                held[item] = record_save(PromAnswer(visit=visit, instrument=instrument, item=item,
                                                    value=value), actor=actor, reason=reason)
            elif row.value != value:
                row.value, row.value_missing = value, ""  # an answer replaces its reason
                record_save(row, actor=actor, reason=reason)
    return {item: row.value for item, row in held.items()}


def prom_item_missing_record(*, visit: Visit, instrument: str, item: str, why: str, actor,
                             reason: str = "") -> PromAnswer:
    """Keep why an item asked at `visit` is not answered (`why`: a value reason of
    services.missing, e.g. `declined`), in place of its answer; the model refuses an
    unknown item or reason (ValidationError naming the field)."""
    with transaction.atomic():
        row = (PromAnswer.objects.select_for_update()
               .filter(visit=visit, instrument=instrument, item=item).first()
               or PromAnswer(visit=visit, instrument=instrument, item=item))
        row.value, row.value_missing = None, why
        return record_save(row, actor=actor, reason=reason)


def answers_by_visit(visit_ids: Iterable[int]) -> dict[int, dict[str, dict[str, int]]]:
    """visit id -> instrument -> item -> value, in one query."""
    out: dict[int, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(dict))
    for visit_id, instrument, item, value in PromAnswer.objects.filter(visit_id__in=list(visit_ids)) \
            .values_list("visit_id", "instrument", "item", "value").order_by():
        out[visit_id][instrument][item] = value
    return out


def visit_scores(visit: Visit, value_set: str | None = None) -> dict[str, float | None]:
    """Every PROM score of `visit` (score column -> value, None where not scorable)."""
    held = answers_by_visit([visit.pk]).get(visit.pk, {})
    chosen = check_value_set(value_set)
    out: dict[str, float | None] = {}
    for code in INSTRUMENTS:
        out.update(score(code, held.get(code, {}), chosen))
    return out


@dataclass
class InstrumentStatus:
    """One instrument at a visit: due or not, what is answered and missing, its scores."""

    code: str
    name: str
    expected: bool
    answers: dict[str, int] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    scores: dict[str, float | None] = field(default_factory=dict)

    @property
    def started(self) -> bool:
        return bool(self.answers)

    @property
    def complete(self) -> bool:
        return not self.missing

    @property
    def scorable(self) -> bool:
        return all(v is not None for v in self.scores.values())


def visit_prom_status(visit: Visit, value_set: str | None = None) -> list[InstrumentStatus]:
    """The instruments due at `visit` and any others answered there, each with its answers,
    missing items and scores (expected first, in the order of INSTRUMENTS)."""
    held = answers_by_visit([visit.pk]).get(visit.pk, {})
    due = set(expected_instruments(visit))
    chosen = check_value_set(value_set)
    out = []
    for code, definition in INSTRUMENTS.items():
        if code not in due and code not in held:
            continue
        answers = dict(held.get(code, {}))
        out.append(InstrumentStatus(
            code=code, name=definition.name, expected=code in due, answers=answers,
            missing=[i for i in definition.item_codes if i not in answers],
            scores=score(code, answers, chosen)))
    out.sort(key=lambda s: not s.expected)
    return out


def missing_instruments(visit: Visit) -> list[str]:
    """Instruments due at `visit` that cannot be scored yet (not or not fully answered)."""
    return [s.code for s in visit_prom_status(visit) if s.expected and not s.scorable]

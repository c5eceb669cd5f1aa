"""PROMs in FHIR R4: a Questionnaire per instrument, a QuestionnaireResponse per visit and
instrument with the item answers, and an Observation per computable score.

- Questionnaire `prom-<instrument>` (canonical `<system>:questionnaire:<instrument>`, the
  instrument's version): item codes as `linkId`, the registry's short labels as `text`
  and the allowed range (minValue/maxValue extensions); no licensed item wording, the
  licence note in `copyright`.
- QuestionnaireResponse `qr-<visit>-<instrument>`: status completed when every item is
  answered, else in-progress; `authored` is the visit date, shifted for users who do not
  see real dates (services.deid), who also get no record time and the PSEUDED label.
- Observation `visit-<visit>-<score>`: the score (services.proms; the bulk SQL path reads
  the PROM sheet), with
  `derivedFrom` its QuestionnaireResponse and `method.text` the algorithm and, for the
  EQ-5D-5L index, the value set (default: the one of the country of the user's sites).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from registry.models import PromAnswer, Visit, VisitStatus
from registry.models.instruments import ALGORITHM_VERSION, INSTRUMENTS, SCORES, score

from ..proms.instruments import value_set_note
from .resources import (
    _concept,
    _day,
    _meta,
    _observation,
    _patient_ref,
    _shift_of,
    code_system,
    system_base,
)

MIN_VALUE = "http://hl7.org/fhir/StructureDefinition/minValue"
MAX_VALUE = "http://hl7.org/fhir/StructureDefinition/maxValue"


def fhir_id(code: str) -> str:
    """A registry code in a FHIR id (ids allow letters, digits, '-' and '.', not '_')."""
    return code.replace("_", "-")


def response_id(visit_pk: int, instrument: str) -> str:
    return f"qr-{visit_pk}-{fhir_id(instrument)}"


def questionnaire_url(instrument: str) -> str:
    return f"{system_base()}:questionnaire:{instrument}"


def questionnaire_resource(instrument: str) -> dict:
    found = INSTRUMENTS[instrument]
    return {
        "resourceType": "Questionnaire",
        "id": f"prom-{fhir_id(instrument)}",
        "url": questionnaire_url(instrument),
        "version": found.version,
        "name": instrument.upper(),
        "title": found.name,
        "status": "active",
        "subjectType": ["Patient"],
        "description": f"Item codes, short labels and ranges only (no licensed wording). {found.citation}",
        "copyright": found.licence,
        "item": [{
            "linkId": item.code,
            "text": item.label,
            "type": "integer",
            "required": False,
            "extension": [{"url": MIN_VALUE, "valueInteger": item.low},
                          {"url": MAX_VALUE, "valueInteger": item.high}],
        } for item in found.items],
    }


def questionnaire_resources() -> list[dict]:
    return [questionnaire_resource(code) for code in INSTRUMENTS]


def _grouped(answers: Iterable[PromAnswer]) -> dict[str, list[PromAnswer]]:
    out: dict[str, list[PromAnswer]] = {}
    for answer in answers:
        out.setdefault(answer.instrument, []).append(answer)
    return out


def questionnaire_response_resources(visit: Visit, answers: Iterable[PromAnswer], *,
                                     shift: bool = False) -> Iterator[dict]:
    """One QuestionnaireResponse per instrument answered at a completed visit."""
    if visit.status != VisitStatus.COMPLETED or not visit.date_done:
        return
    days = _shift_of(visit, shift)
    for instrument, rows in _grouped(answers).items():
        found = INSTRUMENTS[instrument]
        order = {code: i for i, code in enumerate(found.item_codes)}
        rows = sorted(rows, key=lambda a: order.get(a.item, len(order)))
        latest = max(rows, key=lambda a: a.updated_at)
        complete = {a.item for a in rows} >= set(found.item_codes)
        resource = {
            "resourceType": "QuestionnaireResponse",
            "id": response_id(visit.pk, instrument),
            "meta": _meta(latest, shift),
            "extension": [{"url": f"{system_base()}:timepoint", "valueCode": visit.timepoint}],
            "questionnaire": f"{questionnaire_url(instrument)}|{found.version}",
            "status": "completed" if complete else "in-progress",
            "subject": _patient_ref(visit.patient.registry_id),
            "authored": _day(visit, "date_done", days),
            "item": [{"linkId": a.item, "answer": [{"valueInteger": a.value}]} for a in rows],
        }
        yield resource


def score_observations(visit: Visit, answers: Iterable[PromAnswer], value_set: str, *,
                       shift: bool = False, codes: set[str] | None = None) -> Iterator[dict]:
    """The PROM score Observations of a completed visit (only the computable scores)."""
    if visit.status != VisitStatus.COMPLETED or not visit.date_done:
        return
    days = _shift_of(visit, shift)
    for instrument, rows in _grouped(answers).items():
        given = {a.item: a.value for a in rows}
        latest = max(rows, key=lambda a: a.updated_at)
        for code, value in score(instrument, given, value_set).items():
            if value is None or (codes is not None and code not in codes):
                continue
            _, definition = SCORES[code]
            method = f"{definition.rule} Computed on read by {ALGORITHM_VERSION}."
            if definition.method == "index":
                method = f"{value_set_note(value_set)}. {method}"
            resource = _observation(
                visit, id_=f"visit-{visit.pk}-{fhir_id(code)}", updated=latest,
                code=_concept(code_system("prom-score"), code, definition.label, text=definition.label),
                value={"valueQuantity": {"value": value, "unit": "{score}",
                                         "system": "http://unitsofmeasure.org", "code": "{score}"}},
                shift=days)
            resource["method"] = {"text": method}
            source = response_id(visit.pk, instrument)
            resource["derivedFrom"] = [{"reference": f"QuestionnaireResponse/{source}"}]
            yield resource


def count_scores(visit_ids_answers: Iterable[tuple[int, str, str, int]], codes: set[str] | None) -> int:
    """How many score Observations `score_observations` yields over (visit, instrument,
    item, value) rows sorted by visit (Search.total)."""
    total = 0
    current, held = None, {}

    def flush():
        n = 0
        for instrument, given in held.items():
            # The value set changes values, never whether a score is computable.
            n += sum(1 for code, value in score(instrument, given).items()
                     if value is not None and (codes is None or code in codes))
        return n

    for visit_id, instrument, item, value in visit_ids_answers:
        if visit_id != current:
            total += flush()
            current, held = visit_id, {}
        held.setdefault(instrument, {})[item] = value
    return total + flush()

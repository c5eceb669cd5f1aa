"""FHIR bulk NDJSON of Observations written by PostgreSQL (issue 21).

`observation_resources` (Python, one visit at a time) is the reference and the SQLite path.
Here one statement writes the same resources, key for key, as JSON text: the constant parts
(category, codes, displays, code-system URIs, dataAbsentReason concepts) are made by the
Python builders themselves and bound as parameters, the per-row parts (ids, meta time,
timepoint, subject, day, device, value) come from the search's own queryset (same user scope,
same filters, same order), pain scores are joined in their model's order, and the PROM
score Observations are the visits dataset's own SQL scores (services.proms.sql) in the
search's value set, one per computable score, after the visit's other Observations. COPY streams
the lines, so memory does not grow with the registry and the query count is fixed.

Taken only for users who see real dates (no per-patient date shift: that is an HMAC of the
SECRET_KEY, computed in Python) and for searches that are not by `_id`; resource-for-resource
equal to the Python path (tests/interop/test_channel_outputs.py). The bytes differ only in
how non-ASCII letters are written (PostgreSQL writes them as they are, Python escapes them).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from django.db.models import Max, OuterRef, Subquery

from registry.models import PainScore, PainSite, PromAnswer, Recall, VisitStatus, choices
from registry.models.choices import EnteredBy
from registry.models.instruments import ALGORITHM_VERSION, SCORES

from .. import missing
from ..datasets import pg
from ..datasets.pg import Sql
from ..proms.instruments import value_set_note
from ..proms.sql import is_integer, score_expression
from .proms import fhir_id, response_id
from .resources import (
    LOINC,
    NRS_DISPLAY,
    NRS_LOINC,
    OBSERVATION_CATEGORY,
    PSEUDONYMIZED,
    _coding,
    _concept,
    _score,
    code_system,
    registry_concept,
    system_base,
)


def _json(value) -> str:
    return json.dumps(value, separators=(",", ":"))


def available(search) -> bool:
    return (search.resource_type == "Observation" and not search.shift and search.ids is None
            and search.rows is not None and pg.available(search.rows.db))


def _instant(ref: str) -> str:
    """`resources._instant`: ISO 8601 in UTC with 'Z', microseconds only when not zero."""
    utc = f"({ref} AT TIME ZONE 'UTC')"
    return (f"(to_char({utc}, 'YYYY-MM-DD\"T\"HH24:MI:SS') || CASE WHEN extract(microseconds FROM {utc})"
            f"::bigint %% 1000000 <> 0 THEN to_char({utc}, '.US') ELSE '' END || 'Z')")


def _head(sql: Sql, id_sql: str, updated: str, code: Sql) -> Sql:
    """The resource up to its value, in the key order of `resources._observation`."""
    pseudonymized = _json({"security": [PSEUDONYMIZED]})
    sql.add("%s::text || " + id_sql, '{"resourceType":"Observation","id":')
    sql.add(f" || %s::text || (CASE WHEN {updated} IS NULL THEN %s::text "
            f"ELSE '{{\"lastUpdated\":\"' || {_instant(updated)} || '\"}}' END)", ',"meta":', pseudonymized)
    sql.add(" || %s::text || to_json(v.timepoint)::text || %s::text",
            ',"extension":[{"url":' + _json(f"{system_base()}:timepoint") + ',"valueCode":', "}")
    # Who entered the answers; a patient's own answers name her as the performer too.
    sql.add(" || (CASE WHEN COALESCE(v.entered_by, '') = '' THEN '' ELSE %s::text"
            " || to_json(v.entered_by)::text || '}' END) || %s::text || ",
            ',{"url":' + _json(f"{system_base()}:entered-by") + ',"valueCode":',
            '],"status":')
    # A visit not done: "cancelled" and no date (resources._observation).
    sql.add("(CASE WHEN v.status = %s THEN %s::text ELSE %s::text END) || %s::text || ",
            str(VisitStatus.COMPLETED), '"final"', '"cancelled"',
            ',"category":' + _json([_concept(OBSERVATION_CATEGORY, "survey", "Survey")]) + ',"code":')
    sql.extend(code)
    sql.add(" || %s::text || to_json('Patient/' || v.rid)::text || %s::text"
            " || (CASE WHEN v.status = %s THEN %s::text || v.day::text || %s::text ELSE '' END)",
            ',"subject":{"reference":', '}', str(VisitStatus.COMPLETED), ',"effectiveDateTime":"', '"')
    sql.add(" || (CASE WHEN v.entered_by = %s THEN %s::text || to_json('Patient/' || v.rid)::text"
            " || %s::text ELSE '' END)", str(EnteredBy.PATIENT), ',"performer":[{"reference":', "}]")
    sql.add(" || (CASE WHEN v.implant_id IS NULL THEN '' ELSE %s::text || to_json('Device/' || v.ref)::text"
            " || %s::text END)", ',"focus":[{"reference":', "}]")
    return sql


def _case(ref: str, values: dict[str, str], otherwise: str = "NULL") -> Sql:
    sql = Sql(f"(CASE {ref}")
    for key, text in values.items():
        sql.add(" WHEN %s THEN %s::text", key, text)
    return sql.add(f" ELSE {otherwise} END)")


def _absent(ref: str) -> Sql:
    return _case(ref, {r.code: '"dataAbsentReason":' + _json(missing.fhir_data_absent_reason(r.code))
                       for r in missing.REASONS.values()})


def _why(kind: str) -> str:
    """The value's own reason, else the whole visit's (a visit not done)."""
    return f"COALESCE(NULLIF(v.{kind}_missing, ''), NULLIF(v.visit_missing, ''))"


def _visit_kind(kind: str) -> tuple[Sql, Sql, Sql]:
    """(condition, code, value) of one of a visit's own Observations."""
    if kind == "nrs":
        code = {"coding": [_coding(LOINC, NRS_LOINC, NRS_DISPLAY),
                           _coding(code_system("pain"), "primary-now", "Primary pain")],
                "text": "NRS pain (0-10), primary pain"}
        score = _json(_score(0))[1:-1]
        before, after = score.split(":0,", 1)
        value = Sql("(CASE WHEN v.nrs IS NOT NULL THEN %s::text || v.nrs::text || %s::text ELSE ",
                    [before + ":", "," + after]).extend(_absent(_why("nrs"))).add(" END)")
    else:
        code = _concept(code_system("observation"), kind,
                        "Satisfaction with treatment" if kind == "satisfaction"
                        else "Patient Global Impression of Change",
                        text="Satisfaction with treatment (5-point)" if kind == "satisfaction"
                        else "PGIC (7-point)")
        concepts = {str(c): '"valueCodeableConcept":' + _json(registry_concept(kind, c))
                    for _, c, _ in choices.numbered(kind)}
        value = Sql(f"(CASE WHEN v.{kind} IS NOT NULL THEN ").extend(_case(f"v.{kind}::text", concepts))
        value.add(" ELSE ").extend(_absent(_why(kind))).add(" END)")
    # A value, its reason, or a visit not done (the search holds those with their reason only).
    condition = Sql(f"(v.{kind} IS NOT NULL OR COALESCE(v.{kind}_missing, '') <> '' OR v.status <> %s)",
                    [str(VisitStatus.COMPLETED)])
    return condition, Sql("%s::text", [_json(code)]), value


def _pain_codes() -> tuple[Sql, Sql]:
    """(code, bodySite) of a pain score by site and recall, as `observation_resources` writes them."""
    codes, sites = {}, {}
    for site in PainSite:
        sites[str(site.value)] = ',"bodySite":' + _json({"text": site.label})
        for recall in Recall:
            code = {"coding": [_coding(LOINC, NRS_LOINC, NRS_DISPLAY),
                               _coding(code_system("pain"), f"{site.value}-{recall.value}",
                                       f"{site.label}, {recall.label}")],
                    "text": f"NRS pain (0-10), {site.label.lower()}, {recall.label.lower()}"}
            codes[f"{site.value}-{recall.value}"] = _json(code)
    return _case("(ps.pain_site || '-' || ps.recall)", codes), _case("ps.pain_site", sites)


def _prom_scores(search) -> list[tuple[str, int, str, str]]:
    """(instrument, place, score code, column) of the PROM scores asked for, in the order
    `proms.score_observations` yields them within an instrument."""
    from .search import PROM

    if PROM not in search.kinds:
        return []
    out = []
    for code, (instrument, _) in SCORES.items():
        if search.prom_codes is None or code in search.prom_codes:
            out.append((instrument.code, instrument.score_codes.index(code), code, f"s_{len(out)}"))
    return out


def _score_text(ref: str, integer: bool) -> str:
    """A score as `json.dumps` writes it: integers plain, floats with their shortest repr
    and '.0' when whole (PostgreSQL's float8 text is the same shortest form, without '.0')."""
    if integer:
        return f"(({ref})::bigint::text)"
    text = f"(({ref})::float8::text)"
    return f"(CASE WHEN {text} ~ '^-?[0-9]+$' THEN {text} || '.0' ELSE {text} END)"


def _prom_branch(scores, value_set: str) -> Sql:
    """The PROM score Observations (`proms.score_observations`): one per computable score
    of an answered instrument, after the visit's own Observations, instruments in the
    answers' order (models.PromAnswer.Meta.ordering), scores in the instrument's order."""
    rows = Sql()
    for i, (instrument, place, code, column) in enumerate(scores):
        _, definition = SCORES[code]
        method = f"{definition.rule} Computed on read by {ALGORITHM_VERSION}."
        if definition.method == "index":
            method = f"{value_set_note(value_set)}. {method}"
        code_json = _json(_concept(code_system("prom-score"), code, definition.label, text=definition.label))
        tail = (',"method":' + _json({"text": method}) + ',"derivedFrom":[{"reference":')
        rows.add(", " if i else "")
        # `response_id` of the visit: its prefix and instrument part around the visit's pk.
        before_pk, after_pk = response_id(0, instrument).split("-0-", 1)
        rows.add(f"(%s::text, %s::text, %s::text, %s::text, %s::text, %s::text, "
                 f"{_score_text('v.' + column, is_integer(definition))}, v.\"u_{instrument}\")",
                 instrument, f"{place:02d}", fhir_id(code), code_json,
                 tail + _json(f"QuestionnaireResponse/{before_pk}-")[:-1], f"-{after_pk}")
    branch = Sql("SELECT v.seq, 4, sc.instrument, sc.place, ")
    _head(branch, "to_json('visit-' || v.pk || '-' || sc.fid)::text", "sc.updated", Sql("sc.code"))
    score = _json(_score(0))[1:-1]
    before, after = score.split(":0,", 1)
    branch.add(" || %s::text || sc.value || %s::text || sc.tail || v.pk::text || sc.qr || %s::text",
               "," + before + ":", "," + after, '"}]}')
    branch.add(" FROM v CROSS JOIN LATERAL (VALUES ").extend(rows)
    branch.add(") AS sc(instrument, place, fid, code, tail, qr, value, updated) WHERE sc.value IS NOT NULL")
    return branch


def observation_sql(search) -> Sql:
    scores = _prom_scores(search)
    rows = search.rows
    extra = []
    if scores:
        # Scores from the same declarations as the visits dataset (proms.sql), in the user's
        # sites' value set; an instrument's record time is its latest answer's.
        rows = rows.annotate(**{column: score_expression(code, search.value_set)
                                for _, _, code, column in scores})
        instruments = list(dict.fromkeys(instrument for instrument, *_ in scores))
        rows = rows.annotate(**{f"u_{code}": Subquery(
            PromAnswer.objects.filter(visit=OuterRef("pk"), instrument=code).order_by().values("visit")
            .annotate(latest=Max("updated_at")).values("latest")[:1]) for code in instruments})
        extra = [column for *_, column in scores] + [f"u_{code}" for code in instruments]
    rows = rows.values_list(
        "pk", "timepoint", "date_done", "updated_at", "patient__registry_id", "implant_id", "implant__ref",
        "nrs", "nrs_missing", "satisfaction", "satisfaction_missing", "pgic", "pgic_missing", "entered_by",
        "status", "visit_missing", *extra)
    names = ("pk, timepoint, day, updated_at, rid, implant_id, ref, nrs, nrs_missing, satisfaction, "
             "satisfaction_missing, pgic, pgic_missing, entered_by, status, visit_missing"
             + "".join(f', "{n}"' for n in extra))
    sql = Sql("WITH v AS MATERIALIZED (SELECT row_number() OVER () AS seq, v0.* FROM (")
    sql.extend(pg.subquery(rows)).add(f") AS v0({names})) SELECT o.line FROM (")
    branches = []
    for order, kind in enumerate(("nrs", "satisfaction", "pgic")):
        if kind not in search.kinds:
            continue
        condition, code, value = _visit_kind(kind)
        branch = Sql(f"SELECT v.seq, {order} AS ord, NULL::text AS s1, NULL::text AS s2, ")
        _head(branch, f"to_json('visit-' || v.pk || '-{kind}')::text", "v.updated_at", code)
        branch.add(" || ',' || ").extend(value).add(" || '}' FROM v WHERE ").extend(condition)
        branches.append(branch)
    if "painscore" in search.kinds:
        code, site = _pain_codes()
        table = pg.quoted(PainScore._meta.db_table)
        branch = Sql("SELECT v.seq, 3, ps.pain_site, ps.recall, ")
        _head(branch, "to_json('painscore-' || ps.id)::text", "ps.updated_at", code)
        score = _json(_score(0))[1:-1]
        before, after = score.split(":0,", 1)
        branch.add(" || %s::text || ps.score::text || %s::text || ", "," + before + ":", "," + after)
        branch.extend(site).add(f" || '}}' FROM v JOIN {table} AS ps ON ps.visit_id = v.pk")
        branches.append(branch)
    if scores:
        branches.append(_prom_branch(scores, search.value_set))
    if not branches:
        branches.append(Sql("SELECT 0::bigint, 0, NULL::text, NULL::text, NULL::text WHERE false"))
    for i, branch in enumerate(branches):
        sql.add(" UNION ALL " if i else "").extend(branch)
    return sql.add(") AS o(seq, ord, s1, s2, line) ORDER BY o.seq, o.ord, o.s1, o.s2")


def python_ndjson(resources, counter) -> Iterator[bytes]:
    """NDJSON of built resources, 500 lines a chunk (the reference path)."""
    buffer = []
    for resource in resources:
        buffer.append(json.dumps(resource, separators=(",", ":")))
        counter.rows += 1
        if len(buffer) >= 500:
            yield ("\n".join(buffer) + "\n").encode()
            buffer = []
    if buffer:
        yield ("\n".join(buffer) + "\n").encode()


def observation_ndjson(search, counter) -> Iterator[bytes]:
    """The NDJSON lines of an Observation search, streamed by COPY."""
    return pg.joined(pg.copy_stream(observation_sql(search), search.rows.db, lines=True),
                     first=b"", between=b"\n", last=b"\n", empty=b"", counter=counter)

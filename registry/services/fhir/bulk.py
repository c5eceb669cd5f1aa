"""FHIR bulk NDJSON of Observations, Patients and AdverseEvents written by PostgreSQL (issue 21).

`observation_resources` (Python, one visit at a time) is the reference and the SQLite path.
Here one statement writes the same resources, key for key, as JSON text: the constant parts
(category, codes, displays, code-system URIs, dataAbsentReason concepts) are made by the
Python builders themselves and bound as parameters, the per-row parts (ids, meta time,
timepoint, subject, day, device, value) come from the search's own queryset (same user scope,
same filters, same order), pain scores are joined in their model's order, and the PROM
score Observations are the visits dataset's own SQL scores (services.proms.sql) in the
search's value set, one per computable score, after the visit's other Observations. A visit's
Observations make one line, in the Python path's order (so the resources are never sorted,
only the visits, by the search's own ORDER BY); COPY streams the lines, so memory does not
grow with the registry and the query count is fixed.

Observations: for every user and every search that is not by `_id`; for users who see
shifted dates without record times and with each visit's day moved back by its patient's
shift (an HMAC of the SECRET_KEY, computed in Python for the search's patients, one query,
and bound as an array indexed by patient pk); resource-for-resource equal to the Python path
(tests/interop/test_channel_outputs.py).

Patients and AdverseEvents (`patient_sql`, `adverse_event_sql`) are built the same way from
`resources.patient_resource` / `adverse_event_resource`: every coded part (gender, event
category, seriousness with its criterion, severity, outcome, causality with its WHO-UMC term)
is the Python helper's own JSON for each code, bound as a parameter; for every user, with
the user's view: no birth year, no death and no record time for users who see shifted
dates, whose AdverseEvent dates are moved back by the patient's shift (computed in Python
for the search's patients, one query, and joined). Equal to the Python path resource for
resource (tests/interop/test_fhir_bulk_sql.py).

The bytes differ only in how non-ASCII letters are written (PostgreSQL writes them as they
are, Python escapes them).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from django.db.models import F

from registry.models import (
    AdverseEvent,
    AeCategory,
    AeOutcome,
    PainScore,
    PainSite,
    Patient,
    Recall,
    Relatedness,
    SeriousCriterion,
    Severity,
    VisitStatus,
    choices,
)
from registry.models.base import today_anywhere
from registry.models.choices import EnteredBy
from registry.models.instruments import ALGORITHM_VERSION, SCORES
from registry.models.proms import sheet_updated

from .. import deid, missing
from ..datasets import AGE_TOP, iso_class, pg
from ..datasets.pg import Sql
from ..proms.instruments import value_set_note
from ..proms.sql import is_integer, score_expression
from .proms import fhir_id, response_id
from .resources import (
    GENDER,
    IMDRF_ANNEXES,
    LOINC,
    NRS_DISPLAY,
    NRS_LOINC,
    OBSERVATION_CATEGORY,
    PSEUDONYMIZED,
    STUDY_ID,
    _coding,
    _concept,
    _score,
    ae_event,
    ae_outcome,
    ae_seriousness,
    ae_severity,
    causality,
    code_system,
    gender,
    imdrf_url,
    iso_class_url,
    registry_concept,
    registry_id_system,
    system_base,
)

# Between two Observations of one visit's line: a byte JSON text never holds raw (control
# characters are escaped) and COPY's CSV does not quote; `ndjson` makes it a newline.
SEPARATOR = "E'\\x03'"


def _json(value) -> str:
    return json.dumps(value, separators=(",", ":"))


def available(search) -> bool:
    """Is there an SQL path for this search? Patient and AdverseEvent for every user (shifted
    dates: the shifts are computed in Python and joined), Observation for users who see real
    dates; never for a search by `_id` or on SQLite."""
    if search.ids is not None or search.rows is None or not pg.available(search.rows.db):
        return False
    return search.resource_type in SQL_TYPES


def _meta(updated: str, shift: bool) -> Sql:
    """`resources._meta`: the PSEUDED label without a record time for users who see shifted
    dates, else `lastUpdated` (the label when there is no record time)."""
    pseudonymized = _json({"security": [PSEUDONYMIZED]})
    if shift:
        return Sql("%s::text", [pseudonymized])
    return Sql(f"(CASE WHEN {updated} IS NULL THEN %s::text "
               f"ELSE '{{\"lastUpdated\":\"' || {_instant(updated)} || '\"}}' END)", [pseudonymized])


def _instant(ref: str) -> str:
    """`resources._instant`: ISO 8601 in UTC with 'Z', microseconds only when not zero."""
    utc = f"({ref} AT TIME ZONE 'UTC')"
    return (f"(to_char({utc}, 'YYYY-MM-DD\"T\"HH24:MI:SS') || CASE WHEN extract(microseconds FROM {utc})"
            f"::bigint %% 1000000 <> 0 THEN to_char({utc}, '.US') ELSE '' END || 'Z')")


def _head(sql: Sql, id_sql: str, updated: str, code: Sql, shift: bool) -> Sql:
    """The resource up to its value, in the key order of `resources._observation`; for users
    who see shifted dates, no record time and the visit's day moved back by `v.shift`."""
    sql.add("%s::text || " + id_sql, '{"resourceType":"Observation","id":')
    sql.add(" || %s::text || ", ',"meta":').extend(_meta(updated, shift))
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
    day = "(v.day - v.shift)" if shift else "v.day"
    sql.add(" || %s::text || to_json('Patient/' || v.rid)::text || %s::text"
            f" || (CASE WHEN v.status = %s THEN %s::text || {day}::text || %s::text ELSE '' END)",
            ',"subject":{"reference":', '}', str(VisitStatus.COMPLETED), ',"effectiveDateTime":"', '"')
    sql.add(" || (CASE WHEN v.entered_by = %s THEN %s::text || to_json('Patient/' || v.rid)::text"
            " || %s::text ELSE '' END)", str(EnteredBy.PATIENT), ',"performer":[{"reference":', "}]")
    sql.add(" || (CASE WHEN v.implant_id IS NULL THEN '' ELSE %s::text || to_json('Device/' || v.ref)::text"
            " || %s::text END)", ',"focus":[{"reference":', "}]")
    return sql


def _absent(ref: str) -> Sql:
    return pg.case(ref, {r.code: '"dataAbsentReason":' + _json(missing.fhir_data_absent_reason(r.code))
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
        value = Sql(f"(CASE WHEN v.{kind} IS NOT NULL THEN ").extend(pg.case(f"v.{kind}::text", concepts))
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
    return pg.case("(ps.pain_site || '-' || ps.recall)", codes), pg.case("ps.pain_site", sites)


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


def _prom_branch(scores, value_set: str, shift: bool) -> Sql:
    """The PROM score Observations of a visit (`proms.score_observations`), one text: one per
    computable score of an answered instrument, instruments in the answers' order
    (models.PromAnswer.Meta.ordering), scores in the instrument's order."""
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
    line = Sql()
    _head(line, "to_json('visit-' || v.pk || '-' || sc.fid)::text", "sc.updated", Sql("sc.code"), shift)
    score = _json(_score(0))[1:-1]
    before, after = score.split(":0,", 1)
    line.add(" || %s::text || sc.value || %s::text || sc.tail || v.pk::text || sc.qr || %s::text",
             "," + before + ":", "," + after, '"}]}')
    branch = Sql("(SELECT string_agg(").extend(line).add(f", {SEPARATOR} ORDER BY sc.instrument, sc.place)")
    branch.add(" FROM (VALUES ").extend(rows)
    branch.add(") AS sc(instrument, place, fid, code, tail, qr, value, updated) WHERE sc.value IS NOT NULL)")
    return branch


def observation_sql(search) -> Sql:
    scores = _prom_scores(search)
    rows = search.rows
    extra = []
    if scores:
        # Scores from the visit's PROM sheet as the visits dataset reads them (proms.sql), in
        # the user's sites' value set; an instrument's record time is its latest answer's.
        rows = rows.annotate(**{column: score_expression(code, search.value_set)
                                for _, _, code, column in scores})
        instruments = list(dict.fromkeys(instrument for instrument, *_ in scores))
        rows = rows.annotate(**{f"u_{code}": F(f"prom_sheet__{sheet_updated(code)}")
                                for code in instruments})
        extra = [column for *_, column in scores] + [f"u_{code}" for code in instruments]
    if search.shift:
        extra.append("patient_id")
    rows = rows.values_list(
        "pk", "timepoint", "date_done", "updated_at", "patient__registry_id", "implant_id", "implant__ref",
        "nrs", "nrs_missing", "satisfaction", "satisfaction_missing", "pgic", "pgic_missing", "entered_by",
        "status", "visit_missing", *extra)
    names = ("pk, timepoint, day, updated_at, rid, implant_id, ref, nrs, nrs_missing, satisfaction, "
             "satisfaction_missing, pgic, pgic_missing, entered_by, status, visit_missing"
             + "".join(f', "{n}"' for n in extra))
    # One line per visit holding its Observations in the Python path's order, each ended by
    # SEPARATOR (turned into a newline as the lines stream): no sort of the resources.
    pieces = []
    for kind in ("nrs", "satisfaction", "pgic"):
        if kind not in search.kinds:
            continue
        condition, code, value = _visit_kind(kind)
        piece = Sql("(CASE WHEN ").extend(condition).add(" THEN ")
        _head(piece, f"to_json('visit-' || v.pk || '-{kind}')::text", "v.updated_at", code, search.shift)
        pieces.append(piece.add(" || ',' || ").extend(value).add(" || '}' END)"))
    if "painscore" in search.kinds:
        code, site = _pain_codes()
        table = pg.quoted(PainScore._meta.db_table)
        piece = Sql("(SELECT string_agg(")
        _head(piece, "to_json('painscore-' || ps.id)::text", "ps.updated_at", code, search.shift)
        score = _json(_score(0))[1:-1]
        before, after = score.split(":0,", 1)
        piece.add(" || %s::text || ps.score::text || %s::text || ", "," + before + ":", "," + after)
        piece.extend(site).add(f" || '}}', {SEPARATOR} ORDER BY ps.pain_site, ps.recall)"
                               f" FROM {table} AS ps WHERE ps.visit_id = v.pk)")
        pieces.append(piece)
    if scores:
        pieces.append(_prom_branch(scores, search.value_set, search.shift))
    sql = Sql(f"SELECT o.line FROM (SELECT concat_ws({SEPARATOR}")
    for piece in pieces or [Sql("NULL::text")]:
        sql.add(", ").extend(piece)
    # OFFSET 0: the line is made once (a flattened subquery would make it again for the WHERE).
    sql.add(") AS line FROM ")
    if search.shift:
        sql.extend(_shifted(search, rows, names)).add(" AS v")
    else:
        sql.add("(").extend(pg.subquery(rows)).add(f") AS v({names})")
    return sql.add(" OFFSET 0) AS o WHERE o.line <> ''")


def _shifted(search, rows, names: str) -> Sql:
    """`rows` (their columns `names`, one of them patient_id) with each row's patient's shift
    as column `shift`, looked up in an array by patient pk: no join, so no sort (the rows
    stay in the search's order). A parenthesised subquery, for the caller to name."""
    base, shifts = _shifts_by_pk(search)
    sql = Sql("(SELECT r0.*, (%s::int[])[r0.patient_id - %s] AS shift FROM (", [shifts, base])
    return sql.extend(pg.subquery(rows)).add(f") AS r0({names}))")


def _shifts_by_pk(search) -> tuple[int, str]:
    """`deid.date_shift_days` of the search's patients as an int[] literal indexed by patient
    pk (from 1: pk - base; 0 where no patient of the search is; one query). A text literal:
    psycopg adapting a list of 100,000 ints took 50 ms of a 0.3 s AdverseEvent file."""
    patients = dict(Patient.objects.filter(pk__in=search.rows.order_by().values("patient_id"))
                    .values_list("pk", "registry_id"))
    if not patients:
        return 0, "{0}"
    base = min(patients) - 1
    shifts = [0] * (max(patients) - base)
    for pk, rid in patients.items():
        shifts[pk - base - 1] = deid.date_shift_days(rid)
    return base, "{" + ",".join(map(str, shifts)) + "}"


def _mapped(ref: str, values: dict[str, dict | list | str]) -> Sql:
    """The JSON text of a coded value, made by the Python builder for each code (NULL for
    a code the builder does not know: the model's choices do not admit one)."""
    return pg.case(ref, {code: _json(value) for code, value in values.items()})


def patient_sql(search) -> Sql:
    """`resources.patient_resource` of each row of the search, in its order."""
    shift = search.shift
    rows = search.rows.values_list("registry_id", "updated_at", "sex", "birth_year", "death_date")
    sql = Sql("SELECT %s::text || to_json(p.rid)::text || %s::text || ",
              ['{"resourceType":"Patient","id":', ',"meta":'])
    sql.extend(_meta("p.updated_at", shift))
    sql.add(" || %s::text || to_json(p.rid)::text || %s::text || ",
            ',"identifier":[{"system":' + _json(registry_id_system()) + ',"value":', '}],"gender":')
    genders = pg.case("p.sex", {str(code): _json(gender(code)) for code in GENDER}, otherwise="%s::text")
    genders.params.append(_json(gender("")))  # a code GENDER does not hold
    sql.extend(genders)
    if not shift:
        # `birth_year_shown`: not when the year shows an age over 89 now; nothing for the
        # users who see shifted dates (the birth year with real ages gives real years away).
        sql.add(" || (CASE WHEN p.birth_year IS NOT NULL AND p.birth_year <> 0 AND p.birth_year >= %s"
                " THEN ',\"birthDate\":\"' || lpad(p.birth_year::text,"
                " greatest(4, length(p.birth_year::text)), '0') || '\"' ELSE '' END)",
                today_anywhere().year - (AGE_TOP - 1))
        # Deceased only for users who see real dates (see `patient_resource`).
        sql.add(" || (CASE WHEN p.death_date IS NULL THEN '' "
                "ELSE ',\"deceasedDateTime\":\"' || p.death_date::text || '\"' END)")
    sql.add(" || '}' FROM (").extend(pg.subquery(rows))
    return sql.add(") AS p(rid, updated_at, sex, birth_year, death_date)")


def _causality(ref: str) -> Sql:
    return _mapped(ref, {str(code): causality(code) for code in Relatedness})


def adverse_event_sql(search) -> Sql:
    """`resources.adverse_event_resource` of each row of the search, in its order; clinical
    dates moved back by the patient's shift for users who see shifted dates (the shifts are
    `deid.date_shift_days` of the search's patients, one query, bound as an array indexed by
    patient pk: `_shifts_by_pk`)."""
    shift = search.shift
    for name in ("onset_date", "awareness_date"):
        if name not in deid.clinical_dates(AdverseEvent):
            raise ValueError(f"AdverseEvent.{name} is not a declared clinical date (deid.MODELS)")
    fields = ("pk", "patient__registry_id", "updated_at", "iso", *(name for _, name in IMDRF_ANNEXES),
              "category", "onset_date", "awareness_date", "serious", "serious_criterion", "severity",
              "outcome", "implant_id", "implant__ref", "implant__implant_date", "device_relatedness",
              "procedure_relatedness", *(("patient_id",) if shift else ()))
    names = ("pk, rid, updated_at, iso, imdrf_a, imdrf_e, imdrf_f, category, onset, awareness, serious, "
             "criterion, severity, outcome, implant_id, ref, implant_date, device_rel, procedure_rel"
             + (", patient_id" if shift else ""))
    rows = search.rows.annotate(iso=iso_class()).values_list(*fields)
    days = " - e.shift" if shift else ""
    line = Sql("%s::text || e.pk::text || %s::text || ",
               ['{"resourceType":"AdverseEvent","id":"ae-', '","meta":'])
    line.extend(_meta("e.updated_at", shift))
    line.add(" || %s::text || to_json(e.iso)::text || '}'", ',"extension":[{"url":' + _json(iso_class_url())
             + ',"valueCode":')
    for annex, _ in IMDRF_ANNEXES:
        line.add(f" || (CASE WHEN COALESCE(e.imdrf_{annex}, '') = '' THEN '' ELSE %s::text"
                 f" || to_json(e.imdrf_{annex})::text || '}}' END)", ',{"url":' + _json(imdrf_url(annex))
                 + ',"valueCode":')
    line.add(" || %s::text || ", '],"actuality":"actual","event":')
    line.extend(_mapped("e.category", {str(code): ae_event(code) for code in AeCategory}))
    line.add(" || %s::text || to_json('Patient/' || e.rid)::text || %s::text", ',"subject":{"reference":',
             '},"date":"')
    line.add(f" || (e.onset{days})::text || %s::text || (COALESCE(e.awareness, e.onset){days})::text"
             " || %s::text || ", '","detected":"', '","seriousness":')
    line.extend(_mapped("((CASE WHEN e.serious THEN 't' ELSE 'f' END) || COALESCE(e.criterion, ''))",
                        {("t" if serious else "f") + str(criterion): ae_seriousness(serious, criterion)
                         for serious in (True, False) for criterion in ("", *SeriousCriterion)}))
    line.add(" || %s::text || ", ',"severity":')
    line.extend(_mapped("e.severity", {str(code): ae_severity(code) for code in Severity}))
    line.add(" || %s::text || ", ',"outcome":')
    line.extend(_mapped("e.outcome", {str(code): ae_outcome(code) for code in AeOutcome}))
    line.add(" || %s::text", ',"study":' + _json([{"reference": f"ResearchStudy/{STUDY_ID}"}]))
    # The suspect entities: the device, and its implant procedure when it was implanted.
    line.add(" || (CASE WHEN e.implant_id IS NULL THEN '' ELSE %s::text || to_json('Device/' || e.ref)::text"
             " || %s::text || ", ',"suspectEntity":[{"instance":{"reference":', '},"causality":')
    line.extend(_causality("e.device_rel"))
    line.add(" || '}' || (CASE WHEN e.implant_date IS NULL THEN '' ELSE %s::text"
             " || to_json('Procedure/' || e.ref || '-implant')::text || %s::text || ",
             ',{"instance":{"reference":', '},"causality":')
    line.extend(_causality("e.procedure_rel")).add(" || '}' END) || ']' END) || '}'")
    sql = Sql("SELECT ").extend(line).add(" FROM ")
    if shift:
        return sql.extend(_shifted(search, rows, names)).add(" AS e")
    return sql.add("(").extend(pg.subquery(rows)).add(f") AS e({names})")


SQL_TYPES = {"Observation": observation_sql, "Patient": patient_sql, "AdverseEvent": adverse_event_sql}


def ndjson(search, counter) -> Iterator[bytes]:
    """The NDJSON lines of a search (`available`), streamed by COPY."""
    chunks = pg.copy_stream(SQL_TYPES[search.resource_type](search), search.rows.db, lines=True)
    if search.resource_type == "Observation":
        chunks = (chunk.replace(b"\x03", b"\n") for chunk in chunks)
    return pg.joined(chunks, first=b"", between=b"\n", last=b"\n", empty=b"", counter=counter)


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



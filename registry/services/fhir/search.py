"""FHIR search and read: the rows a user may see, narrowed by the supported
search parameters, and the resources built from them."""

from __future__ import annotations

import calendar
import datetime
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial

from django.db.models import Count, F, OuterRef, Q, QuerySet, Subquery

from registry.models import (
    AdverseEvent,
    ConsentStatus,
    Disposition,
    DispositionStatus,
    Implant,
    PainScore,
    Patient,
    PromAnswer,
    Visit,
    VisitStatus,
)
from registry.models.instruments import INSTRUMENTS, SCORES
from registry.models.visits import NOT_DONE

from .. import deid
from ..access import sites_for, visible
from . import bulk, proms
from .resources import (
    GENDER,
    LOINC,
    NRS_LOINC,
    OBSERVATION_KINDS,
    adverse_event_resource,
    code_system,
    device_resource,
    observation_resources,
    patient_resource,
    procedure_resources,
    registry_id_system,
    research_study_resource,
    research_subject_resource,
)

DATE_SEARCH_TYPES = ("Procedure", "Observation", "AdverseEvent")
DATE_HINT = "search by patient or code and select on the (consistently shifted) dates yourself"
RESOURCE_TYPES = (
    "Patient", "ResearchStudy", "ResearchSubject", "Device", "Procedure", "Observation",
    "AdverseEvent", "Questionnaire", "QuestionnaireResponse",
)
PROM = "prom"  # the Observation kind of the PROM scores (services.fhir.proms)


class FhirQueryError(ValueError):
    """A search or read the server cannot answer (bad parameter value, unknown type)."""

    def __init__(self, message: str, *, code: str = "invalid", status: int = 400):
        super().__init__(message)
        self.code = code
        self.status = status


# --- search ------------------------------------------------------------------------------

# ASCII digits only: \d would also take e.g. Arabic-Indic digits, which int() reads.
DATE_RE = re.compile(r"^(eq|ne|gt|lt|ge|le|sa|eb)?(\d{4}(-\d{2}(-\d{2})?)?)$", re.ASCII)
INSTANT_RE = re.compile(r"^(eq|gt|lt|ge|le)?(\d{4}-\d{2}-\d{2}(T[\d:.]+(Z|[+-]\d{2}:\d{2})?)?)$",
                        re.ASCII)
# Primary keys are 64-bit: a larger number in an id names no row, and the database
# would refuse it (SQLite: OverflowError) instead of finding nothing.
MAX_PK = 2**63 - 1


@dataclass
class Search:
    """A parsed search: the rows to build resources from, and the parameters used."""

    resource_type: str
    rows: QuerySet | None
    used: dict[str, list[str]] = field(default_factory=dict)
    kinds: tuple[str, ...] = OBSERVATION_KINDS + ("painscore", PROM)
    ids: set[str] | None = None
    shift: bool = False  # clinical dates shifted per patient (services.deid)
    value_set: str = "ENG"  # EQ-5D-5L value set of the score Observations (the user's sites')
    prom_codes: set[str] | None = None  # PROM scores asked for by `code` (None: all)

    @property
    def dates(self) -> str:
        """The export log's dates mode: real dates (iso) or shifted ones."""
        return "shifted" if self.shift else "iso"

    def resources(self) -> Iterator[dict]:
        for resource in _build(self.resource_type, self.rows, self.kinds, self.shift, self):
            if self.ids is None or resource["id"] in self.ids:
                yield resource

    def ndjson(self, counter, *, sql: bool | None = None) -> Iterator[bytes]:
        """The resources as bulk NDJSON bytes; Observations, Patients and AdverseEvents written
        by PostgreSQL where it can (`bulk`; `sql=False` forces the Python builders, the reference)."""
        if sql is not False and bulk.available(self):
            return bulk.ndjson(self, counter)
        return bulk.python_ndjson(self.resources(), counter)

    def total(self) -> int:
        """How many resources `resources()` yields, counted in SQL where it can be."""
        if self.rows is None or self.ids is not None:
            # ResearchStudy, or an _id search (a handful of ids): build and count.
            return sum(1 for _ in self.resources())
        if self.resource_type == "Procedure":
            # One implant procedure per row, plus the explant when there is one.
            return self.rows.count() + self.rows.filter(explant_date__isnull=False).count()
        if self.resource_type == "Observation":
            # One per recorded NRS / satisfaction / PGIC value, one per further pain score.
            # (or its reason, or the whole visit's reason: a visit not done)
            found = self.rows.aggregate(**{kind: Count("pk", filter=Q(**{f"{kind}__isnull": False})
                                                       | Q(**{f"{kind}_missing__gt": ""})
                                                       | ~Q(status=VisitStatus.COMPLETED))
                                           for kind in OBSERVATION_KINDS if kind in self.kinds})
            total = sum(found.values())
            if "painscore" in self.kinds:
                total += PainScore.objects.filter(visit__in=self.rows.values("pk")).count()
            if PROM in self.kinds:
                answers = PromAnswer.objects.filter(visit__in=self.rows.values("pk")).order_by("visit_id") \
                    .values_list("visit_id", "instrument", "item", "value")
                total += proms.count_scores(answers.iterator(chunk_size=5000), self.prom_codes)
            return total
        if self.resource_type == "QuestionnaireResponse":
            return PromAnswer.objects.filter(visit__in=self.rows.values("pk")) \
                .values("visit_id", "instrument").distinct().count()
        return self.rows.count()


def _date_filter(param: str, value: str, field_name: str) -> Q:
    match = DATE_RE.match(value)
    if not match:
        raise FhirQueryError(f"Search parameter '{param}': '{value}' is not a FHIR date "
                             "(use e.g. ge2020-01-31).")
    prefix, text = match.group(1) or "eq", match.group(2)
    parts = [int(p) for p in text.split("-")]
    year, month, day = parts[0], parts[1] if len(parts) > 1 else None, parts[2] if len(parts) > 2 else None
    try:
        # The regex admits 2020-13, 2020-02-30 and 0000; the calendar does not.
        start = datetime.date(year, 1 if month is None else month, 1 if day is None else day)
        if day is not None:
            end = start
        elif month is not None:
            end = start.replace(day=calendar.monthrange(year, month)[1])
        else:
            end = datetime.date(year, 12, 31)
    except ValueError:
        raise FhirQueryError(f"Search parameter '{param}': '{value}' is not a calendar date "
                             "(year 0001-9999, month 01-12, a day the month has).") from None
    lookups = {
        "eq": Q(**{f"{field_name}__gte": start, f"{field_name}__lte": end}),
        "ne": ~Q(**{f"{field_name}__gte": start, f"{field_name}__lte": end}),
        "gt": Q(**{f"{field_name}__gt": end}), "sa": Q(**{f"{field_name}__gt": end}),
        "lt": Q(**{f"{field_name}__lt": start}), "eb": Q(**{f"{field_name}__lt": start}),
        "ge": Q(**{f"{field_name}__gte": start}), "le": Q(**{f"{field_name}__lte": end}),
    }
    return lookups[prefix]


def _instant_filter(param: str, value: str, field_name: str) -> Q:
    match = INSTANT_RE.match(value)
    if not match:
        raise FhirQueryError(f"Search parameter '{param}': '{value}' is not a FHIR instant "
                             "(use e.g. ge2024-01-31T00:00:00Z).")
    prefix, text = match.group(1) or "ge", match.group(2)
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.UTC)
        # The database compares in UTC: 9999-12-31T23:59-01:00 has no UTC value.
        moment = moment.astimezone(datetime.UTC)
    except (ValueError, OverflowError):
        raise FhirQueryError(f"Search parameter '{param}': '{value}' is not a valid instant.") from None
    op = {"eq": "gte", "ge": "gte", "gt": "gt", "le": "lte", "lt": "lt"}[prefix]
    return Q(**{f"{field_name}__{op}": moment})


_SCORE_IDS = "|".join(proms.fhir_id(c) for c in SCORES)
OBSERVATION_ID_RE = re.compile(r"^visit-(\d+)-(nrs|satisfaction|pgic|" + _SCORE_IDS + r")$"
                               r"|^painscore-(\d+)$", re.ASCII)
QR_ID_RE = re.compile(r"^qr-(\d+)-(" + "|".join(proms.fhir_id(c) for c in INSTRUMENTS) + r")$", re.ASCII)


def _pk(digits: str) -> int:
    """The primary key in an id; 0 (no row) when it is beyond any key."""
    value = int(digits)
    return value if value <= MAX_PK else 0


def _check_values(params: dict[str, list[str]]) -> None:
    # PostgreSQL refuses NUL in text (a 500); no id or code contains one.
    for name, values in params.items():
        for value in values:
            if "\x00" in value:
                raise FhirQueryError(f"Search parameter '{name}': {value!r} contains a NUL character.")


def _ref_value(param: str, value: str, resource_type: str = "Patient") -> str:
    value = value.strip()
    if "/" in value:
        kind, _, value = value.rpartition("/")
        if kind.rsplit("/", 1)[-1] != resource_type:
            raise FhirQueryError(f"Search parameter '{param}' expects a {resource_type} "
                                 f"reference, not '{kind}/{value}'.")
    return value


def _values(params: dict[str, list[str]], name: str) -> list[str]:
    """All values of a parameter; commas within one value mean OR (FHIR)."""
    out = []
    for raw in params.get(name, []):
        out.extend(v for v in raw.split(",") if v)
    return out


def _patient_filter(search: Search, params, names: tuple[str, ...], path: str) -> None:
    for name in names:
        values = _values(params, name)
        if values:
            search.used[name] = params[name]
            search.rows = search.rows.filter(
                **{f"{path}__in": [_ref_value(name, v) for v in values]})


def _date_params(search: Search, params, name: str, path: str) -> None:
    for value in params.get(name, []):
        search.used.setdefault(name, []).append(value)
        search.rows = search.rows.filter(_date_filter(name, value, path))


def fhir_search(*, user, resource_type: str, params: dict[str, list[str]]) -> Search:
    """Rows of `resource_type` visible to `user`, narrowed by the supported search
    parameters: `_id`, `_lastUpdated` for all; Patient: `identifier`, `gender`;
    ResearchSubject: `patient`/`individual`, `status`; Device: `patient`;
    Procedure: `patient`/`subject`, `date`; Observation: `patient`/`subject`, `code`,
    `date`; AdverseEvent: `patient`/`subject`, `date`, `seriousness`. `date` is refused
    for users who see shifted dates (services.deid), whose resources are then shifted.
    """
    if resource_type not in RESOURCE_TYPES:
        raise FhirQueryError(f"Resource type '{resource_type}' is not served here; supported: "
                             f"{', '.join(RESOURCE_TYPES)}.", code="not-supported", status=404)
    _check_values(params)
    shift = not deid.sees_real_dates(user)
    if shift and resource_type in DATE_SEARCH_TYPES and params.get("date"):
        # Bisecting a date search would reveal the real date behind a shifted one.
        raise FhirQueryError(f"Search parameter {deid.date_filter_refusal('date', DATE_HINT)}",
                             code="forbidden")
    search = _search(user, resource_type, params)
    search.shift = shift
    if resource_type == "Observation" and PROM in search.kinds:
        from ..proms.instruments import default_value_set

        search.value_set = default_value_set(sites_for(user).values_list("country", flat=True))
    return search


def _search(user, resource_type: str, params: dict[str, list[str]]) -> Search:
    ids = _values(params, "_id")
    if resource_type in ("ResearchStudy", "Questionnaire"):
        search = Search(resource_type, None)
        if ids:
            search.used["_id"] = params["_id"]
            search.ids = set(ids)
        return search
    if resource_type in ("Patient", "ResearchSubject"):
        rows = visible(Patient.objects.all(), user).order_by("registry_id")
        if resource_type == "Patient":
            # The death date in effect (services.disposition), for Patient.deceased.
            rows = rows.annotate(death_date=Subquery(
                Disposition.objects.filter(patient=OuterRef("pk"), status=DispositionStatus.DECEASED)
                .order_by("-date", "-pk").values("date")[:1]))
        search = Search(resource_type, rows)
        if ids:
            search.rows = search.rows.filter(registry_id__in=ids)
        if resource_type == "Patient":
            for value in _values(params, "identifier"):
                system, _, code = value.rpartition("|")
                if system and system != registry_id_system():
                    search.rows = search.rows.none()
                search.rows = search.rows.filter(registry_id=code)
                search.used["identifier"] = params["identifier"]
            genders = _values(params, "gender")
            if genders:
                by_gender = {v: k for k, v in GENDER.items()}
                unknown = [g for g in genders if g not in by_gender]
                if unknown:
                    raise FhirQueryError(f"Search parameter 'gender': '{unknown[0]}' is not one of "
                                         "male, female, other, unknown.")
                search.rows = search.rows.filter(sex__in=[by_gender[g] for g in genders])
                search.used["gender"] = params["gender"]
        else:
            _patient_filter(search, params, ("patient", "individual"), "registry_id")
            statuses = _values(params, "status")
            if statuses:
                wanted = set()
                for status in statuses:
                    if status == "withdrawn":
                        wanted.add(ConsentStatus.WITHDRAWN)
                    elif status == "on-study":
                        wanted.add(ConsentStatus.CONSENTED)
                search.rows = search.rows.filter(consent_status__in=wanted)
                search.used["status"] = params["status"]
        updated_path = "updated_at"
    elif resource_type in ("Device", "Procedure"):
        rows = visible(Implant.objects.select_related("patient"), user).order_by("ref")
        if resource_type == "Device":
            rows = rows.prefetch_related("components")  # the UDI-DIs, per chunk
        if resource_type == "Procedure":
            rows = rows.filter(implant_date__isnull=False)
        search = Search(resource_type, rows)
        if ids:
            refs = {i.removesuffix("-implant").removesuffix("-explant") for i in ids}
            search.rows = search.rows.filter(ref__in=refs)
            search.ids = set(ids)
        _patient_filter(search, params, ("patient", "subject"), "patient__registry_id")
        if resource_type == "Procedure":
            for value in params.get("date", []):
                search.used.setdefault("date", []).append(value)
                search.rows = search.rows.filter(
                    _date_filter("date", value, "implant_date")
                    | _date_filter("date", value, "explant_date"))
        updated_path = "updated_at"
    elif resource_type == "Observation":
        # Completed visits, and the visits not done with the reason why (their Observations
        # carry no value, only that reason: resources.observation_resources).
        rows = (visible(Visit.objects.select_related("patient", "implant"), user)
                .filter(Q(status=VisitStatus.COMPLETED, date_done__isnull=False)
                        | Q(status__in=NOT_DONE, visit_missing__gt=""))
                .order_by("patient__registry_id", F("date_done").asc(nulls_last=True), "pk"))
        search = Search(resource_type, rows)
        if ids:
            visit_pks, score_pks = set(), set()
            for value in ids:
                match = OBSERVATION_ID_RE.match(value)
                if match and match.group(1):
                    visit_pks.add(_pk(match.group(1)))
                elif match:
                    score_pks.add(_pk(match.group(3)))
            search.rows = search.rows.filter(Q(pk__in=visit_pks) | Q(pain_scores__pk__in=score_pks)
                                             ).distinct()
            search.ids = set(ids)
        _patient_filter(search, params, ("patient", "subject"), "patient__registry_id")
        _date_params(search, params, "date", "date_done")
        codes = _values(params, "code")
        if codes:
            kinds = set()
            for value in codes:
                system, _, code = value.rpartition("|")
                if code == NRS_LOINC and system in ("", LOINC):
                    kinds |= {"nrs", "painscore"}
                elif code in OBSERVATION_KINDS and system in ("", code_system("observation")):
                    kinds.add(code)
                elif code in SCORES and system in ("", code_system("prom-score")):
                    kinds.add(PROM)
                    search.prom_codes = (search.prom_codes or set()) | {code}
            search.kinds = tuple(sorted(kinds))
            search.used["code"] = params["code"]
        updated_path = "updated_at"
    elif resource_type == "QuestionnaireResponse":
        rows = (visible(Visit.objects.select_related("patient"), user)
                .filter(status=VisitStatus.COMPLETED, date_done__isnull=False)
                .filter(pk__in=PromAnswer.objects.values("visit_id"))
                .order_by("patient__registry_id", "date_done", "pk"))
        search = Search(resource_type, rows)
        if ids:
            search.rows = search.rows.filter(
                pk__in=[_pk(m.group(1)) for m in map(QR_ID_RE.match, ids) if m])
            search.ids = set(ids)
        _patient_filter(search, params, ("patient", "subject"), "patient__registry_id")
        # No date search here: `authored` is a shifted date for investigators (see `date`).
        updated_path = "prom_answers__updated_at"
    else:  # AdverseEvent
        rows = (visible(AdverseEvent.objects.select_related("patient", "implant"), user)
                .order_by("patient__registry_id", "onset_date", "pk"))
        search = Search(resource_type, rows)
        if ids:
            search.rows = search.rows.filter(
                pk__in=[_pk(i[3:]) for i in ids if re.fullmatch(r"ae-\d+", i, re.ASCII)])
        _patient_filter(search, params, ("patient", "subject"), "patient__registry_id")
        _date_params(search, params, "date", "onset_date")
        for value in _values(params, "seriousness"):
            code = value.rpartition("|")[2]
            if code not in ("serious", "non-serious"):
                raise FhirQueryError(f"Search parameter 'seriousness': '{value}' is not serious or "
                                     "non-serious.")
            search.rows = search.rows.filter(serious=code == "serious")
            search.used["seriousness"] = params["seriousness"]
        updated_path = "updated_at"
    if ids:
        search.used["_id"] = params["_id"]
    for value in params.get("_lastUpdated", []):
        search.used.setdefault("_lastUpdated", []).append(value)
        search.rows = search.rows.filter(_instant_filter("_lastUpdated", value, updated_path))
    if resource_type == "QuestionnaireResponse" and "_lastUpdated" in search.used:
        search.rows = search.rows.distinct()  # one row per visit, whichever answers matched
    return search


def _build(resource_type: str, rows: QuerySet | None, kinds, shift: bool,
           search: Search | None = None) -> Iterator[dict]:
    if resource_type == "ResearchStudy":
        yield research_study_resource()
        return
    if resource_type == "Questionnaire":
        yield from proms.questionnaire_resources()
        return
    if resource_type == "QuestionnaireResponse":
        for visit in rows.prefetch_related("prom_answers").iterator(chunk_size=2000):
            yield from proms.questionnaire_response_resources(visit, visit.prom_answers.all(), shift=shift)
        return
    if resource_type == "Observation":
        # Pain scores and PROM answers are fetched per chunk with the visits (no N+1).
        with_proms = PROM in kinds
        fetched = ("pain_scores", "prom_answers") if with_proms else ("pain_scores",)
        for visit in rows.prefetch_related(*fetched).iterator(chunk_size=2000):
            yield from observation_resources(visit, kinds, visit.pain_scores.all(), shift=shift)
            if with_proms:
                yield from proms.score_observations(visit, visit.prom_answers.all(), search.value_set,
                                                    shift=shift, codes=search.prom_codes)
        return
    builders = {
        # Device holds no clinical dates; Patient has a birth year only, and not for all.
        "Patient": partial(patient_resource, shift=shift),
        "ResearchSubject": partial(research_subject_resource, shift=shift),
        "Device": partial(device_resource, shift=shift),
        "AdverseEvent": partial(adverse_event_resource, shift=shift),
    }
    for row in rows.iterator(chunk_size=2000):
        if resource_type == "Procedure":
            yield from procedure_resources(row, shift=shift)
        else:
            yield builders[resource_type](row)


def fhir_read(*, user, resource_type: str, resource_id: str) -> dict | None:
    """One resource by id, or None when it does not exist or the user may not see it."""
    search = fhir_search(user=user, resource_type=resource_type, params={"_id": [resource_id]})
    return next(search.resources(), None)


def fhir_since_params(since: str | None) -> dict[str, list[str]]:
    """Bulk export `_since` as a search on `_lastUpdated`; a bad instant is refused
    here, naming `_since` as the client sent it (not `_lastUpdated`)."""
    if not since:
        return {}
    _instant_filter("_since", since, "updated_at")
    return {"_lastUpdated": [f"ge{since}"]}


EXPORT_TYPES = ("Patient", "ResearchSubject", "Device", "Procedure", "Observation", "AdverseEvent",
                "QuestionnaireResponse")

"""FHIR R4 views of the registry: pseudonymous resources built from the models.

What it promises:
- Patient (registry id under the registry's identifier system, gender, birth
  year only as `birthDate: "YYYY"`, and only for users who see real dates and
  patients not over 89 (`birth_year_shown`); no names, no record numbers, no
  contact details), ResearchSubject, Device (manufacturer, model, therapy; never
  the serial number or UDI), Procedure (implant and explant, with `focalDevice`;
  no explant reason, which is free text),
  Observation (NRS as LOINC 72514-3, further pain scores per pain site,
  satisfaction and PGIC with local codes), AdverseEvent (seriousness, severity,
  outcome, suspectEntity with causality to the device and to the procedure).
- Every query goes through `services.access.visible`, so a token sees the
  same patients as its user does in every other channel.
- Resources are plain dicts in FHIR R4 JSON shape; `tests/interop` validates
  them with the `fhir.resources` R4B models (R4B is the R4-compatible package
  of fhir.resources >= 7; the resources used here did not change from R4 4.0.1).

Dates (services.deid): users who do not see real dates (investigators) get
every clinical date of a patient (ResearchSubject period, Procedure
performedDateTime, Observation effectiveDateTime, AdverseEvent date) shifted
back by the patient's shift, and those resources carry the security label
PSEUDED (HL7 v3 ObservationValue, "pseudonymized") in `meta.security`;
`meta.lastUpdated` stays real. Device and ResearchStudy hold no clinical
dates and are the same for every role; Patient is too, except that users who
see shifted dates get no birth year.

What it refuses: unknown resource types, malformed search values and, for
users who see shifted dates, the `date` search parameter (`FhirQueryError`,
naming the parameter and the value). Unknown search
parameters are ignored, as FHIR servers do by default, and left out of the
bundle's self link.

Resource ids are stable: Patient and ResearchSubject = registry id, Device =
implant ref, Procedure = `<ref>-implant` / `<ref>-explant`, Observation =
`visit-<pk>-nrs|satisfaction|pgic` or `painscore-<pk>`, AdverseEvent = `ae-<pk>`.
"""

from __future__ import annotations

import calendar
import datetime
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial

from django.conf import settings
from django.db.models import Count, Q, QuerySet

from registry.models import (
    AdverseEvent,
    AeOutcome,
    ConsentStatus,
    Implant,
    PainScore,
    Patient,
    Pgic,
    Recall,
    Relatedness,
    Satisfaction,
    Sex,
    Therapy,
    Visit,
    VisitStatus,
)
from registry.models.base import today_anywhere
from registry.models.choices import AeCategory, PainSite, SeriousCriterion

from . import deid
from .access import visible
from .exports import AGE_TOP


def system_base() -> str:
    return getattr(settings, "REGISTRY_FHIR_SYSTEM", "urn:neuromodulation-registry")


def registry_id_system() -> str:
    return f"{system_base()}:registry-id"


def code_system(name: str) -> str:
    return f"{system_base()}:codes:{name}"


LOINC = "http://loinc.org"
NRS_LOINC = "72514-3"
NRS_DISPLAY = "Pain severity - 0-10 verbal numeric rating [Score] - Reported"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
AE_SERIOUSNESS = "http://terminology.hl7.org/CodeSystem/adverse-event-seriousness"
AE_SEVERITY = "http://terminology.hl7.org/CodeSystem/adverse-event-severity"
AE_OUTCOME = "http://terminology.hl7.org/CodeSystem/adverse-event-outcome"
AE_CAUSALITY = "http://terminology.hl7.org/CodeSystem/adverse-event-causality-assess"
STUDY_ID = "neuromodulation-registry"
# Security label of resources whose dates are shifted (HL7 v3 ObservationValue,
# in the SecurityIntegrityObservationValue set: "pseudonymized").
PSEUDONYMIZED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
                 "code": "PSEUDED", "display": "pseudonymized"}
DATE_SEARCH_TYPES = ("Procedure", "Observation", "AdverseEvent")
DATE_HINT = "search by patient or code and select on the (consistently shifted) dates yourself"
RESOURCE_TYPES = (
    "Patient", "ResearchStudy", "ResearchSubject", "Device", "Procedure", "Observation",
    "AdverseEvent",
)

GENDER = {Sex.MALE: "male", Sex.FEMALE: "female", Sex.OTHER: "other", Sex.UNKNOWN: "unknown"}
# FHIR R4 adverse-event-outcome is a required binding; ours maps one to one.
AE_OUTCOME_CODES = {
    AeOutcome.RESOLVED: ("resolved", "Resolved"),
    AeOutcome.RESOLVED_SEQUELAE: ("resolvedWithSequelae", "Resolved with Sequelae"),
    AeOutcome.ONGOING: ("ongoing", "Ongoing"),
    AeOutcome.FATAL: ("fatal", "Fatal"),
    AeOutcome.UNKNOWN: ("unknown", "Unknown"),
}
# WHO-UMC terms next to the registry's MDCG 2020-10/1 code where they mean the same.
WHO_UMC = {
    Relatedness.POSSIBLE: ("Possible", "Possible"),
    Relatedness.PROBABLE: ("Probably-Likely", "Probably/Likely"),
    Relatedness.CAUSAL: ("Certain", "Certain"),
}


class FhirQueryError(ValueError):
    """A search or read the server cannot answer (bad parameter value, unknown type)."""

    def __init__(self, message: str, *, code: str = "invalid", status: int = 400):
        super().__init__(message)
        self.code = code
        self.status = status


def operation_outcome(message: str, *, code: str = "invalid", severity: str = "error") -> dict:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": message}],
    }


def _instant(value: datetime.datetime) -> str:
    return value.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z")


def _meta(row, shift: int | None = None) -> dict:
    return _meta_at(row.updated_at, shift)


def _meta_at(updated: datetime.datetime, shift: int | None) -> dict:
    meta = {"lastUpdated": _instant(updated)}
    if shift is not None:
        meta["security"] = [dict(PSEUDONYMIZED)]
    return meta


def _shift_of(registry_id: str, shift: bool) -> int | None:
    """The patient's shift in days when dates are shifted, else None (real dates)."""
    return deid.date_shift_days(registry_id) if shift else None


def _day(value: datetime.date, shift: int | None) -> str:
    return (value if shift is None else deid.shifted(value, shift)).isoformat()


def _coding(system: str, code: str, display: str | None = None) -> dict:
    coding = {"system": system, "code": str(code)}
    if display:
        coding["display"] = str(display)
    return coding


def _concept(system: str, code: str, display: str | None = None, text: str | None = None) -> dict:
    concept = {"coding": [_coding(system, code, display)]}
    if text:
        concept["text"] = text
    return concept


def _patient_ref(registry_id: str) -> dict:
    return {"reference": f"Patient/{registry_id}"}


# --- resource builders -----------------------------------------------------------------


def birth_year_shown(patient: Patient, *, shift: bool = False) -> str | None:
    """The birth year as FHIR `birthDate` ("YYYY"), or None where it must not leave.

    - Ages over 89 are identifiers under HIPAA safe harbour, and so is a birth year
      that shows such an age: none for a patient who is over 89 now (age = this
      year - birth year, the exports' year arithmetic and their 90+ limit; "now"
      because the year tells the reader the patient's current age).
    - None for users who see shifted dates: the API's age at consent and the
      exports' age at implant come from real dates, so with the birth year they
      give the real consent and implant years, which narrow the secret shift.
    """
    if shift or not patient.birth_year:
        return None
    if today_anywhere().year - patient.birth_year > AGE_TOP - 1:
        return None
    return f"{patient.birth_year:04d}"


def patient_resource(patient: Patient, *, shift: bool = False) -> dict:
    resource = {
        "resourceType": "Patient",
        "id": patient.registry_id,
        "meta": _meta(patient),
        "identifier": [{"system": registry_id_system(), "value": patient.registry_id}],
        "gender": GENDER.get(patient.sex, "unknown"),
    }
    # Birth year at most: the registry never holds the birth date.
    birth_year = birth_year_shown(patient, shift=shift)
    if birth_year:
        resource["birthDate"] = birth_year
    return resource


def research_study_resource() -> dict:
    return {
        "resourceType": "ResearchStudy",
        "id": STUDY_ID,
        "title": "Neuromodulation registry for chronic neuropathic pain",
        "status": "active",
        "primaryPurposeType": _concept(
            "http://terminology.hl7.org/CodeSystem/research-study-prim-purp-type", "treatment",
            "Treatment",
        ),
    }


def research_subject_resource(patient: Patient, *, shift: bool = False) -> dict:
    days = _shift_of(patient.registry_id, shift)
    withdrawn = patient.consent_status == ConsentStatus.WITHDRAWN
    period = {"start": _day(patient.consent_date, days)}
    if patient.withdrawal_date:
        period["end"] = _day(patient.withdrawal_date, days)
    return {
        "resourceType": "ResearchSubject",
        "id": patient.registry_id,
        "meta": _meta(patient, days),
        "identifier": [{"system": registry_id_system(), "value": patient.registry_id}],
        "status": "withdrawn" if withdrawn else "on-study",
        "period": period,
        "study": {"reference": f"ResearchStudy/{STUDY_ID}"},
        "individual": _patient_ref(patient.registry_id),
    }


def device_resource(implant: Implant) -> dict:
    therapy = Therapy(implant.therapy)
    resource = {
        "resourceType": "Device",
        "id": implant.ref,
        "meta": _meta(implant),
        # No serialNumber / udiCarrier: device serials are identifiers (HIPAA).
        "status": "inactive" if implant.explant_date else "active",
        "type": _concept(code_system("therapy"), therapy.value, therapy.label,
                         text=f"{therapy.label} system"),
        "patient": _patient_ref(implant.patient.registry_id),
    }
    if implant.manufacturer:
        resource["manufacturer"] = implant.manufacturer
    if implant.model:
        resource["deviceName"] = [{"name": implant.model, "type": "model-name"}]
    properties = []
    for name, value, label in (
        ("lead-type", implant.lead_type, implant.get_lead_type_display()),
        ("paradigm", implant.paradigm, implant.get_paradigm_display()),
        ("ipg-location", implant.ipg_location, implant.get_ipg_location_display()),
    ):
        if value:
            properties.append({"type": _concept(code_system("device-property"), name),
                               "valueCode": [_concept(code_system(name), value, label)]})
    if implant.lead_count:
        properties.append({"type": _concept(code_system("device-property"), "lead-count"),
                           "valueQuantity": [{"value": implant.lead_count}]})
    if properties:
        resource["property"] = properties
    return resource


def procedure_resources(implant: Implant, *, shift: bool = False) -> list[dict]:
    """Implant and explant procedures of one implant (none before the implant date)."""
    if not implant.implant_date:
        return []
    days = _shift_of(implant.patient.registry_id, shift)
    therapy = Therapy(implant.therapy)
    device = {"reference": f"Device/{implant.ref}"}
    out = [{
        "resourceType": "Procedure",
        "id": f"{implant.ref}-implant",
        "meta": _meta(implant, days),
        "status": "completed",
        "code": _concept(code_system("procedure"), "implant", "Implantation of a neurostimulator",
                         text=f"{therapy.label} implant"),
        "subject": _patient_ref(implant.patient.registry_id),
        "performedDateTime": _day(implant.implant_date, days),
        "focalDevice": [{"action": _concept(code_system("device-action"), "implanted", "Implanted"),
                         "manipulated": device}],
    }]
    if implant.explant_date:
        explant = {
            "resourceType": "Procedure",
            "id": f"{implant.ref}-explant",
            "meta": _meta(implant, days),
            "status": "completed",
            "code": _concept(code_system("procedure"), "explant", "Explantation of a neurostimulator",
                             text=f"{therapy.label} explant"),
            "subject": _patient_ref(implant.patient.registry_id),
            "performedDateTime": _day(implant.explant_date, days),
            "focalDevice": [{"action": _concept(code_system("device-action"), "explanted",
                                                "Explanted"),
                             "manipulated": device}],
        }
        # No reasonCode: the explant reason is free text (anything a nurse typed).
        out.append(explant)
    return out


def _observation(visit: Visit, *, id_: str, code: dict, updated, value: dict,
                 shift: int | None) -> dict:
    resource = {
        "resourceType": "Observation",
        "id": id_,
        "meta": _meta_at(updated, shift),
        "extension": [{"url": f"{system_base()}:timepoint", "valueCode": visit.timepoint}],
        "status": "final",
        "category": [_concept(OBSERVATION_CATEGORY, "survey", "Survey")],
        "code": code,
        "subject": _patient_ref(visit.patient.registry_id),
        "effectiveDateTime": _day(visit.date_done, shift),
    }
    if visit.implant_id:
        resource["focus"] = [{"reference": f"Device/{visit.implant.ref}"}]
    resource.update(value)
    return resource


def _score(value: int) -> dict:
    return {"valueQuantity": {"value": value, "unit": "{score}", "system": "http://unitsofmeasure.org",
                              "code": "{score}"}}


OBSERVATION_KINDS = ("nrs", "satisfaction", "pgic")


def observation_resources(visit: Visit, kinds: Iterable[str] = OBSERVATION_KINDS + ("painscore",),
                          pain_scores: Iterable[PainScore] | None = None, *,
                          shift: bool = False) -> Iterator[dict]:
    """Observations of one completed visit: NRS, satisfaction, PGIC and further pain scores."""
    if visit.status != VisitStatus.COMPLETED or not visit.date_done:
        return
    kinds = set(kinds)
    days = _shift_of(visit.patient.registry_id, shift)
    if "nrs" in kinds and visit.nrs is not None:
        yield _observation(
            visit, id_=f"visit-{visit.pk}-nrs", updated=visit.updated_at,
            code={"coding": [_coding(LOINC, NRS_LOINC, NRS_DISPLAY),
                             _coding(code_system("pain"), "primary-now", "Primary pain")],
                  "text": "NRS pain (0-10), primary pain"},
            value=_score(visit.nrs), shift=days,
        )
    if "satisfaction" in kinds and visit.satisfaction is not None:
        label = Satisfaction(visit.satisfaction).label
        yield _observation(
            visit, id_=f"visit-{visit.pk}-satisfaction", updated=visit.updated_at,
            code=_concept(code_system("observation"), "satisfaction", "Satisfaction with treatment",
                          text="Satisfaction with treatment (5-point)"),
            value={"valueCodeableConcept": _concept(code_system("satisfaction"),
                                                    str(visit.satisfaction), label)},
            shift=days,
        )
    if "pgic" in kinds and visit.pgic is not None:
        yield _observation(
            visit, id_=f"visit-{visit.pk}-pgic", updated=visit.updated_at,
            code=_concept(code_system("observation"), "pgic",
                          "Patient Global Impression of Change", text="PGIC (7-point)"),
            value={"valueCodeableConcept": _concept(code_system("pgic"), str(visit.pgic),
                                                    Pgic(visit.pgic).label)},
            shift=days,
        )
    if "painscore" in kinds:
        scores = pain_scores if pain_scores is not None else visit.pain_scores.all()
        for score in scores:
            site_label = PainSite(score.pain_site).label
            recall_label = Recall(score.recall).label
            yield _observation(
                visit, id_=f"painscore-{score.pk}", updated=score.updated_at,
                code={"coding": [_coding(LOINC, NRS_LOINC, NRS_DISPLAY),
                                 _coding(code_system("pain"), f"{score.pain_site}-{score.recall}",
                                         f"{site_label}, {recall_label}")],
                      "text": f"NRS pain (0-10), {site_label.lower()}, {recall_label.lower()}"},
                value={**_score(score.score),
                       "bodySite": {"text": site_label}},
                shift=days,
            )


def _causality(relatedness: str) -> list[dict]:
    value = Relatedness(relatedness)
    assessment = {"coding": [_coding(code_system("relatedness-mdcg"), value.value, value.label)],
                  "text": value.label}
    if value in WHO_UMC:
        assessment["coding"].append(_coding(AE_CAUSALITY, *WHO_UMC[value]))
    return [{"assessment": assessment,
             "method": {"text": "MDCG 2020-10/1 causality categories"}}]


def adverse_event_resource(event: AdverseEvent, *, shift: bool = False) -> dict:
    days = _shift_of(event.patient.registry_id, shift)
    category = AeCategory(event.category)
    outcome_code, outcome_display = AE_OUTCOME_CODES[AeOutcome(event.outcome)]
    resource = {
        "resourceType": "AdverseEvent",
        "id": f"ae-{event.pk}",
        "meta": _meta(event, days),
        "extension": [{"url": f"{system_base()}:iso14155-class", "valueCode": event.iso_class}],
        "actuality": "actual",
        "event": _concept(code_system("ae-category"), category.value, category.label),
        "subject": _patient_ref(event.patient.registry_id),
        "date": _day(event.onset_date, days),
        "seriousness": _concept(AE_SERIOUSNESS, *(("serious", "Serious") if event.serious
                                                  else ("non-serious", "Non-serious"))),
        "severity": _concept(AE_SEVERITY, event.severity, event.get_severity_display()),
        "outcome": _concept(AE_OUTCOME, outcome_code, outcome_display),
        "study": [{"reference": f"ResearchStudy/{STUDY_ID}"}],
    }
    if event.serious_criterion:
        resource["seriousness"]["coding"].append(_coding(
            code_system("serious-criterion"), event.serious_criterion,
            SeriousCriterion(event.serious_criterion).label))
    if event.implant_id:
        suspects = [{"instance": {"reference": f"Device/{event.implant.ref}"},
                     "causality": _causality(event.device_relatedness)}]
        if event.implant.implant_date:
            suspects.append({"instance": {"reference": f"Procedure/{event.implant.ref}-implant"},
                             "causality": _causality(event.procedure_relatedness)})
        resource["suspectEntity"] = suspects
    return resource


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
    kinds: tuple[str, ...] = OBSERVATION_KINDS + ("painscore",)
    ids: set[str] | None = None
    shift: bool = False  # clinical dates shifted per patient (services.deid)

    @property
    def dates(self) -> str:
        """The export log's dates mode: real dates (iso) or shifted ones."""
        return "shifted" if self.shift else "iso"

    def resources(self) -> Iterator[dict]:
        for resource in _build(self.resource_type, self.rows, self.kinds, self.shift):
            if self.ids is None or resource["id"] in self.ids:
                yield resource

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
            found = self.rows.aggregate(**{kind: Count("pk", filter=Q(**{f"{kind}__isnull": False}))
                                           for kind in OBSERVATION_KINDS if kind in self.kinds})
            total = sum(found.values())
            if "painscore" in self.kinds:
                total += PainScore.objects.filter(visit__in=self.rows.values("pk")).count()
            return total
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


OBSERVATION_ID_RE = re.compile(r"^visit-(\d+)-(nrs|satisfaction|pgic)$|^painscore-(\d+)$", re.ASCII)


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
    return search


def _search(user, resource_type: str, params: dict[str, list[str]]) -> Search:
    ids = _values(params, "_id")
    if resource_type == "ResearchStudy":
        search = Search(resource_type, None)
        if ids:
            search.used["_id"] = params["_id"]
            search.ids = set(ids)
        return search
    if resource_type in ("Patient", "ResearchSubject"):
        rows = visible(Patient.objects.all(), user).order_by("registry_id")
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
        rows = (visible(Visit.objects.select_related("patient", "implant"), user)
                .filter(status=VisitStatus.COMPLETED, date_done__isnull=False)
                .order_by("patient__registry_id", "date_done", "pk"))
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
            search.kinds = tuple(sorted(kinds))
            search.used["code"] = params["code"]
        updated_path = "updated_at"
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
    return search


def _build(resource_type: str, rows: QuerySet | None, kinds, shift: bool) -> Iterator[dict]:
    if resource_type == "ResearchStudy":
        yield research_study_resource()
        return
    if resource_type == "Observation":
        # Pain scores are fetched per chunk with the visits (no N+1), kept in visit order.
        for visit in rows.prefetch_related("pain_scores").iterator(chunk_size=2000):
            yield from observation_resources(visit, kinds, visit.pain_scores.all(), shift=shift)
        return
    builders = {
        # Device holds no clinical dates; Patient has a birth year only, and not for all.
        "Patient": partial(patient_resource, shift=shift),
        "ResearchSubject": partial(research_subject_resource, shift=shift),
        "Device": device_resource,
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


EXPORT_TYPES = ("Patient", "ResearchSubject", "Device", "Procedure", "Observation", "AdverseEvent")

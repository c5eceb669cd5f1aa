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
- PROMs (`proms`): Questionnaire per instrument (item codes, short labels, ranges; no
  licensed wording), QuestionnaireResponse per visit and instrument, and an Observation per
  computable score (`visit-<pk>-<score>`, e.g. `visit-7-odi-score`) with the algorithm and
  the EQ-5D-5L value set (of the country of the user's sites, as the exports) in `method`.
- Every query goes through `services.access.visible`, so a token sees the
  same patients as its user does in every other channel.
- Resources are plain dicts in FHIR R4 JSON shape; `tests/interop` validates
  them with the `fhir.resources` R4B models (R4B is the R4-compatible package
  of fhir.resources >= 7; the resources used here did not change from R4 4.0.1).

Dates (services.deid): users who do not see real dates (investigators) get
every clinical date of a patient (ResearchSubject period, Procedure
performedDateTime, Observation effectiveDateTime, AdverseEvent date) shifted
back by the patient's shift, and those resources carry the security label
PSEUDED (HL7 v3 ObservationValue, "pseudonymized") in `meta.security`, and
no `meta.lastUpdated` (a real record time beside a shifted date gives the shift
away; services.deid.record_time). `_lastUpdated` and `_since` still select on
the real clock. Device and ResearchStudy hold no clinical dates; Device and
Patient carry the same label and no `lastUpdated` for those users, and Patient
no birth year.

What it refuses: unknown resource types, malformed search values and, for
users who see shifted dates, the `date` search parameter (`FhirQueryError`,
naming the parameter and the value). Unknown search
parameters are ignored, as FHIR servers do by default, and left out of the
bundle's self link.

Resource ids are stable: Patient and ResearchSubject = registry id, Device =
implant ref, Procedure = `<ref>-implant` / `<ref>-explant`, Observation =
`visit-<pk>-nrs|satisfaction|pgic` or `painscore-<pk>`, AdverseEvent = `ae-<pk>`.

Modules: `resources` (the resource builders and their codings) and `search`
(search, read, bulk-export types); every public name is here.
"""

from .resources import (
    AE_CAUSALITY,
    AE_OUTCOME,
    AE_OUTCOME_CODES,
    AE_SERIOUSNESS,
    AE_SEVERITY,
    GENDER,
    LOINC,
    NRS_DISPLAY,
    NRS_LOINC,
    OBSERVATION_CATEGORY,
    OBSERVATION_KINDS,
    PSEUDONYMIZED,
    STUDY_ID,
    WHO_UMC,
    _instant,  # noqa: F401 (the interop views stamp their instants the same way)
    adverse_event_resource,
    birth_year_shown,
    code_system,
    device_resource,
    observation_resources,
    operation_outcome,
    patient_resource,
    procedure_resources,
    registry_id_system,
    research_study_resource,
    research_subject_resource,
    system_base,
)
from .search import (
    DATE_HINT,
    DATE_RE,
    DATE_SEARCH_TYPES,
    EXPORT_TYPES,
    INSTANT_RE,
    MAX_PK,
    OBSERVATION_ID_RE,
    RESOURCE_TYPES,
    FhirQueryError,
    Search,
    fhir_read,
    fhir_search,
    fhir_since_params,
)

__all__ = [
    "AE_CAUSALITY", "AE_OUTCOME", "AE_OUTCOME_CODES", "AE_SERIOUSNESS", "AE_SEVERITY", "DATE_HINT",
    "DATE_RE", "DATE_SEARCH_TYPES", "EXPORT_TYPES", "FhirQueryError", "GENDER", "INSTANT_RE",
    "LOINC", "MAX_PK", "NRS_DISPLAY", "NRS_LOINC", "OBSERVATION_CATEGORY", "OBSERVATION_ID_RE",
    "OBSERVATION_KINDS", "PSEUDONYMIZED", "RESOURCE_TYPES", "STUDY_ID", "Search", "WHO_UMC",
    "adverse_event_resource", "birth_year_shown", "code_system", "device_resource", "fhir_read",
    "fhir_search", "fhir_since_params", "observation_resources", "operation_outcome",
    "patient_resource", "procedure_resources", "registry_id_system", "research_study_resource",
    "research_subject_resource", "system_base",
]

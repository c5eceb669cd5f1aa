"""De-identification, declared once: which field of which model is what, and who sees it.

`MODELS` is the one declaration, read by every channel: the admin (registry/admin/
dates.py shifts what it lists), the REST serializers (dates shifted from it, free text
and identifiers never serialized), FHIR (every date it writes goes through `shown`),
the exports and REDCap (their dataset columns may read only fields released here:
tests/services/test_deid_map.py walks their SQL). Per model it names:

- `patient`: how a row reaches its patient's registry id (the key of the shift);
- `dates`: clinical calendar dates, shifted for investigators (below);
- `free_text`: narrative typed by a person: never leaves through the API, exports,
  REDCap or FHIR;
- `released_text`: short typed descriptions without a code list that do leave as typed
  (amputation level, device make and model) and structural keys;
- `birth_year`: never shown beside an age; `identifiers`: the whole model holds direct
  identifiers (own site only, never exported).
Free text and the birth year are also hidden from investigators in the admin (not shown
read-only: left out of forms, lists, inlines and the hub), through `hidden_fields`.
`OPERATIONS` lists the registry's own bookkeeping models, which investigators are not
shown at all. A model or a DateField/text field missing from both fails
tests/services/test_deid_map.py, so a new one cannot leak by being forgotten.

The date rule (REDCap's own de-identification option, "shift all dates by a value
between 0 and 364 days"):

- Data managers and research nurses see real dates (a nurse only ever sees her
  own sites, where she also sees identifiers).
- Everyone else (investigators) sees every clinical calendar date of a patient
  moved back by that patient's shift: 0-364 days, derived from the registry id
  with an HMAC keyed by SECRET_KEY. The same patient shifts by the same amount
  in every channel and every request, so intervals within a patient (days
  from implant, follow-up length, onset after implant) stay exact, while the
  amount itself cannot be computed without the key.
- Filters on clinical dates are refused for them: bisecting a range filter
  would reveal the real date behind a shifted one.

Record times (`RECORD_TIMES`: when a row was entered or last changed) are real clock
times, and a nurse enters most rows on the day they happen: a real `updated_at` beside
a shifted `date_done` gives away the shift. Users who do not see real dates get none
(`record_time`): no `updated_at` in the REST resources, no `meta.lastUpdated` in FHIR.
They are dropped rather than shifted: an incremental pull tells its client that a row
changed between two pulls, so a shifted change time would give the shift away too.
Incremental pulls still work: `updated_since` (REST), `_since`/`_lastUpdated` (FHIR) and
`dateRangeBegin/End` (REDCap) are judged on the server's real clock, and the value
sent is never echoed back. Sites are not patient data: their `updated_at` stays real.

Ordering by a clinical date or a record time across patients would rank the real dates
behind the shifted ones: refused for investigators (`is_date_ordering`), like filters.
"""

import datetime
import functools
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import FieldDoesNotExist

from registry.models import (
    AdverseEvent,
    ApiToken,
    ContactAttempt,
    DataQuery,
    DeviceComponent,
    DeviceDeficiency,
    DeviceIdentifier,
    Disposition,
    EproLink,
    ExportLog,
    FollowUpProtocol,
    Implant,
    ImportRun,
    PainScore,
    Patient,
    PatientIdentifiers,
    ProgrammingSession,
    PromAnswer,
    PromSchedule,
    PromSheet,
    ProtocolTimepoint,
    QueryMessage,
    RegistryRole,
    ReminderLog,
    Revision,
    RevisionComponent,
    Role,
    SafetyFollowUp,
    Site,
    Visit,
)
from registry.models.instruments import INSTRUMENTS
from registry.models.proms import sheet_updated

from .access import role_name

SHIFT_RANGE = 365  # shifts are 0..364 days
# Fixed label: the key also signs sessions and tokens; this keeps the shift's
# HMAC input apart from anything else computed with SECRET_KEY.
_SHIFT_LABEL = b"neuromodulation-registry:date-shift:v1:"
SHIFTED_NOTE = ("Investigators see this date shifted back by 0-364 days, the same amount for every "
                "date of the patient (intervals are exact); nurses and data managers see it as recorded.")

RECORD_TIME_NOTE = ("When the record was last changed (server clock, UTC); null for investigators, "
                    "who do not see real times. Pull changes with updated_since (judged on the real "
                    "clock) instead.")


@dataclass(frozen=True)
class Rule:
    """What the fields of one patient-data model are (see the module docstring)."""

    patient: str
    dates: tuple[str, ...] = ()
    free_text: tuple[str, ...] = ()
    released_text: tuple[str, ...] = ()
    birth_year: tuple[str, ...] = ()
    identifiers: bool = False
    # Date-times that are record times by another name (never shown to investigators).
    record_times: tuple[str, ...] = ()


RECORD_TIMES = ("created_at", "updated_at")  # every ClinicalModel's; not clinical dates

MODELS: dict[type, Rule] = {
    Patient: Rule("registry_id", dates=("consent_date", "withdrawal_date", "epro_consent_date"),
                  free_text=("affected_region", "amputation_cause"),
                  released_text=("registry_id", "amputation_level"), birth_year=("birth_year",)),
    PatientIdentifiers: Rule("patient.registry_id", identifiers=True),
    Implant: Rule("patient.registry_id",
                  dates=("trial_start", "trial_end", "implant_date", "explant_date"),
                  free_text=("trial_criterion", "explant_reason", "target"),
                  released_text=("ref", "manufacturer", "model")),
    Revision: Rule("implant.patient.registry_id", dates=("date",), free_text=("reason", "description")),
    DeviceIdentifier: Rule("implant.patient.registry_id", identifiers=True),
    Visit: Rule("patient.registry_id", dates=("target_date", "window_start", "window_end", "date_done"),
                free_text=("notes",), released_text=("timepoint",)),
    PainScore: Rule("visit.patient.registry_id"),
    AdverseEvent: Rule("patient.registry_id",
                       dates=("onset_date", "resolved_on", "awareness_date", "reported_on"),
                       free_text=("description",),
                       released_text=("imdrf_device_problem", "imdrf_clinical_signs",
                                      "imdrf_health_impact")),
    Disposition: Rule("patient.registry_id", dates=("date",), free_text=("note",)),
    ContactAttempt: Rule("patient.registry_id", dates=("date",), free_text=("note",)),
    DeviceComponent: Rule("implant.patient.registry_id", dates=("implanted_on", "removed_on"),
                          free_text=("removal_detail",),
                          released_text=("manufacturer", "model", "udi_di")),
    RevisionComponent: Rule("revision.implant.patient.registry_id"),
    ProgrammingSession: Rule("implant.patient.registry_id", dates=("date",),
                             free_text=("contacts", "note")),
    DeviceDeficiency: Rule("patient.registry_id", dates=("observed_on", "awareness_date", "reported_on"),
                           free_text=("description",), released_text=("imdrf_device_problem",)),
    SafetyFollowUp: Rule("adverse_event.patient.registry_id", dates=("report_date", "resolved_on"),
                         free_text=("note",)),
    # Item answers: coded values; instrument version and item code are structural keys.
    PromAnswer: Rule("visit.patient.registry_id", released_text=("instrument_version", "item")),
    # The answers' derived sheet: coded values and scores; its times are the answers' record times.
    PromSheet: Rule("visit.patient.registry_id",
                    record_times=tuple(sheet_updated(code) for code in INSTRUMENTS)),
}

# Not patient data (sites, the protocol), or bookkeeping investigators are never shown
# (reminder, export and import logs, tokens, roles).
NOT_PATIENT_DATA = (Site, FollowUpProtocol, ProtocolTimepoint, PromSchedule)
OPERATIONS = (ReminderLog, ExportLog, ImportRun, ApiToken, RegistryRole, EproLink)
# Data queries and their threads: between the site and the data managers; investigators never
# see them (services.queries.queries_for), so nothing of them is released or shifted.
OPERATIONS += (DataQuery, QueryMessage)


def record_time(obj, field_name: str, real: bool) -> datetime.datetime | None:
    """A record time of `obj` (`RECORD_TIMES`) as a user sees it: as stored for users who
    see real dates (`real`), else None: dropped, never shifted (see the module docstring)."""
    if field_name not in RECORD_TIMES:
        raise ValueError(f"{field_name} is not a record time (deid.RECORD_TIMES)")
    return getattr(obj, field_name) if real else None


def hidden_fields(model, user) -> tuple[str, ...]:
    """Fields of `model` that `user` must not see anywhere, the admin included: for users
    who do not see real dates, the withheld fields (free text, identifiers) and the birth
    year (they get ages); nothing for nurses and data managers."""
    if sees_real_dates(user):
        return ()
    found = MODELS.get(model)
    return (*withheld(model), *found.birth_year) if found else ()


def is_date_ordering(model, lookup: str) -> bool:
    """Does the ordering `lookup` ("-date_done", "patient__consent_date", "updated_at")
    sort on a clinical date or a record time of `model` or of a model it leads to?"""
    for part in lookup.lstrip("-").split("__"):
        if part in clinical_dates(model) or part in RECORD_TIMES:
            return True
        try:
            field = model._meta.get_field(part)
        except FieldDoesNotExist:  # an annotation, "pk", "?"
            return False
        if not field.is_relation or field.related_model is None:
            return False
        model = field.related_model
    return False


def min_cell(user) -> int:
    """The smallest group of patients whose outcome figures `user` may see: 1 (all) for
    users who see real dates, `REGISTRY_MIN_CELL` for the others, so that a cohort of
    one or two patients (a site, a therapy, a diagnosis) does not describe a person."""
    return 1 if sees_real_dates(user) else settings.REGISTRY_MIN_CELL


def refused_outcome_filters(user, sent: dict) -> dict[str, str]:
    """The date-derived outcome filters (`OUTCOME_DATE_FILTERS`) among `sent` (parameter:
    value, empty values left out) that `user` may not use, each with its message: a filter
    on the real implant year narrows the shift like a date filter does."""
    if sees_real_dates(user):
        return {}
    return {param: date_filter_refusal(param, "filter on therapy, etiology, diagnosis or site instead")
            for param in OUTCOME_DATE_FILTERS if sent.get(param) not in (None, "")}


OUTCOME_DATE_FILTERS = ("implant_year_from", "implant_year_to")


def rule(model) -> Rule | None:
    return MODELS.get(model)


def clinical_dates(model) -> tuple[str, ...]:
    """The clinical calendar dates of `model` (shifted for investigators)."""
    found = MODELS.get(model)
    return found.dates if found else ()


def withheld(model) -> tuple[str, ...]:
    """Fields of `model` that never leave through the API, exports, REDCap or FHIR."""
    found = MODELS.get(model)
    if found is None:
        return ()
    if found.identifiers:
        return tuple(f.name for f in model._meta.concrete_fields)
    return found.free_text


def released(model, field_name: str) -> bool:
    """May `field_name` of `model` leave through the API and the analysis datasets?"""
    found = MODELS.get(model)
    if found is None:
        return model in NOT_PATIENT_DATA
    return not found.identifiers and field_name not in found.free_text


def registry_id_of(obj) -> str:
    """The registry id a row's dates are shifted by (follows the model's `patient` path)."""
    value = obj
    for part in MODELS[type(obj)].patient.split("."):
        value = getattr(value, part)
    return value


def sees_real_dates(user) -> bool:
    """Data managers and nurses see real dates; investigators and anyone else do not."""
    return role_name(user) in (Role.DATA_MANAGER, Role.NURSE)


def date_shift_days(registry_id: str) -> int:
    """The patient's shift in days (0..364): deterministic, secret without SECRET_KEY."""
    return _shift(settings.SECRET_KEY, registry_id)


@functools.lru_cache(maxsize=65536)
def _shift(key: str, registry_id: str) -> int:
    # Cached per key too, so a changed SECRET_KEY (tests, key rotation) gives new shifts.
    digest = hmac.new(key.encode(), _SHIFT_LABEL + registry_id.encode(), hashlib.sha256).digest()
    return int.from_bytes(digest, "big") % SHIFT_RANGE


def shifted(value: datetime.date | None, days: int) -> datetime.date | None:
    """`value` moved back by `days` (None stays None)."""
    return None if value is None else value - datetime.timedelta(days=days)


def shown(obj, field_name: str, days: int | None) -> datetime.date | None:
    """A declared clinical date of `obj` as a user sees it: real when `days` is None, else
    moved back by `days` (the patient's shift). Refuses a field that is not declared in
    `MODELS`, so no channel can write out a date the declaration does not know."""
    if field_name not in clinical_dates(type(obj)):
        raise ValueError(f"{type(obj).__name__}.{field_name} is not a declared clinical date (deid.MODELS)")
    value = getattr(obj, field_name)
    return value if days is None else shifted(value, days)


API_HINT = "filter on timepoint (or on days_from_implant in the export) instead"


def date_filter_refusal(param: str, hint: str = API_HINT) -> str:
    """Why a clinical-date filter is refused, and what to do instead."""
    return (f"'{param}': date filters need real dates, which investigators do not see (dates are "
            f"shifted per patient); {hint}, or ask a data manager.")


def refused_date_filters(user, sent: Iterable[str], date_params: Iterable[str], *,
                         hint: str = API_HINT) -> dict[str, list[str]]:
    """The clinical-date parameters among `sent` that `user` may not use, each with its message.

    `sent`: the query parameters of the request (empty values left out);
    `date_params`: the parameters that filter on a clinical calendar date.
    """
    if sees_real_dates(user):
        return {}
    wanted = set(date_params)
    return {param: [date_filter_refusal(param, hint)] for param in sent if param in wanted}


def undeclared(model_list) -> list[str]:
    """What the declaration misses for `model_list`: models in none of MODELS,
    NOT_PATIENT_DATA and OPERATIONS; date and text fields of a patient-data model that
    `MODELS` does not name; names it declares that the model does not have. Run as a
    system check (registry/checks.py), so `manage.py check` and every test run fail on it."""
    from django.db import models as m

    problems = []
    for model in model_list:
        if model.__name__.startswith("Historical"):
            continue  # django-simple-history's shadow tables follow their model
        found = MODELS.get(model)
        if found is None:
            if model not in NOT_PATIENT_DATA and model not in OPERATIONS:
                problems.append(f"{model.__name__}: not declared in services.deid (MODELS, "
                                f"NOT_PATIENT_DATA or OPERATIONS)")
            continue
        names = {f.name for f in model._meta.concrete_fields}
        declared = {*found.dates, *found.free_text, *found.released_text, *found.birth_year}
        problems += [f"{model.__name__}.{name}: declared in services.deid but not a field"
                     for name in sorted(declared - names)]
        if found.identifiers:
            continue
        for f in model._meta.concrete_fields:
            if isinstance(f, m.DateTimeField):
                if f.name not in (*RECORD_TIMES, *found.record_times) and f.name not in found.dates:
                    problems.append(f"{model.__name__}.{f.name}: a date-time not declared in services.deid")
            elif isinstance(f, m.DateField):
                if f.name not in found.dates:
                    problems.append(f"{model.__name__}.{f.name}: a date not declared in services.deid "
                                    f"(a clinical date to shift?)")
            elif isinstance(f, (m.CharField, m.TextField)) and not f.choices:
                if f.name not in found.free_text and f.name not in found.released_text:
                    problems.append(f"{model.__name__}.{f.name}: text without a code list, not declared "
                                    f"in services.deid as free text or released text")
    return problems

"""The registry seen as a longitudinal REDCap project (read-only).

So that REDCap clients (PyCap, REDCapR) read the registry unchanged, this
module describes the registry as a REDCap project and streams its records in
REDCap's shapes. Data comes from the registry's own analysis dataset
(`services.exports.visit_rows` / `event_rows`), so REDCap and the registry's
export agree row for row and are de-identified the same way (dates as days
from the implant, ages over 89 as "90+", no free text, no identifiers).

The project:
- One arm. Events = timepoints: `baseline_arm_1`, `trial_end_arm_1`,
  `m<N>_arm_1` for every protocol timepoint and every timepoint found in the
  data, `unscheduled_arm_1`, and `adverse_events_arm_1`.
- Instruments: `enrolment` (patient, baseline event only), `visit` (every
  timepoint event), `adverse_event` (a repeating instrument in
  `adverse_events_arm_1`). All events after baseline are repeating events, so
  a patient's second implant episode (a second `m3`) or several unscheduled
  visits get `redcap_repeat_instance` 2, 3, ...
- record_id = the registry id. `<form>_complete` is 2 (Complete) for enrolment,
  completed visits and closed adverse events, otherwise 0 (Incomplete).
- Coded values use REDCap-style numeric raw codes: `REDCAP_CODES` lists, per
  choice list, the registry codes in raw order (raw value = position + 1).
  The lists only ever grow at the end, so a raw value never changes meaning;
  the mapping is also in each field's `field_annotation`.

Refuses (RedcapRequestError, with REDCap's wording where REDCap has one):
unknown fields, forms or events, malformed dateRange values.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import Exists, Min, OuterRef, Q, Subquery
from django.utils import timezone

from registry.models import (
    AdverseEvent,
    AeAction,
    AeCategory,
    AeOutcome,
    Diagnosis,
    Etiology,
    FollowUpProtocol,
    Implant,
    Iso14155Class,
    PainScore,
    Patient,
    Pgic,
    ProtocolTimepoint,
    Relatedness,
    Satisfaction,
    SeriousCriterion,
    Severity,
    Sex,
    StimulationUse,
    Therapy,
    Visit,
    VisitStatus,
)
from registry.models.events import CLOSED_OUTCOMES
from registry.models.visits import BASELINE, TRIAL_END, UNSCHEDULED, timepoint_label, timepoint_sort_key

from . import exports
from .access import visible

REDCAP_VERSION = "14.0.0"  # the API level imitated (PyCap / REDCapR feature checks)
ARM = 1
AE_EVENT = "adverse_events"
COMPLETE, INCOMPLETE = "2", "0"
BATCH = 2000  # patients per round of queries in a record export

# Raw REDCap value = position + 1. Append only; never reorder or remove.
REDCAP_CODES: dict[str, tuple[str, ...]] = {
    "sex": ("M", "F", "X", "U"),
    "etiology": ("traumatic", "iatrogenic", "postamputation", "other"),
    "diagnosis": ("pn", "rlp", "plp", "rlp_plp", "other"),
    "therapy": ("SCS", "DRG", "PNS", "CES"),
    "visit_status": ("scheduled", "completed", "missed", "not_applicable"),
    "stimulation_use": ("daily", "intermittent", "stopped"),
    "ae_category": ("infection_superficial", "infection_deep", "lead_migration", "lead_fracture",
                    "hardware_malfunction", "ipg_pocket_pain", "csf_leak", "neurological_deficit",
                    "seroma_haematoma", "loss_of_efficacy", "other"),
    "serious_criterion": ("death", "life_threatening", "permanent_impairment", "hospitalisation",
                          "intervention", "foetal"),
    "severity": ("mild", "moderate", "severe"),
    "relatedness": ("not_related", "possible", "probable", "causal"),
    "iso_class": ("AE", "SAE", "ADE", "SADE", "USADE"),
    "ae_action": ("none", "medication", "antibiotics", "reprogramming", "revision", "explant"),
    "ae_outcome": ("resolved", "resolved_sequelae", "ongoing", "fatal", "unknown"),
}
CODE_LABELS = {
    "sex": Sex, "etiology": Etiology, "diagnosis": Diagnosis, "therapy": Therapy,
    "visit_status": VisitStatus, "stimulation_use": StimulationUse, "ae_category": AeCategory,
    "serious_criterion": SeriousCriterion, "severity": Severity, "relatedness": Relatedness,
    "iso_class": Iso14155Class, "ae_action": AeAction, "ae_outcome": AeOutcome,
}
SCALES = {"satisfaction": Satisfaction, "pgic": Pgic}

METADATA_COLUMNS = (
    "field_name", "form_name", "section_header", "field_type", "field_label",
    "select_choices_or_calculations", "field_note", "text_validation_type_or_show_slider_number",
    "text_validation_min", "text_validation_max", "identifier", "branching_logic",
    "required_field", "custom_alignment", "question_number", "matrix_group_name",
    "matrix_ranking", "field_annotation",
)
FORMS = (("enrolment", "Enrolment"), ("visit", "Visit"), ("adverse_event", "Adverse event"))


class RedcapRequestError(ValueError):
    """A request REDCap would refuse; the message is what the client sees."""


@dataclass(frozen=True)
class Field:
    """One REDCap field and where its value comes from in the registry row.

    kind: text | int | number | age | code (numeric raw codes from REDCAP_CODES[codes])
    | scale (satisfaction/PGIC: the registry's integer is the raw value) | yesno.
    """

    name: str
    form: str
    label: str
    kind: str = "text"
    source: str = ""  # key in the registry row; default = name
    codes: str = ""
    note: str = ""
    minimum: str = ""
    maximum: str = ""
    annotation: str = ""
    section: str = ""

    @property
    def column(self) -> str:
        return self.source or self.name

    def choices(self) -> list[tuple[str, str]]:
        if self.kind == "code":
            labels = CODE_LABELS[self.codes]
            return [(str(i), str(labels(code).label)) for i, code in enumerate(REDCAP_CODES[self.codes], 1)]
        if self.kind == "scale":
            return [(str(value), str(label)) for value, label in SCALES[self.name].choices]
        if self.kind == "yesno":
            return [("1", "Yes"), ("0", "No")]
        return []

    def metadata(self) -> dict:
        field_type = {"code": "dropdown", "scale": "radio", "yesno": "yesno"}.get(self.kind, "text")
        if self.kind == "code" and len(REDCAP_CODES[self.codes]) <= 5:
            field_type = "radio"
        validation = {"int": "integer", "number": "number"}.get(self.kind, "")
        annotation = self.annotation
        if self.kind == "code":
            mapping = " | ".join(f"{i}={code}" for i, code in enumerate(REDCAP_CODES[self.codes], 1))
            annotation = (annotation + " " if annotation else "") + f"Registry codes: {mapping}"
        choices = self.choices() if self.kind in ("code", "scale") else []
        return {
            "field_name": self.name,
            "form_name": self.form,
            "section_header": self.section,
            "field_type": field_type,
            "field_label": self.label,
            "select_choices_or_calculations": " | ".join(f"{raw}, {label}" for raw, label in choices),
            "field_note": self.note,
            "text_validation_type_or_show_slider_number": validation,
            "text_validation_min": self.minimum,
            "text_validation_max": self.maximum,
            "identifier": "",
            "branching_logic": "",
            "required_field": "y" if self.name == "record_id" else "",
            "custom_alignment": "",
            "question_number": "",
            "matrix_group_name": "",
            "matrix_ranking": "",
            "field_annotation": annotation,
        }

    def raw(self, value) -> str:
        """The registry value as REDCap's raw text ('' when missing)."""
        if value is None or value == "":
            return ""
        if self.kind == "code":
            return str(REDCAP_CODES[self.codes].index(value) + 1)
        if self.kind == "yesno":
            return "1" if value else "0"
        if self.kind == "number":
            number = float(value)
            return str(int(number)) if number.is_integer() else repr(number)
        return str(value)

    def label_of(self, value) -> str:
        """The registry value as REDCap's label text (rawOrLabel=label)."""
        raw = self.raw(value)
        if raw and self.kind in ("code", "scale", "yesno"):
            return dict(self.choices()).get(raw, raw)
        return raw


FIELDS: tuple[Field, ...] = (
    Field("record_id", "enrolment", "Registry id (pseudonym)", source="registry_id"),
    Field("site", "enrolment", "Site code"),
    Field("sex", "enrolment", "Sex", "code", codes="sex"),
    Field("age_at_implant", "enrolment", "Age at implant (years)", "age",
          note="Ages over 89 are exported as 90+ (HIPAA safe harbour)."),
    Field("etiology", "enrolment", "Etiology", "code", codes="etiology"),
    Field("diagnosis", "enrolment", "Pain diagnosis", "code", codes="diagnosis"),
    Field("implant_ref", "visit", "Implant ref",
          note="The implant this visit follows (baseline: the first implant)."),
    Field("therapy", "visit", "Therapy", "code", codes="therapy"),
    Field("timepoint", "visit", "Timepoint", note="baseline, trial_end, unscheduled or m<N> months"),
    Field("status", "visit", "Visit status", "code", codes="visit_status"),
    Field("days_from_implant", "visit", "Visit day relative to the implant (days)", "int"),
    Field("nrs", "visit", "NRS pain 0-10", "int", minimum="0", maximum="10",
          note="0 = no pain, 10 = worst imaginable", section="Pain"),
    Field("nrs_baseline", "visit", "Baseline NRS pain 0-10", "int", minimum="0", maximum="10",
          annotation="@READONLY"),
    Field("nrs_reduction_pct", "visit", "NRS reduction from baseline (%)", "number",
          annotation="@READONLY"),
    Field("responder", "visit", f"Responder (NRS reduction >= {exports.RESPONDER_THRESHOLD_PCT} %)",
          "yesno", annotation="@READONLY"),
    Field("satisfaction", "visit", "Satisfaction (1-5)", "scale", section="Outcome"),
    Field("pgic", "visit", "PGIC (1-7)", "scale"),
    Field("would_choose_again", "visit", "Would choose the treatment again", "yesno"),
    Field("opioid_mme", "visit", "Opioid use (MME/day)", "number", minimum="0"),
    Field("stimulation_use", "visit", "Stimulation use", "code", codes="stimulation_use"),
    Field("nrs_residual_limb", "visit", "Residual limb pain NRS, 7-day average", "int",
          minimum="0", maximum="10"),
    Field("nrs_phantom_limb", "visit", "Phantom limb pain NRS, 7-day average", "int",
          minimum="0", maximum="10"),
    Field("ae_implant_ref", "adverse_event", "Implant ref", source="implant_ref"),
    Field("ae_therapy", "adverse_event", "Therapy", "code", source="therapy", codes="therapy"),
    Field("ae_days_from_implant", "adverse_event", "Onset day relative to the implant (days)", "int",
          source="days_from_implant"),
    Field("ae_category", "adverse_event", "Event category", "code", source="category",
          codes="ae_category"),
    Field("ae_serious", "adverse_event", "Serious (ISO 14155)", "yesno", source="serious"),
    Field("ae_serious_criterion", "adverse_event", "Seriousness criterion", "code",
          source="serious_criterion", codes="serious_criterion"),
    Field("ae_severity", "adverse_event", "Severity", "code", source="severity", codes="severity"),
    Field("ae_device_relatedness", "adverse_event", "Relatedness to the device", "code",
          source="device_relatedness", codes="relatedness", note="MDCG 2020-10/1"),
    Field("ae_procedure_relatedness", "adverse_event", "Relatedness to the procedure", "code",
          source="procedure_relatedness", codes="relatedness", note="MDCG 2020-10/1"),
    Field("ae_anticipated", "adverse_event", "Anticipated", "yesno", source="anticipated"),
    Field("ae_iso_class", "adverse_event", "ISO 14155 class", "code", source="iso_class",
          codes="iso_class", annotation="@READONLY"),
    Field("ae_action", "adverse_event", "Action taken", "code", source="action", codes="ae_action"),
    Field("ae_outcome", "adverse_event", "Outcome", "code", source="outcome", codes="ae_outcome"),
    Field("ae_days_to_resolution", "adverse_event", "Days from onset to resolution", "int",
          source="days_to_resolution"),
)
FIELD_BY_NAME = {f.name: f for f in FIELDS}
FORM_NAMES = tuple(name for name, _ in FORMS)
FORM_LABELS = dict(FORMS)


def redcap_metadata(*, fields: list[str] | None = None, forms: list[str] | None = None) -> list[dict]:
    """The data dictionary in REDCap's 18 columns, optionally narrowed."""
    _check_names(fields=fields, forms=forms)
    out = []
    for f in FIELDS:
        if (fields or forms) and not ((fields and f.name in fields) or (forms and f.form in forms)):
            continue
        out.append(f.metadata())
    return out


def redcap_export_field_names(*, field_name: str | None = None) -> list[dict]:
    """Export names = field names (no checkbox fields); form status fields are not listed."""
    if field_name:
        _check_names(fields=[field_name])
    return [{"original_field_name": f.name, "choice_value": "", "export_field_name": f.name}
            for f in FIELDS if not field_name or f.name == field_name]


def redcap_instruments() -> list[dict]:
    return [{"instrument_name": name, "instrument_label": label} for name, label in FORMS]


def redcap_arms() -> list[dict]:
    return [{"arm_num": ARM, "name": "Arm 1"}]


def redcap_project() -> dict:
    created = "2024-01-01 00:00:00"
    return {
        "project_id": 1, "project_title": getattr(settings, "REGISTRY_TITLE",
                                                    "Neuromodulation pain registry"),
        "creation_time": created, "production_time": created, "in_production": 1,
        "project_language": "English", "purpose": 2, "purpose_other": "",
        "project_notes": "Read-only REDCap view of the registry (de-identified analysis dataset).",
        "custom_record_label": "", "secondary_unique_field": "", "is_longitudinal": 1,
        "has_repeating_instruments_or_events": 1, "surveys_enabled": 0,
        "scheduling_enabled": 0, "record_autonumbering_enabled": 0, "randomization_enabled": 0,
        "ddp_enabled": 0, "project_irb_number": "", "project_grant_number": "",
        "project_pi_firstname": "", "project_pi_lastname": "", "display_today_now_button": 1,
        "missing_data_codes": "", "external_modules": "", "bypass_branching_erase_field_prompt": 0,
    }


# --- events ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    code: str  # registry timepoint code, or "adverse_events"
    label: str
    days_offset: int = 0
    offset_min: int = 0
    offset_max: int = 0

    @property
    def unique_name(self) -> str:
        return f"{self.code}_arm_{ARM}"

    @property
    def forms(self) -> tuple[str, ...]:
        if self.code == AE_EVENT:
            return ("adverse_event",)
        if self.code == BASELINE:
            return ("enrolment", "visit")
        return ("visit",)

    @property
    def repeating(self) -> bool:
        return self.code not in (BASELINE, AE_EVENT)


def redcap_event_list() -> list[Event]:
    """Events in REDCap order: protocol timepoints and every timepoint in the data.

    The same for every user (the timepoint codes are not patient data), so all
    sites see one data dictionary.
    """
    windows: dict[int, tuple[int, int]] = {}
    default = FollowUpProtocol.objects.filter(is_default=True).values_list("pk", flat=True).first()
    for months, before, after, protocol_id in ProtocolTimepoint.objects.values_list(
            "months", "window_before_days", "window_after_days", "protocol_id"):
        if months not in windows or protocol_id == default:
            windows[months] = (before, after)
    codes = {BASELINE, TRIAL_END, UNSCHEDULED} | {f"m{m}" for m in windows}
    codes |= set(Visit.objects.order_by().values_list("timepoint", flat=True).distinct())
    events = []
    for code in sorted(codes, key=timepoint_sort_key):
        months = code[1:] if code.startswith("m") and code[1:].isdigit() else None
        if months:
            before, after = windows.get(int(months), (0, 0))
            events.append(Event(code, timepoint_label(code), round(int(months) * 365.25 / 12),
                                before, after))
        else:
            events.append(Event(code, timepoint_label(code)))
    events.append(Event(AE_EVENT, "Adverse events"))
    return events


def redcap_events(events: list[Event] | None = None) -> list[dict]:
    events = events or redcap_event_list()
    return [{"event_name": e.code, "arm_num": ARM, "unique_event_name": e.unique_name,
             "custom_event_label": e.label, "event_id": i, "days_offset": e.days_offset,
             "offset_min": e.offset_min, "offset_max": e.offset_max}
            for i, e in enumerate(events, 1)]


def redcap_form_event_mapping(events: list[Event] | None = None) -> list[dict]:
    events = events or redcap_event_list()
    return [{"arm_num": ARM, "unique_event_name": e.unique_name, "form": form}
            for e in events for form in e.forms]


def redcap_repeating(events: list[Event] | None = None) -> list[dict]:
    events = events or redcap_event_list()
    out = [{"event_name": e.unique_name, "form_name": "", "custom_form_label": ""}
           for e in events if e.repeating]
    out.append({"event_name": f"{AE_EVENT}_arm_{ARM}", "form_name": "adverse_event",
                "custom_form_label": "[ae_category]"})
    return out


# --- records ----------------------------------------------------------------------------


def _check_names(*, fields=None, forms=None, events=None, event_list=None) -> None:
    for param, values, known in (
        ("fields", fields, FIELD_BY_NAME.keys() | {f"{n}_complete" for n in FORM_NAMES}),
        ("forms", forms, FORM_NAMES),
        ("events", events, [e.unique_name for e in (event_list or [])]),
    ):
        bad = [v for v in values or [] if v not in known]
        if bad:
            raise RedcapRequestError(
                f'The following values in the parameter "{param}" are not valid: '
                + ", ".join(f"'{v}'" for v in bad))


def parse_redcap_datetime(param: str, value: str) -> datetime.datetime:
    """REDCap's 'YYYY-MM-DD HH:MM:SS' in the server's time zone (as REDCap does)."""
    value = (value or "").strip()
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"):
        try:
            moment = datetime.datetime.strptime(value, fmt)
            break
        except ValueError:
            continue
    else:
        raise RedcapRequestError(
            f"The value of the parameter \"{param}\" ('{value}') is not a valid date/time in the "
            "format 'YYYY-MM-DD HH:MM:SS'.")
    return timezone.make_aware(moment, timezone.get_default_timezone())


@dataclass
class RecordExport:
    """What a `record` request asked for, checked; `rows()` streams the answer."""

    user: object
    records: list[str] = field(default_factory=list)
    fields: list[str] = field(default_factory=list)
    forms: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    labels: bool = False
    date_begin: datetime.datetime | None = None
    date_end: datetime.datetime | None = None

    def __post_init__(self):
        self.event_list = redcap_event_list()
        _check_names(fields=self.fields, forms=self.forms, events=self.events,
                     event_list=self.event_list)
        self.event_by_code = {e.code: e for e in self.event_list}
        self.event_order = {e.code: i for i, e in enumerate(self.event_list)}
        selected = []
        for f in FIELDS:
            if not (self.fields or self.forms) or f.name in self.fields or f.form in self.forms:
                selected.append(f)
        self.selected = selected
        completes = []
        for form in FORM_NAMES:
            if not (self.fields or self.forms) or form in self.forms or f"{form}_complete" in self.fields:
                completes.append(form)
        self.completes = completes
        wanted_forms = {f.form for f in selected} | set(completes)
        # Rows of events holding none of the requested forms are left out (as REDCap does).
        self.wanted_events = {e.code for e in self.event_list
                              if set(e.forms) & wanted_forms
                              and (not self.events or e.unique_name in self.events)}

    def filters(self) -> dict:
        out = {k: v for k, v in (("records", self.records), ("fields", self.fields),
                                 ("forms", self.forms), ("events", self.events)) if v}
        if self.date_begin:
            out["dateRangeBegin"] = self.date_begin.isoformat()
        if self.date_end:
            out["dateRangeEnd"] = self.date_end.isoformat()
        if self.labels:
            out["rawOrLabel"] = "label"
        return out

    def columns(self) -> list[str]:
        """Flat export header: record id, event and repeat columns, then form by form."""
        out = []
        record_field = FIELD_BY_NAME["record_id"]
        if record_field in self.selected:
            out.append("record_id")
        out += ["redcap_event_name", "redcap_repeat_instrument", "redcap_repeat_instance"]
        for form in FORM_NAMES:
            out += [f.name for f in self.selected if f.form == form and f.name != "record_id"]
            if form in self.completes:
                out.append(f"{form}_complete")
        return out

    def header_labels(self) -> dict[str, str]:
        labels = {f.name: f.label for f in FIELDS}
        labels.update({"redcap_event_name": "Event Name", "redcap_repeat_instrument":
                       "Repeat Instrument", "redcap_repeat_instance": "Repeat Instance"})
        labels.update({f"{form}_complete": "Complete?" for form in FORM_NAMES})
        return labels

    def patients(self):
        qs = visible(Patient.objects.all(), self.user)
        if self.records:
            qs = qs.filter(registry_id__in=self.records)
        if self.date_begin or self.date_end:
            qs = qs.filter(_changed_between(self.date_begin, self.date_end))
        return qs

    def _value(self, f: Field, value) -> str:
        return f.label_of(value) if self.labels else f.raw(value)

    def _event_text(self, event: Event) -> str:
        return f"{event.label} (Arm {ARM}: Arm {ARM})" if self.labels else event.unique_name

    def _complete_text(self, status: str) -> str:
        if not self.labels:
            return status
        return {"2": "Complete", "1": "Unverified", "0": "Incomplete"}[status]

    def rows(self) -> Iterator[dict]:
        """One dict per REDCap row (record, event, instance), values as REDCap text.

        Patients are taken in batches of `BATCH` in registry-id order; per batch,
        one query for the patients, one for their adverse events and one streamed
        query of the registry's visit dataset (COPY on PostgreSQL), merged one
        patient at a time. One database connection serves one stream at a time
        (COPY blocks it), hence batches rather than three parallel streams.
        Memory is bounded by the batch, whatever the number of patients.
        """
        first_implant = Implant.objects.filter(patient=OuterRef("pk")).order_by().values(
            "patient").annotate(first=Min("implant_date")).values("first")
        patients = (self.patients().annotate(first_implant_date=Subquery(first_implant))
                    .order_by("registry_id")
                    .values_list("pk", "registry_id", "site__code", "sex", "etiology", "diagnosis",
                                 "birth_year", "first_implant_date"))
        want_visits = bool(self.wanted_events - {AE_EVENT})
        want_events = AE_EVENT in self.wanted_events
        columns = self.columns()
        last = None
        while True:
            batch = list((patients.filter(registry_id__gt=last) if last else patients)[:BATCH])
            if not batch:
                return
            last = batch[-1][1]
            pks = [row[0] for row in batch]
            events_of: dict[str, list[dict]] = {}
            if want_events:
                for ae in exports.event_rows(
                        visible(AdverseEvent.objects.all(), self.user).filter(patient_id__in=pks)):
                    events_of.setdefault(ae["registry_id"], []).append(ae)
            visit_rows = _Peek(exports.visit_rows(
                visible(Visit.objects.all(), self.user).filter(patient_id__in=pks))
                if want_visits else iter(()))
            for _pk, registry_id, site, sex, etiology, diagnosis, birth_year, implant_date in batch:
                enrolment = {"registry_id": registry_id, "site": site, "sex": sex,
                             "etiology": etiology, "diagnosis": diagnosis,
                             "age_at_implant": _age(birth_year, implant_date)}
                visits = list(visit_rows.take_while(registry_id))
                yield from self._patient_rows(registry_id, enrolment, visits,
                                              events_of.get(registry_id, []), columns)
            visit_rows.drain()
            if len(batch) < BATCH:
                return

    def _patient_rows(self, registry_id, enrolment, visits, events, columns) -> Iterator[dict]:
        by_event: dict[str, list[dict]] = {}
        for visit in visits:
            by_event.setdefault(visit["timepoint"], []).append(visit)
        if BASELINE not in by_event:
            by_event[BASELINE] = []  # enrolment only
        for code in sorted(by_event, key=self.event_order.__getitem__):
            if code not in self.wanted_events:
                continue
            event = self.event_by_code[code]
            entries = by_event[code] or [None]
            for instance, visit in enumerate(entries, 1):
                row = dict.fromkeys(columns, "")
                row["redcap_event_name"] = self._event_text(event)
                if event.repeating:
                    row["redcap_repeat_instance"] = str(instance)
                if "record_id" in row:
                    row["record_id"] = registry_id
                if code == BASELINE:
                    for f in self.selected:
                        if f.form == "enrolment" and f.name != "record_id":
                            row[f.name] = self._value(f, enrolment[f.column])
                    if "enrolment_complete" in row:
                        row["enrolment_complete"] = self._complete_text(COMPLETE)
                if visit is not None:
                    for f in self.selected:
                        if f.form == "visit":
                            row[f.name] = self._value(f, visit[f.column])
                    if "visit_complete" in row:
                        done = visit["status"] == VisitStatus.COMPLETED
                        row["visit_complete"] = self._complete_text(COMPLETE if done else INCOMPLETE)
                yield row
        if AE_EVENT in self.wanted_events:
            event = self.event_by_code[AE_EVENT]
            for instance, ae in enumerate(events, 1):
                row = dict.fromkeys(columns, "")
                if "record_id" in row:
                    row["record_id"] = registry_id
                row["redcap_event_name"] = self._event_text(event)
                row["redcap_repeat_instrument"] = (FORM_LABELS["adverse_event"] if self.labels
                                                   else "adverse_event")
                row["redcap_repeat_instance"] = str(instance)
                for f in self.selected:
                    if f.form == "adverse_event":
                        row[f.name] = self._value(f, ae[f.column])
                if "adverse_event_complete" in row:
                    closed = ae["outcome"] in CLOSED_OUTCOMES
                    row["adverse_event_complete"] = self._complete_text(COMPLETE if closed else INCOMPLETE)
                yield row

    def eav_rows(self) -> Iterator[dict]:
        """REDCap's eav shape: one row per non-empty value (record, event, repeat, field, value)."""
        keys = ("record_id", "redcap_event_name", "redcap_repeat_instrument", "redcap_repeat_instance")
        for row in self.rows():
            record = row.get("record_id", "")
            for name, value in row.items():
                if name in keys or value == "":
                    continue
                yield {"record": record, "redcap_event_name": row["redcap_event_name"],
                       "redcap_repeat_instrument": row["redcap_repeat_instrument"],
                       "redcap_repeat_instance": row["redcap_repeat_instance"],
                       "field_name": name, "value": value}


EAV_COLUMNS = ["record", "redcap_event_name", "redcap_repeat_instrument", "redcap_repeat_instance",
               "field_name", "value"]


def _age(birth_year, implant_date) -> str | int | None:
    # Same rule as the registry's dataset: year of the first implant - birth year, 90+ over 89.
    if birth_year is None or implant_date is None:
        return None
    age = implant_date.year - birth_year
    return exports.AGE_TOP_LABEL if age > exports.AGE_TOP - 1 else age


def _changed_between(begin, end) -> Q:
    """Patients with anything created or changed in the window (REDCap returns whole records)."""
    def window(prefix=""):
        q = Q()
        if begin:
            q &= Q(**{f"{prefix}updated_at__gte": begin})
        if end:
            q &= Q(**{f"{prefix}updated_at__lte": end})
        return q

    return (window()
            | Exists(Visit.objects.filter(window(), patient=OuterRef("pk")))
            | Exists(AdverseEvent.objects.filter(window(), patient=OuterRef("pk")))
            | Exists(Implant.objects.filter(window(), patient=OuterRef("pk")))
            | Exists(PainScore.objects.filter(window(), visit__patient=OuterRef("pk"))))


class _Peek:
    """An iterator of registry rows in registry-id order, taken one patient at a time."""

    def __init__(self, rows):
        self._rows = iter(rows)
        self._next = next(self._rows, None)

    def drain(self) -> None:
        # Finish the stream (a COPY must end before the connection runs anything else).
        for _ in self._rows:
            pass

    def take_while(self, registry_id: str) -> Iterator[dict]:
        while self._next is not None and self._next["registry_id"] == registry_id:
            yield self._next
            self._next = next(self._rows, None)

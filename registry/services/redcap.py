"""The registry seen as a longitudinal REDCap project (read-only).

So that REDCap clients (PyCap, REDCapR) read the registry unchanged, this
module describes the registry as a REDCap project and streams its records in
REDCap's shapes. Fields and data come from the registry's own dataset declarations
(`services.datasets`: each column says where it stands in REDCap), so REDCap and the registry's
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
- Coded values use REDCap-style numeric raw codes: the frozen numbering of the
  registry's code lists (`models.choices.NUMBERING`, append only, the same numbers
  as in Stata files), so a raw value never changes meaning; the mapping is also in
  each field's `field_annotation`.

Refuses (RedcapRequestError, with REDCap's wording where REDCap has one):
unknown fields, forms or events, malformed dateRange values.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from registry.models import (
    AdverseEvent,
    FollowUpProtocol,
    Implant,
    PainScore,
    Patient,
    ProtocolTimepoint,
    Visit,
    VisitStatus,
    choices,
)
from registry.models.events import CLOSED_OUTCOMES
from registry.models.visits import BASELINE, TRIAL_END, UNSCHEDULED, timepoint_label, timepoint_sort_key

from . import datasets
from .access import visible

REDCAP_VERSION = "14.0.0"  # the API level imitated (PyCap / REDCapR feature checks)
ARM = 1
AE_EVENT = "adverse_events"
COMPLETE, INCOMPLETE = "2", "0"
BATCH = 2000  # patients per round of queries in a record export

# Raw REDCap value of a code = its number in the frozen numbering of the registry's code
# lists (models.choices.NUMBERING: append only, so a raw value never changes meaning);
# the mapping is also in each field's `field_annotation`. Scales (satisfaction, PGIC)
# keep their own integers.
REDCAP_KIND = {"str": "text", "code": "code", "int": "int", "float": "number", "bool": "yesno",
               "age": "age", "scale": "scale", "date": "text"}

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
    """One REDCap field and the dataset column its value comes from.

    kind: text | int | number | age | code (raw value = the code's frozen number)
    | scale (satisfaction/PGIC: the registry's integer is the raw value) | yesno.
    """

    name: str
    form: str
    label: str
    kind: str = "text"
    source: str = ""  # the dataset column (key in the typed row); default = name
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
        if self.kind in ("code", "scale"):
            return [(str(number), label) for number, _, label in choices.numbered(self.codes)]
        if self.kind == "yesno":
            return [("1", "Yes"), ("0", "No")]
        return []

    def metadata(self) -> dict:
        field_type = {"code": "dropdown", "scale": "radio", "yesno": "yesno"}.get(self.kind, "text")
        if self.kind == "code" and len(choices.NUMBERING[self.codes]) <= 5:
            field_type = "radio"
        validation = {"int": "integer", "number": "number"}.get(self.kind, "")
        annotation = self.annotation
        if self.kind == "code":
            mapping = " | ".join(f"{n}={code}" for n, code, _ in choices.numbered(self.codes))
            annotation = (annotation + " " if annotation else "") + f"Registry codes: {mapping}"
        listed = self.choices() if self.kind in ("code", "scale") else []
        return {
            "field_name": self.name,
            "form_name": self.form,
            "section_header": self.section,
            "field_type": field_type,
            "field_label": self.label,
            "select_choices_or_calculations": " | ".join(f"{raw}, {label}" for raw, label in listed),
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
            return str(choices.code_number(self.codes, value))
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


# The datasets whose columns make up the project, in instrument order: enrolment from
# the patients dataset, the visit form from the visits dataset, the adverse-event form
# from the events dataset (each column says where it stands: Column.redcap).
SOURCES = (("enrolment", datasets.PATIENTS), ("visit", datasets.VISITS),
           ("adverse_event", datasets.EVENTS))


def project_fields() -> tuple[Field, ...]:
    """The project's fields, read from the dataset declarations (so a column added there
    is a REDCap field too)."""
    out = []
    for form, dataset in SOURCES:
        for column in dataset.columns_for():
            place = column.redcap
            if place is None or place.form != form:
                continue
            out.append(Field(place.name or column.name, form, place.label or column.label,
                             REDCAP_KIND[column.kind], source=column.name, codes=column.codes,
                             note=place.note, minimum=place.minimum, maximum=place.maximum,
                             annotation=place.annotation, section=place.section))
    return tuple(out)


def field_by_name() -> dict[str, Field]:
    return {f.name: f for f in project_fields()}


FORM_NAMES = tuple(name for name, _ in FORMS)
FORM_LABELS = dict(FORMS)


def redcap_metadata(*, fields: list[str] | None = None, forms: list[str] | None = None) -> list[dict]:
    """The data dictionary in REDCap's 18 columns, optionally narrowed."""
    _check_names(fields=fields, forms=forms)
    out = []
    for f in project_fields():
        if (fields or forms) and not ((fields and f.name in fields) or (forms and f.form in forms)):
            continue
        out.append(f.metadata())
    return out


def redcap_export_field_names(*, field_name: str | None = None) -> list[dict]:
    """Export names = field names (no checkbox fields); form status fields are not listed."""
    if field_name:
        _check_names(fields=[field_name])
    return [{"original_field_name": f.name, "choice_value": "", "export_field_name": f.name}
            for f in project_fields() if not field_name or f.name == field_name]


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
        ("fields", fields, field_by_name().keys() | {f"{n}_complete" for n in FORM_NAMES}),
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
        for f in project_fields():
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
        if any(f.name == "record_id" for f in self.selected):
            out.append("record_id")
        out += ["redcap_event_name", "redcap_repeat_instrument", "redcap_repeat_instance"]
        for form in FORM_NAMES:
            out += [f.name for f in self.selected if f.form == form and f.name != "record_id"]
            if form in self.completes:
                out.append(f"{form}_complete")
        return out

    def header_labels(self) -> dict[str, str]:
        labels = {f.name: f.label for f in project_fields()}
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

        Patients are taken in batches of `BATCH` in registry-id order; per batch, one
        query each for the patients, their enrolment values, their visits and their
        adverse events, all from the registry's dataset declarations and typed by the
        database driver. Memory is bounded by the batch, whatever the number of patients.
        """
        patients = self.patients().order_by("registry_id").values_list("pk", "registry_id")
        want_visits = bool(self.wanted_events - {AE_EVENT})
        want_events = AE_EVENT in self.wanted_events
        columns = self.columns()
        last = None
        while True:
            batch = list((patients.filter(registry_id__gt=last) if last else patients)[:BATCH])
            if not batch:
                return
            last = batch[-1][1]
            pks = [pk for pk, _ in batch]
            enrolment = {row["registry_id"]: row for row in datasets.fetched_rows(
                datasets.PATIENTS, Patient.objects.filter(pk__in=pks))}
            visits_of = _by_patient(datasets.fetched_rows(
                datasets.VISITS, visible(Visit.objects.all(), self.user).filter(patient_id__in=pks))
                if want_visits else [])
            events_of = _by_patient(datasets.fetched_rows(
                datasets.EVENTS, visible(AdverseEvent.objects.all(), self.user).filter(patient_id__in=pks))
                if want_events else [])
            for _pk, registry_id in batch:
                yield from self._patient_rows(registry_id, enrolment[registry_id],
                                              visits_of.get(registry_id, []),
                                              events_of.get(registry_id, []), columns)
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


def _by_patient(rows: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for row in rows:
        out.setdefault(row["registry_id"], []).append(row)
    return out


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


def __getattr__(name: str):
    # FIELDS / FIELD_BY_NAME read the dataset declarations when asked (see project_fields).
    if name == "FIELDS":
        return project_fields()
    if name == "FIELD_BY_NAME":
        return field_by_name()
    raise AttributeError(name)

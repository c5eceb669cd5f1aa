"""The REDCap project: its fields (read from the dataset declarations), instruments and events."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from registry.models import (
    FollowUpProtocol,
    ProtocolTimepoint,
    Visit,
    choices,
)
from registry.models.instruments import INSTRUMENTS
from registry.models.visits import BASELINE, TRIAL_END, UNSCHEDULED, timepoint_label, timepoint_sort_key

from .. import datasets, missing

REDCAP_VERSION = "14.0.0"  # the API level imitated (PyCap / REDCapR feature checks)
ARM = 1
AE_EVENT = "adverse_events"
COMPONENT_EVENT = "device_components"  # the implants' IPG, leads, extensions (one instance each)
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
# The PROM instruments (services.redcap.proms) follow the visit form, one form each.
FORMS = (("enrolment", "Enrolment"), ("visit", "Visit"),
         *((code, instrument.name) for code, instrument in INSTRUMENTS.items()),
         ("adverse_event", "Adverse event"), ("device_component", "Device component"))
PROM_FORM_NAMES = tuple(INSTRUMENTS)
VISIT_REASON = "visit_missing"  # the visits dataset's column: why a whole visit was not done


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
    reason: str = ""  # the dataset column holding why the value is missing (services.missing)

    @property
    def column(self) -> str:
        return self.source or self.name

    @property
    def reasons(self) -> tuple[str, ...]:
        """The dataset columns saying why the value is missing, first found first: the
        value's own reason, then (visit form) the whole visit's, `visit_missing`, so a
        missed visit's values carry its reason as their missing-data code."""
        if not self.reason:
            return ()
        return (self.reason, VISIT_REASON) if self.form == "visit" else (self.reason,)

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
           ("adverse_event", datasets.EVENTS), ("device_component", datasets.COMPONENTS))


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
                             annotation=place.annotation, section=place.section,
                             reason=column.reason))
    return tuple(out)


def all_fields(*, proms: bool = True) -> tuple[Field, ...]:
    """The dataset fields and (with `proms`) the PROM forms' fields, in form order."""
    from .proms import prom_fields

    fields = project_fields()
    if not proms:
        return fields
    order = {name: i for i, (name, _) in enumerate(FORMS)}
    return tuple(sorted((*fields, *prom_fields()), key=lambda f: order[f.form]))


def field_by_name() -> dict[str, Field]:
    return {f.name: f for f in all_fields()}


FORM_NAMES = tuple(name for name, _ in FORMS)
FORM_LABELS = dict(FORMS)


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


def redcap_metadata(*, fields: list[str] | None = None, forms: list[str] | None = None) -> list[dict]:
    """The data dictionary in REDCap's 18 columns, optionally narrowed."""
    _check_names(fields=fields, forms=forms)
    out = []
    for f in all_fields():
        if (fields or forms) and not ((fields and f.name in fields) or (forms and f.form in forms)):
            continue
        out.append(f.metadata())
    return out


def redcap_export_field_names(*, field_name: str | None = None) -> list[dict]:
    """Export names = field names (no checkbox fields); form status fields are not listed."""
    if field_name:
        _check_names(fields=[field_name])
    return [{"original_field_name": f.name, "choice_value": "", "export_field_name": f.name}
            for f in all_fields() if not field_name or f.name == field_name]


def redcap_instruments() -> list[dict]:
    return [{"instrument_name": name, "instrument_label": label} for name, label in FORMS]


def redcap_arms() -> list[dict]:
    return [{"arm_num": ARM, "name": "Arm 1"}]


def redcap_project() -> dict:
    created = "2024-01-01 00:00:00"
    return {
        "project_id": 1, "project_title": settings.REGISTRY_TITLE,
        "creation_time": created, "production_time": created, "in_production": 1,
        "project_language": "English", "purpose": 2, "purpose_other": "",
        "project_notes": "Read-only REDCap view of the registry (de-identified analysis dataset).",
        "custom_record_label": "", "secondary_unique_field": "", "is_longitudinal": 1,
        "has_repeating_instruments_or_events": 1, "surveys_enabled": 0,
        "scheduling_enabled": 0, "record_autonumbering_enabled": 0, "randomization_enabled": 0,
        "ddp_enabled": 0, "project_irb_number": "", "project_grant_number": "",
        "project_pi_firstname": "", "project_pi_lastname": "", "display_today_now_button": 1,
        # The missing-data reasons as REDCap's own setting (services.missing).
        "missing_data_codes": missing.redcap_missing_data_codes(),
        "external_modules": "", "bypass_branching_erase_field_prompt": 0,
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
        if self.code == COMPONENT_EVENT:
            return ("device_component",)
        if self.code == BASELINE:
            return ("enrolment", "visit", *PROM_FORM_NAMES)
        return ("visit", *PROM_FORM_NAMES)

    @property
    def repeating(self) -> bool:
        return self.code not in (BASELINE, AE_EVENT, COMPONENT_EVENT)


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
    events.append(Event(COMPONENT_EVENT, "Device components"))
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
    out.append({"event_name": f"{COMPONENT_EVENT}_arm_{ARM}", "form_name": "device_component",
                "custom_form_label": "[comp_kind] [comp_implant_ref]"})
    return out


def __getattr__(name: str):
    # FIELDS / FIELD_BY_NAME read the dataset declarations when asked (see project_fields).
    if name == "FIELDS":
        return project_fields()
    if name == "FIELD_BY_NAME":
        return field_by_name()
    raise AttributeError(name)

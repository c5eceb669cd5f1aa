"""REDCap record exports: flat and eav rows, in batches of patients."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from dataclasses import dataclass, field

from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from registry.models import (
    AdverseEvent,
    DeviceComponent,
    Implant,
    PainScore,
    Patient,
    Visit,
    VisitStatus,
)
from registry.models.events import CLOSED_OUTCOMES
from registry.models.visits import BASELINE

from .. import datasets, missing
from ..access import visible
from .project import (
    AE_EVENT,
    ARM,
    BATCH,
    COMPLETE,
    COMPONENT_EVENT,
    FORM_LABELS,
    FORM_NAMES,
    INCOMPLETE,
    PROM_FORM_NAMES,
    Event,
    Field,
    RedcapRequestError,
    _check_names,
    all_fields,
    redcap_event_list,
)
from .proms import answers_of, form_complete, prom_values

# --- records ----------------------------------------------------------------------------


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
    # The PROM forms (services.redcap.proms).
    proms: bool = True

    @property
    def wants_proms(self) -> bool:
        """Whether the answer holds a PROM form (its answers and scores are read then)."""
        return any(f.form in PROM_FORM_NAMES for f in self.selected) or \
            any(form in PROM_FORM_NAMES for form in self.completes)

    def __post_init__(self):
        self.event_list = redcap_event_list()
        _check_names(fields=self.fields, forms=self.forms, events=self.events,
                     event_list=self.event_list)
        self.event_by_code = {e.code: e for e in self.event_list}
        self.event_order = {e.code: i for i, e in enumerate(self.event_list)}
        selected = []
        for f in all_fields(proms=self.proms):
            if not (self.fields or self.forms) or f.name in self.fields or f.form in self.forms:
                selected.append(f)
        self.selected = selected
        completes = []
        for form in FORM_NAMES:
            if form in PROM_FORM_NAMES and not self.proms:
                continue
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
        labels = {f.name: f.label for f in all_fields()}
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

    def _value(self, f: Field, value, why: str | None = None) -> str:
        if value is None and why:
            # REDCap keeps a missing-data code in the field itself (project setting
            # missing_data_codes); its label when labels are asked for.
            found = missing.reason(why)
            return found.label if self.labels else found.redcap
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
        want_visits = bool(self.wanted_events - {AE_EVENT, COMPONENT_EVENT})
        want_events = AE_EVENT in self.wanted_events
        want_components = COMPONENT_EVENT in self.wanted_events
        columns = self.columns()
        want_proms = self.wants_proms
        self.value_set = self.prom_value_set() if want_proms else None
        last = None
        while True:
            batch = list((patients.filter(registry_id__gt=last) if last else patients)[:BATCH])
            if not batch:
                return
            last = batch[-1][1]
            pks = [pk for pk, _ in batch]
            enrolment = {row["registry_id"]: row for row in datasets.fetched_rows(
                datasets.PATIENTS, Patient.objects.filter(pk__in=pks))}
            visit_qs = visible(Visit.objects.all(), self.user).filter(patient_id__in=pks)
            visit_rows = datasets.fetched_rows(datasets.VISITS, visit_qs) if want_visits else []
            if want_proms and visit_rows:
                # The visits in the dataset's own order (the same query's ORDER BY), so each
                # row gets its visit's answers; scores computed from them (services.proms).
                ordered = datasets.VISITS.prepare(visit_qs).order_by(*datasets.VISITS.order_by())
                visit_ids = list(ordered.values_list("pk", flat=True))
                answers = answers_of(visit_ids)
                for row, visit_id in zip(visit_rows, visit_ids, strict=True):
                    row["_proms"] = answers.get(visit_id, {})
            visits_of = _by_patient(visit_rows)
            events_of = _by_patient(datasets.fetched_rows(
                datasets.EVENTS, visible(AdverseEvent.objects.all(), self.user).filter(patient_id__in=pks))
                if want_events else [])
            components_of = _by_patient(datasets.fetched_rows(
                datasets.COMPONENTS, visible(DeviceComponent.objects.all(), self.user).filter(
                    implant__patient_id__in=pks)) if want_components else [])
            for _pk, registry_id in batch:
                yield from self._patient_rows(registry_id, enrolment[registry_id],
                                              visits_of.get(registry_id, []),
                                              events_of.get(registry_id, []), columns)
                yield from self._instrument_rows(registry_id, COMPONENT_EVENT, "device_component",
                                                 components_of.get(registry_id, []), columns,
                                                 lambda _row: True)
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
                            why = next((visit[r] for r in f.reasons if visit.get(r)), None)
                            row[f.name] = self._value(f, visit[f.column], why)
                    if "visit_complete" in row:
                        done = visit["status"] == VisitStatus.COMPLETED
                        row["visit_complete"] = self._complete_text(COMPLETE if done else INCOMPLETE)
                    if "_proms" in visit:
                        self._prom_cells(row, visit["_proms"])
                yield row
        yield from self._instrument_rows(registry_id, AE_EVENT, "adverse_event", events, columns,
                                         lambda ae: ae["outcome"] in CLOSED_OUTCOMES)

    def _instrument_rows(self, registry_id, code, form, entries, columns, complete) -> Iterator[dict]:
        """The rows of a repeating instrument in its own event (adverse events, device
        components): one instance per dataset row, in the dataset's order."""
        if code not in self.wanted_events:
            return
        event = self.event_by_code[code]
        for instance, entry in enumerate(entries, 1):
            row = dict.fromkeys(columns, "")
            if "record_id" in row:
                row["record_id"] = registry_id
            row["redcap_event_name"] = self._event_text(event)
            row["redcap_repeat_instrument"] = FORM_LABELS[form] if self.labels else form
            row["redcap_repeat_instance"] = str(instance)
            for f in self.selected:
                if f.form == form:
                    row[f.name] = self._value(f, entry[f.column])
            if f"{form}_complete" in row:
                row[f"{form}_complete"] = self._complete_text(COMPLETE if complete(entry) else INCOMPLETE)
            yield row

    def prom_value_set(self) -> str:
        """The EQ-5D-5L value set of the country of the user's sites (as the exports)."""
        from ..access import sites_for
        from ..proms.instruments import default_value_set

        return default_value_set(sites_for(self.user).values_list("country", flat=True))

    def _prom_cells(self, row: dict, answers: dict) -> None:
        values = prom_values(answers, self.value_set)
        for f in self.selected:
            if f.form in PROM_FORM_NAMES:
                row[f.name] = self._value(f, values[f.column])
        for form in PROM_FORM_NAMES:
            if f"{form}_complete" in row:
                row[f"{form}_complete"] = self._complete_text(
                    COMPLETE if form_complete(answers, form) else INCOMPLETE)

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
            | Exists(DeviceComponent.objects.filter(window(), implant__patient=OuterRef("pk")))
            | Exists(PainScore.objects.filter(window(), visit__patient=OuterRef("pk"))))

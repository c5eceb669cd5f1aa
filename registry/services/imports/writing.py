"""Writing a checked bundle: one transaction, history rows for every record,
follow-up scheduled for the new implants."""

import re

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import IntegrityError
from django.db.models import F
from django.db.models.functions import Greatest

from registry.models import (
    AdverseEvent,
    ContactAttempt,
    DeviceComponent,
    Implant,
    PainScore,
    Patient,
    ProgrammingSession,
    PromAnswer,
    Site,
    Visit,
)

from ..audit import bulk_create_audited, record_bulk_update
from ..bundles import (
    DISPOSITIONS,
    VISITS,
)
from ..disposition import disposition_record
from ..scheduling import implants_schedule_bulk
from .checks import _Validator
from .lookups import _chunks
from .reading import BundleError

# ---------------------------------------------------------------- writing


class _RegistryChanged(Exception):
    """Visits the bundle fills in were changed in the registry after validation."""

    def __init__(self, errors: list[BundleError]):
        super().__init__(f"{len(errors)} visit(s) changed since validation")
        self.errors = errors


def _lock_visits_to_fill_in(v: _Validator) -> None:
    """Lock the scheduled visits the bundle fills in, and refuse the import when one
    changed since it was validated: validation runs outside the transaction, so a
    nurse's save in between would otherwise be overwritten (optimistic locking on
    `version`, as record_save does)."""
    if not v.visit_updates:
        return
    current: dict[int, int] = {}
    # In pk order, so two imports lock in the same order; the reminder job skips
    # locked rows instead of waiting, so it cannot deadlock with this.
    for chunk in _chunks(sorted(visit.pk for visit in v.visit_updates)):
        current.update(Visit.objects.select_for_update().filter(pk__in=chunk)
                       .order_by("pk").values_list("pk", "version"))
    lines = {visit.pk: v.visit_lines.get(key) for key, visit in v.visits.items()}
    changed = [BundleError(VISITS.name, lines.get(visit.pk), "timepoint", visit.timepoint,
                           "this visit was changed in the registry after the bundle was checked "
                           "(someone was working on it); nothing was imported: import the "
                           "bundle again to check it against the registry as it is now.")
               for visit in v.visit_updates if current.get(visit.pk) != visit.version]
    if changed:
        raise _RegistryChanged(changed)


class _RowsRefused(_RegistryChanged):
    """Rows a service refused while writing (the whole import is rolled back)."""

    def __init__(self, errors: list[BundleError]):
        Exception.__init__(self, f"{len(errors)} row(s) refused")
        self.errors = errors


def _record_dispositions(v: _Validator, *, actor, reason: str) -> None:
    """Each new disposition through the disposition service, in file order, as the admin
    records it (consent, schedule and reminders follow from its date, history by `actor`
    with `reason`). A refusal names its file, line, column and value; then nothing stays."""
    refused = []
    for line, disposition in v.dispositions:
        disposition.patient = disposition.patient  # the real pks, now they are written
        disposition.transferred_to = disposition.transferred_to
        try:
            disposition_record(disposition=disposition, actor=actor, reason=reason)
        except ValidationError as exc:
            for name, messages in exc.message_dict.items():
                column = "" if name == NON_FIELD_ERRORS else (
                    "registry_id" if name == "patient" else name)
                value = getattr(disposition, name, "") if column and column != "registry_id" \
                    else disposition.patient.registry_id if column else ""
                refused.append(BundleError(DISPOSITIONS.name, line, column,
                                           "" if value is None else str(value), messages[0]))
    if refused:
        raise _RowsRefused(refused)


def _write(v: _Validator, *, actor, reason: str, progress) -> int | None:
    """Everything the validator collected, in one transaction, with history."""
    _lock_visits_to_fill_in(v)
    steps = [("sites", Site), ("patients", Patient), ("implants", Implant), ("visits", Visit),
             ("pain_scores", PainScore), ("adverse_events", AdverseEvent), ("prom_answers", PromAnswer),
             ("components", DeviceComponent), ("programming_sessions", ProgrammingSession),
             ("contact_attempts", ContactAttempt)]
    total = sum(len(v.new[name]) for name, _ in steps) + len(v.visit_updates) + len(v.dispositions)
    done = 0
    for name, model in steps:
        objs = v.new[name]
        # Point at the parents' real pks (they were temporary during validation): the
        # parent each row was built with is in its relation cache.
        relations = [(f.name, f.attname) for f in model._meta.concrete_fields
                     if f.is_relation and f.name in ("site", "patient", "implant", "visit")]
        for obj in objs:
            if obj.pk is not None and obj.pk < 0:
                obj.pk = None
            cached = obj._state.fields_cache
            for relation, attname in relations:
                parent = cached.get(relation)
                if parent is not None:
                    obj.__dict__[attname] = parent.pk
        for start in range(0, len(objs), 5000):
            bulk_create_audited(objs[start:start + 5000], model, actor=actor, reason=reason)
            done += len(objs[start:start + 5000])
            if progress:
                progress("writing", done, total)
        if objs and objs[0].pk is None:  # back-ends that return no ids (not PG, SQLite)
            raise IntegrityError(f"{model.__name__}: the database returned no ids.")
    if v.visit_updates:
        v.visit_updates.sort(key=lambda visit: visit.pk)
        record_bulk_update(
            v.visit_updates, Visit, [
                "status", "date_done", "nrs", "satisfaction", "pgic", "would_choose_again",
                "opioid_mme", "stimulation_use", "nrs_missing", "satisfaction_missing",
                "pgic_missing", "opioid_mme_missing", "visit_missing", "entered_by"],
            actor=actor, reason=reason, batch_size=1000)
        done += len(v.visit_updates)
        if progress:
            progress("writing", done, total)
    # Next registry ids continue after the imported ones.
    highest: dict[int, int] = {}
    for patient in v.new["patients"]:
        match = re.search(r"(\d+)$", patient.registry_id)
        if match:
            highest[patient.site_id] = max(highest.get(patient.site_id, 0), int(match.group(1)))
    for site_id, number in highest.items():
        # The counter is not clinical data (excluded from history).
        Site.objects.filter(pk=site_id).update(
            patient_sequence=Greatest(F("patient_sequence"), number))
    scheduled = None
    if v.new["implants"]:
        if progress:
            progress("scheduling follow-up", 0, len(v.new["implants"]))
        change = implants_schedule_bulk(implants=v.new["implants"], actor=actor, reason=reason)
        if progress:
            progress("scheduling follow-up", len(v.new["implants"]), len(v.new["implants"]))
        scheduled = (change.created + change.past) or None
    # After the schedule, so that each disposition stops it from its date as in the admin.
    if v.dispositions:
        if progress:
            progress("recording dispositions", 0, len(v.dispositions))
        _record_dispositions(v, actor=actor, reason=reason)
        if progress:
            progress("writing", total, total)
    return scheduled

"""Follow-up schedules from the protocol.

Each implant with an implant date gets one visit per protocol timepoint
(`m<months>`): target = implant date + months (calendar months, clamped to the
month's end), window = target - window_before_days .. target + window_after_days.
The protocol is the site's own, or the registry default.

Rules the schedule keeps:
- Completed visits never move and never change status.
- Visits not yet done (scheduled, missed) follow the implant date: moving the
  implant date recomputes their dates and puts them back to scheduled (the daily
  job marks them missed again when their new window is past).
- Follow-up stops at the explant or the end of the patient's follow-up (withdrawal,
  loss, death, completion, transfer out: services/disposition.py): visits whose
  window opens after that date become not_applicable (kept, never deleted);
  visits whose window had already opened can still be done, except after a death,
  which also stops the windows not closed before it. Timepoints after the stop
  that have no visit yet are not created.
- When the stop goes away or moves later (a corrected explant date), visits the
  schedule itself had stopped are scheduled again; a not_applicable set by hand
  stays as it is.
- Timepoints no longer in the protocol are left alone (their visits are data).
Every write goes with history: the acting user and a reason saying why.
"""

import datetime
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial

from django.db import connection, transaction
from django.utils import timezone

from registry.models import (
    FollowUpProtocol,
    Implant,
    Patient,
    ProtocolTimepoint,
    Site,
    Visit,
    VisitStatus,
)
from registry.models.base import array_literal, pk_list, unsaved_factory
from registry.models.visits import timepoint_months

from .audit import (
    attach_audit,
    bulk_create_audited,
    create_from_select_audited,
    record_bulk_update,
)
from .dates import add_months, site_today
from .disposition import FollowUpStop, follow_up_stop_of, follow_up_stops

SCHEDULE_REASON = "Follow-up schedule"
STOP_REASON = "Follow-up stopped"
RESUME_REASON = "Follow-up resumed"
IMPORT_PAST_REASON = "Retrospective import: window closed before the import, not collected"
NOT_DONE = (VisitStatus.SCHEDULED, VisitStatus.MISSED)
BATCH = 2000


@dataclass
class ScheduleChange:
    """What a schedule run did (counts of visits)."""

    created: int = 0
    moved: int = 0
    stopped: int = 0
    resumed: int = 0
    past: int = 0  # imports only: created as not_applicable because their window had closed

    def __add__(self, other: "ScheduleChange") -> "ScheduleChange":
        return ScheduleChange(*(a + b for a, b in zip(vars(self).values(), vars(other).values(),
                                                       strict=True)))


@dataclass(frozen=True)
class Slot:
    code: str
    target: datetime.date
    start: datetime.date
    end: datetime.date


def protocol_for(*, site: Site) -> FollowUpProtocol | None:
    """The site's protocol, or the registry default."""
    if site.protocol_id:
        return FollowUpProtocol.objects.prefetch_related("timepoints").get(pk=site.protocol_id)
    return FollowUpProtocol.default()


def timepoint_slot(*, implant_date: datetime.date, timepoint: ProtocolTimepoint) -> Slot:
    """Target and window of one timepoint. Pure date arithmetic: a site's
    daylight-saving change cannot shift a visit by a day."""
    target = add_months(implant_date, timepoint.months)
    return Slot(
        code=timepoint.code,
        target=target,
        start=target - datetime.timedelta(days=timepoint.window_before_days),
        end=target + datetime.timedelta(days=timepoint.window_after_days),
    )


def upcoming_slots(*, implant: Implant, on: datetime.date, count: int = 3) -> list[Slot]:
    """The next `count` windows of the implant's protocol not yet closed on `on`
    (none without an implant date or a protocol)."""
    protocol = protocol_for(site=implant.patient.site) if implant.implant_date else None
    if protocol is None:
        return []
    slots = (timepoint_slot(implant_date=implant.implant_date, timepoint=tp)
             for tp in sorted(protocol.timepoints.all(), key=lambda tp: tp.months))
    return [slot for slot in slots if slot.end >= on][:count]


def follow_up_stop(*, implant: Implant, patient: Patient, disposition=None,
                   loaded: bool = False) -> "FollowUpStop | None":
    """The day follow-up of this implant ends (explant, or the patient's disposition or
    consent: services.disposition.follow_up_stop_of), and why. `disposition`/`loaded`:
    the patient's current disposition, when already read."""
    stops = []
    if implant.explant_date:
        stops.append(FollowUpStop(implant.explant_date,
                                  f"explant on {implant.explant_date.isoformat()}"))
    ended = follow_up_stop_of(patient, disposition, loaded)
    if ended is not None:
        stops.append(ended)
    return min(stops, key=lambda s: (s.date, not s.closes_open_windows)) if stops else None


def after_stop(slot: "Slot", stop: "FollowUpStop | None") -> bool:
    """Does the stop end this window? Windows opening after the stop day; after a death
    also the windows not closed before it (the visit cannot be done any more)."""
    if stop is None:
        return False
    return slot.start > stop.date or (stop.closes_open_windows and slot.end >= stop.date)


def _stopped_by_schedule(visit_ids: list[int]) -> set[int]:
    """Which not_applicable visits the schedule itself stopped (their latest
    history row carries the stop reason); the others were set by a person."""
    latest: dict[int, str] = {}
    rows = (Visit.history.filter(id__in=visit_ids)
            .order_by("id", "-history_date", "-history_id")
            .values_list("id", "history_change_reason"))
    for visit_id, reason in rows:
        latest.setdefault(visit_id, reason or "")
    return {visit_id for visit_id, reason in latest.items() if reason.startswith(STOP_REASON)}


def _sync(*, implant: Implant, patient: Patient, timepoints: list[ProtocolTimepoint], actor,
          reason: str) -> ScheduleChange:
    change = ScheduleChange()
    suffix = f" ({reason})" if reason else ""
    existing = {
        v.timepoint: v
        # Locked so a nurse's concurrent save is refused (version) rather than lost.
        for v in Visit.objects.select_for_update().filter(implant=implant).order_by("pk")
        if timepoint_months(v.timepoint)
    }
    stop = follow_up_stop(implant=implant, patient=patient)
    stop_why = stop.why if stop else ""
    if implant.implant_date is None:
        stop_why = "no implant date"
    stopped_earlier = _stopped_by_schedule(
        [v.pk for v in existing.values() if v.status == VisitStatus.NOT_APPLICABLE]
    ) if any(v.status == VisitStatus.NOT_APPLICABLE for v in existing.values()) else set()

    to_create, to_update = [], []
    for timepoint in timepoints:
        visit = existing.get(timepoint.code)
        if implant.implant_date is None:
            if visit is not None and visit.status in NOT_DONE:
                visit.status = VisitStatus.NOT_APPLICABLE
                attach_audit(visit, actor=actor, reason=f"{STOP_REASON}: {stop_why}{suffix}")
                to_update.append(visit)
                change.stopped += 1
            continue
        slot = timepoint_slot(implant_date=implant.implant_date, timepoint=timepoint)
        stopped = after_stop(slot, stop)
        if visit is None:
            if stopped:
                continue
            to_create.append(Visit(
                patient=patient, implant=implant, timepoint=slot.code, target_date=slot.target,
                window_start=slot.start, window_end=slot.end, status=VisitStatus.SCHEDULED,
            ))
            change.created += 1
            continue
        if visit.status == VisitStatus.COMPLETED:
            continue
        moved = (visit.target_date, visit.window_start, visit.window_end) != (
            slot.target, slot.start, slot.end)
        visit.target_date, visit.window_start, visit.window_end = slot.target, slot.start, slot.end
        if visit.status in NOT_DONE and stopped:
            visit.status = VisitStatus.NOT_APPLICABLE
            attach_audit(visit, actor=actor, reason=f"{STOP_REASON}: {stop_why}{suffix}")
            change.stopped += 1
        elif visit.status == VisitStatus.NOT_APPLICABLE and not stopped \
                and visit.pk in stopped_earlier:
            visit.status, visit.visit_missing = VisitStatus.SCHEDULED, ""
            attach_audit(visit, actor=actor, reason=f"{RESUME_REASON}: implant date "
                                                    f"{implant.implant_date.isoformat()}{suffix}")
            change.resumed += 1
        elif moved:
            if visit.status == VisitStatus.MISSED:
                visit.status, visit.visit_missing = VisitStatus.SCHEDULED, ""
            # A stopped visit keeps the stop reason first, so a later resume finds it.
            lead = f"{STOP_REASON}: {stop_why}; " if visit.pk in stopped_earlier else ""
            attach_audit(visit, actor=actor, reason=f"{lead}{SCHEDULE_REASON}: implant date moved to "
                                                    f"{implant.implant_date.isoformat()}{suffix}")
            change.moved += 1
        else:
            continue
        to_update.append(visit)

    if to_create:
        bulk_create_audited(
            to_create, Visit, actor=actor, batch_size=BATCH,
            reason=f"{SCHEDULE_REASON}: implant date {implant.implant_date.isoformat()}{suffix}",
        )
    if to_update:
        # Each visit carries its own reason (attach_audit above).
        record_bulk_update(to_update, Visit, ["target_date", "window_start", "window_end", "status",
                                              "visit_missing"],
                           actor=actor, batch_size=BATCH)
    return change


def implant_schedule_sync(*, implant: Implant, actor, reason: str = "") -> ScheduleChange:
    """Create or move the implant's follow-up visits from its site's protocol.

    Promises: one visit per protocol timepoint up to the follow-up stop;
    visits not yet done follow the implant date; completed visits are never
    touched; visits after an explant or withdrawal become not_applicable, never
    deleted. Refuses nothing: an implant without a date has nothing to schedule
    (visits already planned are stopped until a date is given).
    """
    patient = Patient.objects.select_related("site").get(pk=implant.patient_id)
    protocol = protocol_for(site=patient.site)
    timepoints = list(protocol.timepoints.all()) if protocol else []
    with transaction.atomic():
        return _sync(implant=implant, patient=patient, timepoints=timepoints, actor=actor,
                     reason=reason)


def patient_schedule_sync(*, patient: Patient, actor, reason: str = "") -> ScheduleChange:
    """Keep every implant's schedule in step with the patient's consent.

    A withdrawal stops the visits whose window opens after the withdrawal date
    (not_applicable, kept with their data); withdrawing the withdrawal (a
    correction) schedules them again.
    """
    protocol = protocol_for(site=patient.site)
    timepoints = list(protocol.timepoints.all()) if protocol else []
    change = ScheduleChange()
    with transaction.atomic():
        for implant in Implant.objects.filter(patient_id=patient.pk).order_by("pk"):
            change += _sync(implant=implant, patient=patient, timepoints=timepoints, actor=actor,
                            reason=reason)
    return change


def _visit_factory():
    """New scheduled visits without a Model.__init__ per visit (`unsaved_factory`): an
    import schedules ~15 visits per implant, and __init__ was most of the scheduling time
    (issue 21). Values are given by attname (patient_id, ...)."""
    return partial(unsaved_factory(Visit), status=VisitStatus.SCHEDULED)


def implants_schedule_bulk(*, implants: Iterable[Implant], actor, reason: str,
                           today: datetime.date | None = None) -> ScheduleChange:
    """Create the missing follow-up visits of many implants at once (imports).

    Timepoints that already have a visit (e.g. imported completed visits) are
    skipped, and nothing existing is changed. Follow-up stops at explant or
    withdrawal as in `implant_schedule_sync`.

    Retrospective data: a timepoint whose window closed before the import (in
    the site's own time zone) is created as not_applicable with the reason
    "Retrospective import: window closed before the import, not collected"
    instead of scheduled, so an import of old charts does not flood the next
    digest with overdue reminders or turn into missed visits; the schedule keeps
    it as set (a person can still complete it). Timepoints whose window is open
    or ahead are scheduled.

    On PostgreSQL the server makes the visits and their history rows (one
    statement, `_schedule_on_server`); elsewhere they are built here. A fixed
    number of queries whatever the number of implants and visits (one or two more
    per protocol).
    """
    implant_ids = [i.pk for i in implants]
    past_reason = f"{IMPORT_PAST_REASON} ({reason})" if reason else IMPORT_PAST_REASON
    schedule_reason = f"{SCHEDULE_REASON} ({reason})" if reason else SCHEDULE_REASON
    plan = _bulk_plan(implant_ids, today)
    if not plan.implants:
        return ScheduleChange()
    with transaction.atomic():
        if connection.vendor == "postgresql":
            return _schedule_on_server(plan, actor=actor, reason=schedule_reason,
                                       past_reason=past_reason)
        return _schedule_here(plan, actor=actor, reason=schedule_reason, past_reason=past_reason)


@dataclass
class _BulkPlan:
    """What the schedule of many implants needs, decided once per implant (its stop and
    its site's day) or once per (protocol, implant date) (the slots), not per visit."""

    # (implant pk, patient pk, slots key, stop or None, the day at the site)
    implants: list[tuple[int, int, tuple, FollowUpStop | None, datetime.date]]
    slots: dict[tuple, list[Slot]]


# The fields follow_up_stop and _bulk_plan read.
STOP_FIELDS = ("patient_id", "implant_date", "explant_date", "patient__site_id",
               "patient__consent_status", "patient__withdrawal_date")


def _bulk_plan(implant_ids: list[int], today: datetime.date | None) -> _BulkPlan:
    protocols: dict[int | None, list[ProtocolTimepoint]] = {}
    # The schedule is computed once per (protocol, implant date) and the local day
    # once per time zone: 10,000 implants share a few thousand dates (issue 21).
    slots_of: dict[tuple, list[Slot]] = {}
    today_in: dict[str, datetime.date] = {}
    now = timezone.now()
    # Only what the stop and the slots read, as values put into bare instances: loading
    # whole implants, patients and a site per implant was most of this step, and
    # Django's deferred-field instances still half of it (issue 21).
    make_implant, make_patient = unsaved_factory(Implant), unsaved_factory(Patient)
    rows = [make_implant(id=pk, implant_date=implant_date, explant_date=explant_date,
                         patient=make_patient(id=patient_id, site_id=site_id,
                                              consent_status=consent,
                                              withdrawal_date=withdrawal))
            for pk, patient_id, implant_date, explant_date, site_id, consent, withdrawal
            in Implant.objects.filter(pk__in=pk_list(implant_ids), implant_date__isnull=False)
            .order_by().values_list("pk", *STOP_FIELDS)]
    sites = Site.objects.in_bulk({implant.patient.site_id for implant in rows})
    dispositions = follow_up_stops({implant.patient_id for implant in rows})
    order = {pk: n for n, pk in enumerate(implant_ids)}
    rows.sort(key=lambda implant: order[implant.pk])  # visits in the order of the implants given
    planned = []
    for implant in rows:
        patient = implant.patient
        site = sites[patient.site_id]
        if site.protocol_id not in protocols:
            protocol = protocol_for(site=site)
            protocols[site.protocol_id] = list(protocol.timepoints.all()) if protocol else []
        key = (site.protocol_id, implant.implant_date)
        if key not in slots_of:
            slots_of[key] = [timepoint_slot(implant_date=implant.implant_date, timepoint=timepoint)
                             for timepoint in protocols[site.protocol_id]]
        local_today = today
        if local_today is None:
            local_today = today_in.get(str(site.timezone))
            if local_today is None:
                local_today = today_in[str(site.timezone)] = site_today(site.timezone, now)
        stop = follow_up_stop(implant=implant, patient=patient,
                              disposition=dispositions.get(patient.pk), loaded=True)
        planned.append((implant.pk, patient.pk, key, stop, local_today))
    return _BulkPlan(planned, slots_of)


def _schedule_here(plan: _BulkPlan, *, actor, reason: str, past_reason: str) -> ScheduleChange:
    """The visits built in Python and written by bulk_create_audited (SQLite)."""
    change = ScheduleChange()
    new_visit = _visit_factory()
    have = set(Visit.objects.filter(implant_id__in=[pk for pk, *_ in plan.implants])
               .values_list("implant_id", "timepoint"))
    to_create = []
    for implant_id, patient_id, key, stop, local_today in plan.implants:
        for slot in plan.slots[key]:
            if (implant_id, slot.code) in have or after_stop(slot, stop):
                continue
            visit = new_visit(patient_id=patient_id, implant_id=implant_id, timepoint=slot.code,
                              target_date=slot.target, window_start=slot.start,
                              window_end=slot.end)
            if slot.end < local_today:
                visit.status = VisitStatus.NOT_APPLICABLE
                visit._change_reason = past_reason
                change.past += 1
            else:
                change.created += 1
            to_create.append(visit)
    bulk_create_audited(to_create, Visit, actor=actor, reason=reason, batch_size=BATCH)
    return change


def _schedule_on_server(plan: _BulkPlan, *, actor, reason: str, past_reason: str) -> ScheduleChange:
    """The same visits and history rows as `_schedule_here`, made by the server: the
    implants (with their stop and day) and the slots of each (protocol, implant date)
    are sent as arrays, and one INSERT ... SELECT crosses them (issue 21: building
    150,000 visits in Python was most of an import's scheduling). The WHERE is
    `after_stop` and the CASE the retrospective rule, in SQL; test_import_speed.py
    compares both paths over a grid."""
    keys = {key: n for n, key in enumerate(plan.slots)}
    implants = {"implant": [], "patient": [], "slots": [], "stop": [], "closes": [], "today": []}
    for implant_id, patient_id, key, stop, local_today in plan.implants:
        for name, value in zip(implants, (implant_id, patient_id, keys[key],
                                          stop.date if stop else None,
                                          bool(stop and stop.closes_open_windows), local_today),
                               strict=True):
            implants[name].append(value)
    slots = {"key": [], "n": [], "code": [], "target": [], "start": [], "end": []}
    for key, number in keys.items():
        for n, slot in enumerate(plan.slots[key]):
            for name, value in zip(slots, (number, n, slot.code, slot.target, slot.start, slot.end),
                                   strict=True):
                slots[name].append(value)
    source = (
        "unnest(%(implant)s::bigint[], %(patient)s::bigint[], %(slots)s::int[], %(stop)s::date[], "
        "%(closes)s::bool[], %(today)s::date[]) WITH ORDINALITY "
        "AS i(implant_id, patient_id, slots, stop, closes, today, n) "
        "JOIN unnest(%(key)s::int[], %(n)s::int[], %(code)s::text[], %(target)s::date[], "
        "%(start)s::date[], %(end)s::date[]) AS s(slots, n, code, target, start, stop_end) "
        "ON s.slots = i.slots "
        # after_stop(slot, stop)
        "WHERE (i.stop IS NULL OR NOT (s.start > i.stop OR (i.closes AND s.stop_end >= i.stop))) "
        f"AND NOT EXISTS (SELECT 1 FROM {Visit._meta.db_table} AS v "
        "WHERE v.implant_id = i.implant_id AND v.timepoint = s.code)")
    counts = create_from_select_audited(
        Visit, source=source, order_by="i.n, s.n", actor=actor, count_by="status",
        values={"patient_id": "i.patient_id", "implant_id": "i.implant_id", "timepoint": "s.code",
                "target_date": "s.target", "window_start": "s.start", "window_end": "s.stop_end",
                "status": "CASE WHEN s.stop_end < i.today THEN %(past)s ELSE %(scheduled)s END"},
        reason="CASE WHEN status = %(past)s THEN %(past_reason)s ELSE %(reason)s END",
        params={**{name: array_literal(values) for name, values in {**implants, **slots}.items()},
                "past": VisitStatus.NOT_APPLICABLE.value,
                "scheduled": VisitStatus.SCHEDULED.value, "past_reason": past_reason,
                "reason": reason})
    return ScheduleChange(created=counts.get(VisitStatus.SCHEDULED.value, 0),
                          past=counts.get(VisitStatus.NOT_APPLICABLE.value, 0))


# A follow-up timepoint the protocol does not list (an extra m9, say) gets this window.
UNLISTED_WINDOW_DAYS = 14


def protocol_window(*, implant: Implant | None, timepoint: str) -> Slot | None:
    """Target date and window of the follow-up `timepoint` (m<months>) of `implant`, for a
    visit entered by hand (the admin's visit form), with the schedule's arithmetic.

    Promises: a timepoint the site's protocol (or the default) lists gets its window;
    any other follow-up month, or any timepoint when there is no protocol at all, gets
    +/- UNLISTED_WINDOW_DAYS around its target. None when it cannot be known: not a
    follow-up timepoint (baseline, trial_end, unscheduled), no implant, or no implant date.
    """
    months = timepoint_months(timepoint)
    if not months or implant is None or not implant.implant_date:
        return None
    protocol = protocol_for(site=implant.patient.site)
    listed = next((tp for tp in protocol.timepoints.all() if tp.months == months), None) \
        if protocol else None
    window = listed or ProtocolTimepoint(months=months, window_before_days=UNLISTED_WINDOW_DAYS,
                                         window_after_days=UNLISTED_WINDOW_DAYS)
    return timepoint_slot(implant_date=implant.implant_date, timepoint=window)

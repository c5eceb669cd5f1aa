"""A protocol edit and the schedules already planned from it: preview, then an explicit move.

Editing a follow-up protocol (windows, timepoints) changes what new implants get; the
visits already scheduled keep their dates until the data manager chooses to move them.
`protocol_move_preview` counts what a move would change, `protocol_schedules_move` does
it, implant by implant, with the schedule's own rules (scheduling._sync: completed visits
are never touched, follow-up stops hold) and the data manager's reason in every history
row.
"""

from dataclasses import dataclass

from django.db.models import Q

from registry.models import FollowUpProtocol, Implant, ProtocolTimepoint, Site, Visit
from registry.models.visits import timepoint_months

from .scheduling import NOT_DONE, ScheduleChange, implant_schedule_sync, timepoint_slot


@dataclass
class MovePreview:
    sites: list[str]  # codes of the sites following the protocol
    implants: int  # implants with an implant date at those sites
    moving: int  # visits not done whose target or window would change
    implants_moving: int  # implants with at least one of them
    new_timepoints: list[str]  # protocol timepoints some implant has no visit for yet
    implants_gaining: int  # implants that would get visits for them (up to their stop)


def protocol_sites(protocol: FollowUpProtocol):
    """The sites following `protocol`: their own, or the default's when they have none."""
    condition = Q(protocol=protocol)
    if protocol.is_default:
        condition |= Q(protocol__isnull=True)
    return Site.objects.filter(condition)


def protocol_move_preview(*, protocol: FollowUpProtocol) -> MovePreview:
    """What `protocol_schedules_move` would change, counted without writing (a few queries)."""
    site_ids = list(protocol_sites(protocol).values_list("pk", flat=True))
    codes = list(Site.objects.filter(pk__in=site_ids).order_by("code").values_list("code", flat=True))
    # Read afresh: a prefetched protocol (FollowUpProtocol.default) holds the old windows.
    timepoints = {tp.code: tp for tp in ProtocolTimepoint.objects.filter(protocol=protocol)}
    implants = dict(Implant.objects.filter(patient__site_id__in=site_ids, implant_date__isnull=False)
                    .values_list("pk", "implant_date"))
    moving, implants_moving = 0, set()
    have: dict[int, set[str]] = {pk: set() for pk in implants}
    rows = (Visit.objects.filter(implant_id__in=list(implants)).order_by()
            .values_list("implant_id", "timepoint", "status", "target_date", "window_start",
                         "window_end"))
    for implant_id, code, status, target, start, end in rows:
        have[implant_id].add(code)
        timepoint = timepoints.get(code)
        if timepoint is None or not timepoint_months(code) or status not in NOT_DONE:
            continue
        slot = timepoint_slot(implant_date=implants[implant_id], timepoint=timepoint)
        if (target, start, end) != (slot.target, slot.start, slot.end):
            moving += 1
            implants_moving.add(implant_id)
    missing = {code for codes_ in have.values() for code in set(timepoints) - codes_}
    gaining = sum(1 for codes_ in have.values() if set(timepoints) - codes_)
    return MovePreview(sites=codes, implants=len(implants), moving=moving,
                       implants_moving=len(implants_moving),
                       new_timepoints=sorted(missing, key=lambda c: timepoint_months(c) or 0),
                       implants_gaining=gaining)


def protocol_schedules_move(*, protocol: FollowUpProtocol, actor, reason: str) -> ScheduleChange:
    """Re-plan every implant at the protocol's sites from the protocol as it is now.
    Refuses (ValueError) an empty reason: every moved visit's history says why."""
    reason = (reason or "").strip()
    if not reason:
        raise ValueError("reason: say why the scheduled visits move (it goes into their history).")
    change = ScheduleChange()
    implants = Implant.objects.filter(patient__site__in=protocol_sites(protocol),
                                      implant_date__isnull=False).order_by("pk")
    for implant in implants.iterator(chunk_size=500):
        change += implant_schedule_sync(implant=implant, actor=actor, reason=reason)
    return change


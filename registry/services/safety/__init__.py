"""The safety workflow: reportability and deadlines (`reportability`), the immediate
alert for serious events (`alerts`), follow-up reports until an event is closed, and
device deficiencies with or without an adverse event."""

from django.core.exceptions import ValidationError
from django.db import transaction

from registry.models import AdverseEvent
from registry.models.safety import DeviceDeficiency, SafetyFollowUp

from ..audit import record_save
from .reportability import Reportability, deficiency_reportability, event_reportability

__all__ = ["Reportability", "deficiency_reportability", "device_deficiency_record",
           "event_reportability", "follow_up_record"]


def follow_up_record(*, follow_up: SafetyFollowUp, actor, reason: str = "") -> SafetyFollowUp:
    """Record a follow-up report; the event takes its outcome and resolution date (with
    history). Refuses a report on an event already closed (resolved, with sequelae,
    fatal): correct the event itself, with a reason, instead."""
    reason = reason or f"Follow-up report of {follow_up.report_date}"
    with transaction.atomic():
        event = AdverseEvent.objects.select_for_update().get(pk=follow_up.adverse_event_id)
        if event.is_closed and follow_up._state.adding:
            raise ValidationError({"adverse_event": f"The event is closed ({event.get_outcome_display()}"
                                                    f"); no more follow-up reports."})
        latest = event.follow_ups.order_by("-report_date").values_list("report_date", flat=True).first()
        if follow_up._state.adding and latest and follow_up.report_date and \
                follow_up.report_date < latest:
            raise ValidationError({"report_date": f"A later follow-up ({latest}) is recorded; "
                                                  f"reports come in date order."})
        follow_up.adverse_event = event
        record_save(follow_up, actor=actor, reason=reason)
        event.outcome, event.resolved_on = follow_up.outcome, follow_up.resolved_on
        record_save(event, actor=actor, reason=reason)
    return follow_up


def device_deficiency_record(*, deficiency: DeviceDeficiency, actor, reason: str = "",
                             expected_version: int | None = None) -> DeviceDeficiency:
    return record_save(deficiency, actor=actor, reason=reason or "Device deficiency",
                       expected_version=expected_version)

"""Follow-up schedules from the protocol (see the reminders issue)."""

from registry.models import Implant


def implant_schedule_sync(*, implant: Implant, actor) -> None:
    """Create or move the implant's follow-up visits from its site's protocol.

    Not yet implemented: the follow-up issue fills this in. Kept as the single
    call site so every channel that saves an implant already goes through it.
    """
    return None


def patient_schedule_sync(*, patient, actor) -> None:
    """Stop future visits of a withdrawn patient (marked not applicable, kept).

    Not yet implemented: the follow-up issue fills this in.
    """
    return None

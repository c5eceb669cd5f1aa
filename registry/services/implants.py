"""Recording implants; keeps the follow-up schedule in step."""

from django.db import transaction

from registry.models import Implant

from . import components, scheduling
from .audit import record_save
from .patients import implant_ref_next


def implant_save(*, implant: Implant, actor, reason: str = "", expected_version=None) -> Implant:
    """Create or change an implant and (re)build its follow-up schedule.

    A new or moved implant date reschedules visits not yet done; an explant
    stops the visits after it and removes the components still in place.
    Completed visits never move.
    """
    with transaction.atomic():
        if not implant.ref and implant.patient_id:
            implant.ref = implant_ref_next(patient=implant.patient)
        record_save(implant, actor=actor, reason=reason, expected_version=expected_version)
        # The visits the change moves or stops carry its reason in their history too.
        scheduling.implant_schedule_sync(implant=implant, actor=actor, reason=reason)
        # An explant removes the components still in place (services.components).
        components.explant_components_sync(implant=implant, actor=actor, reason=reason)
    return implant

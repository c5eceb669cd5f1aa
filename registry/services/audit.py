"""Saving clinical rows with their audit trail, in every channel.

`record_save` and `record_delete` are the only way services write clinical
rows: they validate (`full_clean`), refuse stale edits (optimistic locking on
`version`), require a reason when data that was already complete is changed,
and put the acting user and the reason on the history row, also where there is
no request (commands, tasks, imports).
"""

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction

from registry.models import AdverseEvent, Visit, VisitStatus
from registry.models.events import CLOSED_OUTCOMES

SYSTEM_USERNAME = "registry-system"


class StaleEdit(ValidationError):
    """Someone else saved the record after this edit started."""


def system_user():
    """The user tasks and scheduled jobs act as (inactive: it cannot log in)."""
    User = get_user_model()
    user, _ = User.objects.get_or_create(
        username=SYSTEM_USERNAME,
        defaults={"is_active": False, "first_name": "Registry", "last_name": "scheduler"},
    )
    return user


def was_complete(row) -> bool:
    """Data that needs a reason to change (ICH E6(R3)): completed visits and
    closed adverse events."""
    if isinstance(row, Visit):
        return row.status == VisitStatus.COMPLETED
    if isinstance(row, AdverseEvent):
        return row.outcome in CLOSED_OUTCOMES
    return False


def attach_audit(instance, *, actor, reason: str = ""):
    """Set the history user and reason simple-history reads at save time."""
    instance._history_user = actor
    instance._change_reason = reason or ""


def record_save(instance, *, actor, reason: str = "", expected_version: int | None = None,
                exclude: list[str] | None = None, validate: bool = True):
    """Validate and save `instance` as `actor`, with history.

    Refuses (ValidationError) when the row changed since `expected_version` was
    read, or when a completed visit / closed event is changed without a reason.
    """
    reason = (reason or "").strip()
    with transaction.atomic():
        if instance.pk:
            current = type(instance).objects.select_for_update().filter(pk=instance.pk).first()
            if current is not None:
                version = instance.version if expected_version is None else expected_version
                if current.version != version:
                    raise StaleEdit(
                        f"This {instance._meta.verbose_name} was changed by someone else "
                        "while you were editing it. Reload the page to see their change, "
                        "then enter yours again.",
                        code="stale",
                    )
                if was_complete(current) and not reason:
                    raise ValidationError(
                        {"__all__": "This record was already complete: give a reason for the change."},
                        code="reason_required",
                    )
                instance.version = current.version + 1
        if validate:
            instance.full_clean(exclude=exclude)
        attach_audit(instance, actor=actor, reason=reason)
        instance.save()
    return instance


def record_delete(instance, *, actor, reason: str = ""):
    attach_audit(instance, actor=actor, reason=reason)
    instance.delete()

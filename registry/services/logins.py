"""Sign-in lockout (django-axes' AccessAttempt rows): what is locked, and unlocking.

A user name is locked after REGISTRY_LOGIN_FAILURES failed sign-ins within
REGISTRY_LOCKOUT_MINUTES, an address after REGISTRY_LOGIN_FAILURES_PER_IP; a lock
ends REGISTRY_LOCKOUT_MINUTES after the last failure, or when a data manager
unlocks it (`login_unlock`), which is in the user's history with who and why.
"""

import datetime
from dataclasses import dataclass

from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max, Sum
from django.utils import timezone

LOCKED_GENERIC = ("Sign-in is locked after too many failed attempts. Try again later, or ask a "
                  "data manager to unlock it.")


@dataclass(frozen=True)
class Lockout:
    what: str  # "username" or "address"
    until: datetime.datetime

    @property
    def message(self) -> str:
        minutes = settings.REGISTRY_LOCKOUT_MINUTES
        until = f"{self.until:%H:%M} UTC"
        if self.what == "username":
            return (f"This user name is locked after {settings.REGISTRY_LOGIN_FAILURES} failed "
                    f"sign-ins: even the right password is refused until {until} ({minutes} "
                    "minutes after the last attempt), or until a data manager unlocks it.")
        return (f"Sign-in from your network address is locked after "
                f"{settings.REGISTRY_LOGIN_FAILURES_PER_IP} failed attempts: try again after "
                f"{until} ({minutes} minutes after the last attempt), or ask a data manager.")


def _recent(**filters):
    return AccessAttempt.objects.filter(attempt_time__gte=counting_since(), **filters).aggregate(
        failures=Sum("failures_since_start"), last=Max("attempt_time"))


def lockout_state(*, username: str = "", ip_address: str | None = None) -> Lockout | None:
    """The lock on `username` (or else on `ip_address`) now, or None."""
    cool_off = datetime.timedelta(minutes=settings.REGISTRY_LOCKOUT_MINUTES)
    if username:
        found = _recent(username=username)
        if (found["failures"] or 0) >= settings.REGISTRY_LOGIN_FAILURES:
            return Lockout("username", found["last"] + cool_off)
    if ip_address:
        found = _recent(ip_address=ip_address)
        if (found["failures"] or 0) >= settings.REGISTRY_LOGIN_FAILURES_PER_IP:
            return Lockout("address", found["last"] + cool_off)
    return None


def counting_since() -> datetime.datetime:
    """Failures from this moment on still count towards a lock."""
    return timezone.now() - datetime.timedelta(minutes=settings.REGISTRY_LOCKOUT_MINUTES)


def login_unlock(*, username: str, actor, reason: str) -> int:
    """Unlock sign-in for `username` (its failed attempts are cleared), as `actor`, with
    `reason`; how many attempt records were cleared.

    Refuses an empty reason and an actor unlocking herself. The unlock is a history
    row of the user (when the user name exists) carrying `actor` and `reason`; the
    failures themselves stay in the access failure log.
    """
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": "Say why you unlock this sign-in."})
    if actor is not None and actor.get_username() == username:
        raise ValidationError("You cannot unlock your own sign-in: ask another data manager.")
    with transaction.atomic():
        cleared, _ = AccessAttempt.objects.filter(username=username).delete()
        user = get_user_model().objects.filter(username=username).first()
        if user is not None:
            user._history_user = actor
            user._change_reason = f"sign-in unlocked: {reason}"
            user.save()  # nothing changes on the row; its history row is the record
    return cleared

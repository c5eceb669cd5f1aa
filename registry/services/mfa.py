"""Second factor (django-otp): an authenticator app (TOTP) and ten backup codes.

`mfa_required` says who must use it (REGISTRY_MFA_REQUIRED_ROLES; superusers count
as data managers). Enrolment is two steps: `mfa_totp_start` gives an unconfirmed
device whose secret the user scans, `mfa_totp_confirm` confirms it with a code
from the app and returns the backup codes, shown once. `mfa_reset` (a data
manager, for a lost phone) removes a user's devices, with who and why in the
user's history.
"""

import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from . import access
from .users import user_manage_refusal

BACKUP_CODES = 10
APP_NAME = "Authenticator app"
BACKUP_NAME = "Backup codes"


def mfa_required(user) -> bool:
    """Whether `user`'s role must sign in with a second factor."""
    return access.role_name(user) in set(settings.REGISTRY_MFA_REQUIRED_ROLES)


def mfa_enrolled(user) -> bool:
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def mfa_totp_start(*, user) -> TOTPDevice:
    """The user's unconfirmed authenticator device (a new secret if she has none)."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name=APP_NAME, confirmed=False)
    return device


def mfa_totp_confirm(*, user, token: str) -> tuple[TOTPDevice, list[str]]:
    """Confirm the unconfirmed device with a code from the app; returns the device and
    new backup codes (replacing any earlier ones). Refuses a wrong code."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).first()
    token = (token or "").strip().replace(" ", "")
    if device is None:
        raise ValidationError({"token": "Start the set-up again: no authenticator is waiting."})
    allowed, _ = device.verify_is_allowed()
    if not allowed:  # django-otp's throttle: a wait that doubles with each wrong code
        raise ValidationError({"token": "Too many wrong codes in a row: wait a few seconds and "
                                        "type the code the app shows then."})
    if not token.isdigit() or not device.verify_token(token):
        raise ValidationError({"token": f"'{token}' is not the current code of your "
                                        "authenticator app; check its clock and try again."})
    with transaction.atomic():
        device.confirmed = True
        device.save()
        # One authenticator per user: a new one replaces the old.
        TOTPDevice.objects.filter(user=user, confirmed=True).exclude(pk=device.pk).delete()
        codes = mfa_backup_codes_new(user=user)
    return device, codes


def mfa_backup_codes_new(*, user) -> list[str]:
    """Ten new single-use backup codes (the old ones stop working)."""
    static, _ = StaticDevice.objects.get_or_create(user=user, name=BACKUP_NAME,
                                                   defaults={"confirmed": True})
    static.token_set.all().delete()
    codes = [secrets.token_hex(4) for _ in range(BACKUP_CODES)]
    StaticToken.objects.bulk_create([StaticToken(device=static, token=c) for c in codes])
    return codes


def mfa_reset(*, user, actor, reason: str) -> int:
    """Remove `user`'s second-factor devices so she enrols again at her next sign-in.

    Refuses an empty reason and what users.user_manage_refusal refuses. Recorded as
    a history row of the user with `actor` and `reason`.
    """
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": "Say why you reset this user's second factor."})
    refusal = user_manage_refusal(actor, user)
    if refusal:
        raise ValidationError(refusal)
    with transaction.atomic():
        removed = TOTPDevice.objects.filter(user=user).delete()[0]
        removed += StaticDevice.objects.filter(user=user).delete()[0]
        user._history_user = actor
        user._change_reason = f"second factor reset: {reason}"
        user.save()
    return removed

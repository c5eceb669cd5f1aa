"""API tokens: 32 upper-case hex characters (REDCap's shape), stored hashed.

A token lives REGISTRY_API_TOKEN_DAYS (365) unless a shorter life is asked for,
never longer than REGISTRY_API_TOKEN_MAX_DAYS. It works only while its user is
active, and it is revoked (with who and why in its history) when she is
deactivated, loses or changes her role, or changes her password.
"""

import datetime
import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from registry.models import ApiToken, hash_token


def api_token_create(*, user, label: str = "", expires_in_days: int | None = None, actor=None,
                     reason: str = "") -> str:
    """Create a token for `user` and return its key; only the hash is kept.

    Refuses an inactive user and a lifetime under one day or over
    REGISTRY_API_TOKEN_MAX_DAYS (naming the value). The creation is in the token's
    history with `actor` and `reason`. (A user without a registry role may hold a
    token, but every endpoint answers her 403.)
    """
    days = settings.REGISTRY_API_TOKEN_DAYS if expires_in_days is None else expires_in_days
    maximum = settings.REGISTRY_API_TOKEN_MAX_DAYS
    if not 1 <= days <= maximum:
        raise ValidationError({"expires_in_days": f"A token lives 1 to {maximum} days, not {days}."})
    if not user.is_active:
        raise ValidationError({"user": f"User '{user.username}' is inactive."})
    key = secrets.token_hex(16).upper()
    token = ApiToken(user=user, key_hash=hash_token(key), prefix=key[:4], label=label,
                     expires_at=timezone.now() + datetime.timedelta(days=days))
    _audit(token, actor, reason or "token created")
    token.save()
    return key


def api_token_check(key: str) -> ApiToken | None:
    """The live token for `key` (unexpired, not revoked, its user active), or None."""
    key = (key or "").strip()
    if len(key) != 32:
        return None
    token = (
        ApiToken.objects.active()
        .select_related("user")
        .filter(key_hash=hash_token(key), user__is_active=True)
        .first()
    )
    if token is None:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > datetime.timedelta(minutes=5):
        # A plain update: a use is not a change of the token, so no history row.
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token


def api_token_user(key: str):
    """The active user a token belongs to, or None (unknown, revoked, expired)."""
    token = api_token_check(key)
    return token.user if token else None


def api_token_revoke(*, token: ApiToken, actor=None, reason: str = "token revoked") -> bool:
    """Revoke `token` (True), with `actor` and `reason` in its history; False if it
    was revoked already."""
    with transaction.atomic():
        token = ApiToken.objects.select_for_update().get(pk=token.pk)
        if token.revoked_at is not None:
            return False
        token.revoked_at = timezone.now()
        _audit(token, actor, reason)
        token.save(update_fields=["revoked_at"])
    return True


def api_tokens_revoke_all(*, user, actor=None, reason: str) -> int:
    """Revoke every live token of `user`; how many were revoked."""
    revoked = 0
    for token in ApiToken.objects.filter(user=user, revoked_at__isnull=True):
        revoked += api_token_revoke(token=token, actor=actor, reason=reason)
    return revoked


def _audit(token: ApiToken, actor, reason: str) -> None:
    # Without an actor, simple-history takes the request's user (HistoryRequestMiddleware).
    if actor is not None:
        token._history_user = actor
    token._change_reason = reason

"""API tokens: 32 upper-case hex characters (REDCap's shape), stored hashed."""

import datetime
import secrets

from django.utils import timezone

from registry.models import ApiToken, hash_token


def api_token_create(*, user, label: str = "", expires_in_days: int | None = None) -> str:
    """Create a token for `user` and return its key; only the hash is kept."""
    key = secrets.token_hex(16).upper()
    expires_at = None
    if expires_in_days is not None:
        expires_at = timezone.now() + datetime.timedelta(days=expires_in_days)
    ApiToken.objects.create(
        user=user, key_hash=hash_token(key), prefix=key[:4], label=label, expires_at=expires_at
    )
    return key


def api_token_user(key: str):
    """The active user a token belongs to, or None (unknown, revoked, expired)."""
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
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user


def api_token_revoke(*, token: ApiToken) -> None:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])

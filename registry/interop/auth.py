"""Token look-up shared by the REDCap and FHIR channels (same tokens as /api/v1/),
with the same per-token rate as /api/v1/ (registry.services.throttling)."""

from registry.services.throttling import token_wait
from registry.services.tokens import api_token_check


class RateLimited(Exception):
    """The token is over REGISTRY_API_RATE; retry after `wait` seconds."""

    def __init__(self, wait: int):
        super().__init__(f"Too many requests with this token: retry after {wait} seconds.")
        self.wait = wait


def token_user(key: str):
    """The user of token `key`, or None; raises RateLimited when the token is over its rate."""
    token = api_token_check(key)
    if token is None:
        return None
    wait = token_wait(token)
    if wait is not None:
        raise RateLimited(wait)
    return token.user


def header_token_user(request):
    """The user of `Authorization: Token|Bearer <key>`, or None (RateLimited as token_user)."""
    parts = request.headers.get("Authorization", "").split()
    if len(parts) != 2 or parts[0].lower() not in ("token", "bearer"):
        return None
    return token_user(parts[1])

"""One request rate per API token (REGISTRY_API_RATE, default 600/min, REDCap's
convention), counted in the cache, for /api/v1/ and the REDCap and FHIR endpoints.

DRF calls TokenRateThrottle itself; the plain Django views of /redcap/api/ and
/fhir/ call `token_wait` from their token check (registry.interop.auth), so all
three share the counters and the setting. It is a service (below the channels) so
that both channel layers read the one rule; DRF's SimpleRateThrottle does the
counting. Without a token (the browsable API in the admin session, the open schema
pages) the count is per user, else per address.
"""

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle

from registry.models import ApiToken


class TokenRateThrottle(SimpleRateThrottle):
    scope = "registry_api"

    def get_rate(self):
        # Read at each request (not from DRF's settings at import), so tests and
        # operators can change it like any other setting.
        return settings.REGISTRY_API_RATE

    def get_cache_key(self, request, view):
        token = getattr(request, "auth", None)
        if isinstance(token, ApiToken):
            ident = f"token-{token.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"user-{request.user.pk}"
        else:
            ident = f"address-{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}

    def count_token(self, token: ApiToken) -> bool:
        """Count one request of `token`; False when it is over the rate."""
        self.key = self.cache_format % {"scope": self.scope, "ident": f"token-{token.pk}"}
        self.history = self.cache.get(self.key, [])
        self.now = self.timer()
        while self.history and self.history[-1] <= self.now - self.duration:
            self.history.pop()
        if len(self.history) >= self.num_requests:
            return self.throttle_failure()
        return self.throttle_success()


def token_wait(token: ApiToken) -> int | None:
    """Count one request of `token`: None when allowed, else whole seconds to wait."""
    throttle = TokenRateThrottle()
    if throttle.count_token(token):
        return None
    wait = throttle.wait()
    return max(1, int(wait + 0.999)) if wait is not None else 1


# --- The questionnaire pages (registry/epro): no user, no token, so per address -----------

class EproRateThrottle(SimpleRateThrottle):
    """Questionnaire pages per network address (REGISTRY_EPRO_RATE)."""

    scope = "epro"

    def get_rate(self):
        return settings.REGISTRY_EPRO_RATE

    def count_address(self, address: str) -> bool:
        """Count one page of `address`; False when it is over the rate."""
        self.key = self.cache_format % {"scope": self.scope, "ident": address}
        self.history = self.cache.get(self.key, [])
        self.now = self.timer()
        while self.history and self.history[-1] <= self.now - self.duration:
            self.history.pop()
        if len(self.history) >= self.num_requests:
            return self.throttle_failure()
        return self.throttle_success()


def _failure_key(address: str) -> str:
    return f"epro-failures-{address}"


def epro_address_allowed(address: str) -> bool:
    """Count a questionnaire page of `address`: False when it is over the rate, or has
    tried REGISTRY_EPRO_FAILURES_PER_IP unknown or dead links within the lockout time
    (REGISTRY_LOCKOUT_MINUTES, as for sign-ins): guessing links is refused long before
    it could find one (256-bit tokens make that hopeless anyway)."""
    from django.core.cache import cache

    if (cache.get(_failure_key(address)) or 0) >= settings.REGISTRY_EPRO_FAILURES_PER_IP:
        return False
    return EproRateThrottle().count_address(address)


def epro_failure(address: str) -> None:
    """Count an unknown or dead link tried from `address`."""
    from django.core.cache import cache

    key = _failure_key(address)
    cache.add(key, 0, timeout=settings.REGISTRY_LOCKOUT_MINUTES * 60)
    try:
        cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=settings.REGISTRY_LOCKOUT_MINUTES * 60)

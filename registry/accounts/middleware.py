"""Session limits and "second factor first", for every request with a session.

SessionLimitsMiddleware signs a user out after REGISTRY_SESSION_IDLE_MINUTES
without a request and REGISTRY_SESSION_MAX_HOURS after she signed in; the
admin's page script (admin/base_site.html) warns before the idle sign-out.
MfaRequiredMiddleware (after django-otp's OTPMiddleware) sends a user whose role
needs a second factor, and who has not given one in this session, to the
second-factor pages before any admin page; outside the admin (the browsable
API) such a session counts as not signed in, so only a token gets in there.
"""

import time
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.models import AnonymousUser
from django.shortcuts import redirect
from django.urls import reverse

from registry.services.mfa import mfa_enrolled, mfa_required

SIGNED_IN_AT = "registry_signed_in_at"
LAST_SEEN_AT = "registry_last_seen_at"
# The keep-alive ping of the warning banner is a request like any other; the page
# script's own timer asks the server without extending the session.
PASSIVE_PATHS = ("/account/session/",)


def _admin_prefix() -> str:
    return reverse("admin:index")


class SessionLimitsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and hasattr(request, "session"):
            expired = self._expired(request)
            if expired:
                logout(request)
                messages.info(request, expired)  # shown on the login page
                if request.path.startswith(_admin_prefix()):
                    login = reverse("admin:login")
                    return redirect(f"{login}?{urlencode({'next': request.get_full_path()})}")
        return self.get_response(request)

    def _expired(self, request) -> str | None:
        session = request.session
        now = time.time()
        signed_in = session.get(SIGNED_IN_AT)
        last_seen = session.get(LAST_SEEN_AT)
        if signed_in is None:  # the first request after signing in
            session[SIGNED_IN_AT] = session[LAST_SEEN_AT] = now
            return None
        idle = settings.REGISTRY_SESSION_IDLE_MINUTES * 60
        if now - signed_in > settings.REGISTRY_SESSION_MAX_HOURS * 3600:
            return (f"You were signed out {settings.REGISTRY_SESSION_MAX_HOURS:g} hours after "
                    "signing in. Sign in again.")
        if last_seen is not None and now - last_seen > idle:
            return (f"You were signed out after {settings.REGISTRY_SESSION_IDLE_MINUTES:g} "
                    "minutes without activity. Sign in again.")
        if request.path not in PASSIVE_PATHS and now - (last_seen or 0) > min(60, idle / 10):
            # Written at most once a minute (a session save per request would be a
            # database write per page); the idle limit is that much less exact.
            session[LAST_SEEN_AT] = now
        return None


class MfaRequiredMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if (user is not None and user.is_authenticated and not user.is_verified()
                and mfa_required(user) and not self._exempt(request.path)):
            if request.path.startswith(_admin_prefix()):
                target = "accounts:mfa-verify" if mfa_enrolled(user) else "accounts:mfa-setup"
                return redirect(f"{reverse(target)}?{urlencode({'next': request.get_full_path()})}")
            request.user = AnonymousUser()
        return self.get_response(request)

    @staticmethod
    def _exempt(path: str) -> bool:
        exempt = [reverse("admin:logout"), reverse("admin:login"), reverse("admin:jsi18n"),
                  "/account/", settings.STATIC_URL if settings.STATIC_URL.startswith("/")
                  else "/" + settings.STATIC_URL]
        return any(path.startswith(prefix) for prefix in exempt)

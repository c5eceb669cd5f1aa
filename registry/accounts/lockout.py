"""django-axes, fitted to the registry: one limit per user name, one per address,
and a lockout answer that is the login page saying what happened in plain words."""

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.db.models import Sum
from django.shortcuts import render

from registry.services import logins


class RegistryAxesHandler(AxesDatabaseHandler):
    """Axes' database handler with a limit per lockout parameter.

    Axes compares one count with one limit (AXES_FAILURE_LIMIT, our
    REGISTRY_LOGIN_FAILURES) over AXES_LOCKOUT_PARAMETERS = [username, ip_address].
    A whole ward may sign in from one address, so the address gets its own, higher
    limit (REGISTRY_LOGIN_FAILURES_PER_IP): an address that reached it counts as
    having reached the user-name limit.
    """

    def get_failures(self, request, credentials=None) -> int:
        by_username, by_address = (
            attempts.aggregate(total=Sum("failures_since_start"))["total"] or 0
            for attempts in self.get_user_attempts(request, credentials)
        )
        if by_address >= settings.REGISTRY_LOGIN_FAILURES_PER_IP:
            return max(by_username, settings.REGISTRY_LOGIN_FAILURES)
        return by_username

    def reset_user_attempts(self, request, credentials=None) -> int:
        # A successful sign-in clears that user name's failures only. Axes would also
        # clear the address's, so anyone with an account at the same ward address
        # could wipe the count against another user name between guesses.
        by_username = self.filter_user_attempts(request, credentials)[0]
        return by_username.delete()[0]


def lockout_response(request, original_response=None, credentials=None):
    """The admin login page again, with why sign-in is refused and until when."""
    username = get_client_username(request, credentials) or ""
    state = logins.lockout_state(username=username, ip_address=getattr(request, "axes_ip_address", None))
    context = {
        **admin.site.each_context(request),
        "title": "Log in",
        "app_path": request.get_full_path(),
        "form": AdminAuthenticationForm(request, initial={"username": username}),
        "lockout_message": state.message if state else logins.LOCKED_GENERIC,
        "next": request.POST.get("next") or request.GET.get("next") or "",
    }
    # 429 Too Many Requests, as django-axes answers by default. Rendered now: the
    # middleware after the view gets it, too late for a TemplateResponse.
    return render(request, "registry/accounts/locked.html", context, status=429)

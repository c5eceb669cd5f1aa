"""Template context for the admin's session timer (admin/base_site.html)."""

from django.conf import settings


def session_timer(request):
    return {"session_timer": {
        "idle_seconds": round(settings.REGISTRY_SESSION_IDLE_MINUTES * 60),
        "warning_seconds": settings.REGISTRY_SESSION_WARNING_SECONDS,
    }}

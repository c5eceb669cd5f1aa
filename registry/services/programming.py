"""Programming sessions: recording them, and an implant's current settings.

Promises: a session is saved only when valid (ranges, dates within the implant's life,
a closed-loop target only for closed-loop sessions) with the actor and a reason in its
history; `latest_settings` is the latest session by date (then the one entered last),
the same row the implants dataset reads (`models.programming.latest_session_value`).
"""

from registry.models import Implant, ProgrammingSession

from .audit import record_delete, record_save


def programming_session_save(*, session: ProgrammingSession, actor, reason: str = "",
                             expected_version: int | None = None) -> ProgrammingSession:
    return record_save(session, actor=actor, reason=reason or "Programming session",
                       expected_version=expected_version)


def programming_session_delete(*, session: ProgrammingSession, actor, reason: str) -> None:
    record_delete(session, actor=actor, reason=reason)


def latest_settings(implant: Implant) -> ProgrammingSession | None:
    return implant.programming_sessions.order_by("-date", "-pk").first()

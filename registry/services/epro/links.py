"""Questionnaire links: who may get one, making one, checking one, revoking one.

A link is `SITE_URL/q/<token>/`, the token `secrets.token_urlsafe(32)` (256 random
bits); only its SHA-256 is stored, so the database cannot hand a link out again
(resending makes a new one). A link works from its visit's window start until the
window end plus REGISTRY_EPRO_GRACE_DAYS (the site's days), while the visit is
scheduled, the patient may be contacted (`may_contact`) and the link is neither
revoked nor submitted. Every creation and revocation is in the link's history
with who and why.
"""

import datetime
import re
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from registry.models import (
    ConsentStatus,
    EproChannel,
    EproLink,
    Patient,
    PatientIdentifiers,
    Visit,
    VisitStatus,
    hash_link_token,
)
from registry.models.disposition import follow_up_ended_q

from ..audit import attach_audit, system_user
from ..dates import site_today
from .questions import questions_for

TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")  # secrets.token_urlsafe(32)
PATIENT_USERNAME = "registry-patient"
NOT_YET = "not_yet"


def grace_days() -> int:
    return settings.REGISTRY_EPRO_GRACE_DAYS


def may_contact(prefix: str = "", *, on: datetime.date) -> Q:
    """Patients who may be sent or handed a questionnaire link on the day `on`: consent
    to be contacted given, follow-up not ended by then (a withdrawal, or a disposition
    that ends follow-up: lost, deceased, completed, transferred out; the rule of
    `Patient.objects.in_follow_up`). The one rule for the job, the link page, the
    command and the admin. `prefix` reaches the patient from another model ("patient__")."""
    return (Q(**{f"{prefix}epro_consent_date__isnull": False})
            & ~Q(**{f"{prefix}consent_status": ConsentStatus.WITHDRAWN})
            & ~follow_up_ended_q(on, patient=prefix.removesuffix("__")))


def _follow_up_stop(patient: Patient, on: datetime.date | None):
    from ..disposition import follow_up_stop_of

    stop = follow_up_stop_of(patient)
    if stop is None or (on is not None and stop.date > on):
        return None
    return stop


def may_contact_row(patient: Patient, *, on: datetime.date | None = None) -> bool:
    """`may_contact` for a loaded patient (`on`: default the site's today). Keep the
    two in step: a test checks they agree on every case."""
    if patient.epro_consent_date is None or patient.consent_status == ConsentStatus.WITHDRAWN:
        return False
    return _follow_up_stop(patient, on or site_today(patient.site.timezone)) is None


def may_email(prefix: str = "", *, on: datetime.date) -> Q:
    """`may_contact`, and she chose e-mail."""
    return may_contact(prefix, on=on) & Q(**{f"{prefix}epro_channel__in": [EproChannel.EMAIL,
                                                                           EproChannel.BOTH]})


def contact_refusal(patient: Patient, *, on: datetime.date | None = None) -> str | None:
    """Why `patient` may not be given a link (None: she may), in the nurse's words."""
    on = on or site_today(patient.site.timezone)
    if may_contact_row(patient, on=on):
        return None
    if patient.consent_status == ConsentStatus.WITHDRAWN:
        return f"{patient.registry_id} has withdrawn: no questionnaire links."
    if patient.epro_consent_date is None:
        return (f"{patient.registry_id} has not consented to questionnaire links "
                "(no date of consent on the patient page).")
    stop = _follow_up_stop(patient, on)
    return f"{patient.registry_id}: follow-up ended ({stop.why if stop else 'disposition'}): " \
           "no questionnaire links."


def patient_email(patient: Patient) -> str:
    return (PatientIdentifiers.objects.filter(patient=patient).values_list("email", flat=True)
            .first() or "")


def patient_user():
    """The user the patient's submissions are recorded as: inactive, not staff
    (never a person of the clinic; the link's id is in the history reason)."""
    user, _ = get_user_model().objects.get_or_create(
        username=PATIENT_USERNAME,
        defaults={"is_active": False, "is_staff": False, "first_name": "Patient",
                  "last_name": "(questionnaire link)"})
    return user


def valid_days(visit: Visit) -> tuple[datetime.date, datetime.date] | None:
    """First and last day (the site's) on which links of `visit` work."""
    if not (visit.window_start and visit.window_end):
        return None
    return visit.window_start, visit.window_end + datetime.timedelta(days=grace_days())


def link_problem(link: EproLink, *, now: datetime.datetime | None = None,
                 visit_status: bool = True) -> str | None:
    """Why `link` does not work now (None: it does; NOT_YET: its window has not
    opened). Reads the link's visit, patient and site (select them with it).
    `visit_status=False` leaves out "the visit is no longer scheduled" (the submit
    keeps those answers as a conflict for the nurse)."""
    if link.revoked_at:
        return "revoked"
    if link.submitted_at:
        return "submitted"
    visit = link.visit
    if visit_status and visit.status != VisitStatus.SCHEDULED:
        return f"visit {visit.get_status_display().lower()}"
    today = site_today(visit.patient.site.timezone, now or timezone.now())
    if not may_contact_row(visit.patient, on=today):
        return "patient may not be contacted"
    days = valid_days(visit)
    if days is None:
        return "visit has no window"
    if today > days[1]:
        return "expired"
    if today < days[0]:
        return NOT_YET
    return None


def _check_visit(visit: Visit, today: datetime.date) -> None:
    refusal = contact_refusal(visit.patient, on=today)
    if refusal:
        raise ValidationError({"patient": refusal})
    if visit.status != VisitStatus.SCHEDULED:
        raise ValidationError({"visit": f"Visit {visit} is {visit.get_status_display().lower()}: "
                                        "only a scheduled visit gets a questionnaire link."})
    if not questions_for(visit):
        raise ValidationError({"visit": f"Visit {visit} has no questionnaire (baseline and "
                                        "unscheduled visits are answered in clinic)."})
    days = valid_days(visit)
    if days is None or today > days[1]:
        raise ValidationError({"visit": f"The window of visit {visit} has closed"
                                        + (f" ({days[1].isoformat()} with the grace days)."
                                           if days else ".")})


def link_create(*, visit: Visit, channel: str, actor=None, reason: str = "",
                now: datetime.datetime | None = None) -> tuple[EproLink, str]:
    """A new link for `visit` and its token (shown once: only the hash is kept).

    Refuses (ValidationError naming the field) a patient who may not be contacted,
    a visit that is not scheduled, has no questionnaire, or whose window (plus the
    grace days) has closed. `actor` None: the reminder job (the system user).
    """
    now = now or timezone.now()
    visit = Visit.objects.select_related("patient__site").get(pk=visit.pk)  # as it is now
    _check_visit(visit, site_today(visit.patient.site.timezone, now))
    token = secrets.token_urlsafe(32)
    link = EproLink(visit=visit, token_hash=hash_link_token(token), channel=channel,
                    created_at=now, created_by=actor)
    attach_audit(link, actor=actor or system_user(),
                 reason=reason or f"questionnaire link created ({link.get_channel_display()})")
    link.save()
    return link, token


def link_url(token: str) -> str:
    return settings.SITE_URL + reverse("epro:questionnaire", args=[token])


def link_find(token: str) -> EproLink | None:
    """The link of `token` (any state), or None for a token that is not one."""
    if not TOKEN_RE.match(token or ""):
        return None
    return (EproLink.objects.select_related("visit__patient__site")
            .filter(token_hash=hash_link_token(token)).first())


def link_opened(link: EproLink) -> None:
    """Note the first opening (a plain update: opening changes nothing to audit)."""
    if link.opened_at is None:
        link.opened_at = timezone.now()
        EproLink.objects.filter(pk=link.pk, opened_at__isnull=True).update(opened_at=link.opened_at)


def link_revoke(*, link: EproLink, actor, reason: str = "revoked by the clinic") -> bool:
    """Revoke `link` (True), with who and why in its history; False when it was
    revoked or submitted already."""
    with transaction.atomic():
        link = EproLink.objects.select_for_update().get(pk=link.pk)
        if link.revoked_at or link.submitted_at:
            return False
        link.revoked_at = timezone.now()
        link.revoked_reason = reason[:200]
        attach_audit(link, actor=actor, reason=reason)
        link.save()
    return True


def links_revoke_for(*, visit: Visit, actor, reason: str) -> int:
    """Revoke every live link of `visit` (before a resend): how many."""
    return sum(link_revoke(link=link, actor=actor, reason=reason)
               for link in EproLink.objects.filter(visit=visit, revoked_at__isnull=True,
                                                   submitted_at__isnull=True))


STATUSES = ("out", "opened", "submitted", "conflict", "expired", "revoked", "closed")


def link_status(link: EproLink, *, now: datetime.datetime | None = None) -> str:
    """How the nurse sees a link: out, opened, submitted, conflict (submitted after
    she entered the visit), expired, revoked, or closed (the visit was entered or
    follow-up ended before the patient answered)."""
    if link.conflict is not None:
        return "conflict"
    if link.submitted_at:
        return "submitted"
    if link.revoked_at:
        return "revoked"
    problem = link_problem(link, now=now)
    if problem == "expired":
        return "expired"
    if problem not in (None, NOT_YET):
        return "closed"
    return "opened" if link.opened_at else "out"


def visit_to_ask(*, registry_id: str, timepoint: str, implant_ref: str = "") -> Visit:
    """The visit a printed link is for: the patient's scheduled visit at `timepoint`
    (of `implant_ref` when she has more than one implant). Refuses (ValidationError
    naming the field and value) an unknown patient, timepoint or implant, and a choice
    of two."""
    patient = Patient.objects.select_related("site").filter(registry_id=registry_id).first()
    if patient is None:
        raise ValidationError({"registry_id": f"No patient '{registry_id}'."})
    visits = Visit.objects.select_related("patient__site", "implant").filter(
        patient=patient, timepoint=timepoint)
    if implant_ref:
        visits = visits.filter(implant__ref=implant_ref)
    found = list(visits)
    scheduled = [v for v in found if v.status == VisitStatus.SCHEDULED]
    if not found:
        raise ValidationError({"timepoint": f"{registry_id} has no visit at timepoint '{timepoint}'"
                                            + (f" of implant '{implant_ref}'." if implant_ref else ".")})
    if len(scheduled) > 1:
        raise ValidationError({"implant": f"{registry_id} has {len(scheduled)} scheduled '{timepoint}' "
                                          "visits (one per implant); name the implant."})
    return scheduled[0] if scheduled else found[0]

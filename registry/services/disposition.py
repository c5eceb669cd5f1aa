"""Disposition: recording how a patient's follow-up goes on or ends, and what follows.

The rule of which disposition ends follow-up lives with the model
(`models/disposition.py`: `ends_follow_up_q`, `follow_up_ended_q`); this module is the
one way to record a disposition or a contact attempt, and answers the questions the
schedule, the reminders and the patient invitations ask:

- `follow_up_ends_on(patient)`: the day the patient's follow-up ends (None while it
  goes on); `Patient.objects.in_follow_up(on=day)` is the same rule as a queryset filter.
- `follow_up_stop_of(patient)`: the same day with the reason, for the schedule.

Promises of `disposition_record`: every disposition has a date, an actor and a reason
(history); lost to follow-up is refused until `REGISTRY_LOST_TO_FOLLOW_UP_ATTEMPTS`
unanswered contact attempts are recorded since the patient was last reached (or last
seen at a visit); nothing is recorded after a death except a correction of the death;
a withdrawal sets the consent status (withdrawn, with its date) and a return to active
after a withdrawal re-consents, so the consent fields and the disposition never
disagree; the visits the change stops or resumes follow in the same transaction.
"""

import datetime
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from registry.models import (
    ConsentStatus,
    ContactAttempt,
    Disposition,
    DispositionStatus,
    Patient,
    Visit,
    VisitStatus,
    WithdrawalLevel,
)
from registry.models.base import pk_list
from registry.models.choices import ContactOutcome

from .audit import record_delete, record_save

REACHED = (ContactOutcome.REACHED, ContactOutcome.DECLINED)
CONSENT_REASON = "Consent withdrawn (recorded on the patient)"


def lost_attempts_needed() -> int:
    """Unanswered contact attempts needed before a patient is lost to follow-up."""
    return settings.REGISTRY_LOST_TO_FOLLOW_UP_ATTEMPTS


def disposition_in_effect(patient: Patient, on: datetime.date | None = None) -> Disposition | None:
    """The disposition in effect on `on` (default: the latest): the latest dated on or
    before it, ties broken by entry order. None: active, nothing recorded."""
    rows = Disposition.objects.filter(patient_id=patient.pk)
    if on is not None:
        rows = rows.filter(date__lte=on)
    return rows.order_by("-date", "-pk").first()


@dataclass(frozen=True)
class FollowUpStop:
    """The day follow-up ended and why. `closes_open_windows`: a death also ends the
    windows already open that day (the visit cannot be done any more); after the
    other endings a visit whose window had opened can still be done."""

    date: datetime.date
    why: str
    closes_open_windows: bool = False


def follow_up_stop_of(patient: Patient, current: Disposition | None = None,
                      loaded: bool = False) -> FollowUpStop | None:
    """When the patient's follow-up ends, from the current disposition and the consent.
    `loaded`: `current` was read already (None meaning no disposition)."""
    if not loaded:
        current = disposition_in_effect(patient)
    stops = []
    if current is not None and current.ends_follow_up:
        label = current.get_status_display().lower()
        if current.status == DispositionStatus.TRANSFERRED:
            label = "transferred out of the registry"
        elif current.status == DispositionStatus.WITHDRAWN:
            label = "consent withdrawn"
        stops.append(FollowUpStop(current.date, f"{label} on {current.date.isoformat()}",
                                  current.status == DispositionStatus.DECEASED))
    if patient.consent_status == ConsentStatus.WITHDRAWN and patient.withdrawal_date:
        stops.append(FollowUpStop(patient.withdrawal_date,
                                  f"consent withdrawn on {patient.withdrawal_date.isoformat()}"))
    return min(stops, key=lambda s: (s.date, not s.closes_open_windows)) if stops else None


def follow_up_stops(patient_ids) -> dict[int, Disposition]:
    """The current disposition of each of `patient_ids` that has one: one query (imports)."""
    current: dict[int, Disposition] = {}
    for row in Disposition.objects.filter(patient_id__in=pk_list(patient_ids)).order_by(
            "patient_id", "-date", "-pk"):
        current.setdefault(row.patient_id, row)
    return current


def follow_up_ends_on(patient: Patient) -> datetime.date | None:
    """The day the patient's follow-up ends (withdrawal, loss, death, completion, transfer
    out of the registry), None while it goes on. Nothing is due or sent from that day."""
    stop = follow_up_stop_of(patient)
    return stop.date if stop else None


def unanswered_attempts(patient: Patient, until: datetime.date) -> list[ContactAttempt]:
    """Contact attempts up to `until` that did not reach the patient, since she was last
    reached or last seen at a completed visit."""
    attempts = list(ContactAttempt.objects.filter(patient_id=patient.pk, date__lte=until)
                    .order_by("date", "pk"))
    seen = Visit.objects.filter(patient_id=patient.pk, status=VisitStatus.COMPLETED,
                                date_done__lte=until).values_list("date_done", flat=True)
    return unanswered_of(attempts, seen, until)


def unanswered_of(attempts, seen_on, until: datetime.date) -> list:
    """The rule of `unanswered_attempts` on rows already at hand (an import checking a
    bundle before anything is written): of `attempts` (with `date` and `outcome`), those
    up to `until` that did not reach the patient, on or after the last day she was
    reached or seen (`seen_on`: the days of her completed visits)."""
    attempts = [a for a in attempts if a.date <= until]
    days = [a.date for a in attempts if a.outcome in REACHED]
    days += [d for d in seen_on if d is not None and d <= until]
    since = max(days, default=datetime.date.min)
    return [a for a in attempts if a.outcome not in REACHED and a.date >= since]


def disposition_check(disposition: Disposition) -> None:
    """The rules spanning rows (lost needs the attempts; nothing after a death), raised as
    a ValidationError naming the field; forms call it before saving."""
    patient = disposition.patient
    unanswered = None
    if disposition.status == DispositionStatus.LOST and disposition.date:
        unanswered = len(unanswered_attempts(patient, disposition.date))
    death = (Disposition.objects.filter(patient_id=patient.pk, status=DispositionStatus.DECEASED)
             .exclude(pk=disposition.pk).order_by("date").first())
    errors = disposition_errors(disposition, death=death, unanswered=unanswered)
    if errors:
        raise ValidationError(errors)


def disposition_errors(disposition: Disposition, *, death: Disposition | None,
                       unanswered: int | None) -> dict[str, str]:
    """What `disposition_check` refuses, from what is already known: `death`, another
    disposition recording the patient's death (or None); `unanswered`, the count of
    `unanswered_attempts` up to the disposition's date (for lost to follow-up). The import
    checks a bundle with this before anything is written."""
    patient = disposition.patient
    errors = {}
    if disposition.status == DispositionStatus.LOST and disposition.date:
        found, needed = unanswered or 0, lost_attempts_needed()
        if found < needed:
            errors["status"] = (
                f"Lost to follow-up needs {needed} recorded contact attempts that did not reach "
                f"{patient} since the last contact; {found} recorded up to {disposition.date}. "
                f"Record the attempts first.")
    if death is not None:
        errors["status"] = (f"{patient} died on {death.date}; correct that record instead of "
                            f"adding another disposition.")
    return errors


def disposition_record(*, disposition: Disposition, actor, reason: str,
                       expected_version: int | None = None) -> Disposition:
    """Record (or correct) a disposition; see the module docstring for what it promises.
    Refuses (ValidationError naming the field) a change without a reason."""
    from . import scheduling

    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"__all__": "Give the reason for this disposition (kept in the history)."})
    with transaction.atomic():
        patient = Patient.objects.select_for_update().get(pk=disposition.patient_id)
        disposition.patient = patient
        disposition.full_clean()
        disposition_check(disposition)
        record_save(disposition, actor=actor, reason=reason, expected_version=expected_version,
                    validate=False)
        _sync_consent(patient, actor=actor, reason=reason)
        scheduling.patient_schedule_sync(patient=patient, actor=actor, reason=reason)
    return disposition


def disposition_delete(*, disposition: Disposition, actor, reason: str) -> None:
    """Delete a disposition entered by mistake (with its reason in the history); the
    schedule follows."""
    from . import scheduling

    with transaction.atomic():
        patient = Patient.objects.select_for_update().get(pk=disposition.patient_id)
        record_delete(disposition, actor=actor, reason=reason)
        _sync_consent(patient, actor=actor, reason=reason)
        scheduling.patient_schedule_sync(patient=patient, actor=actor, reason=reason)


def _sync_consent(patient: Patient, *, actor, reason: str) -> None:
    """The consent fields follow the disposition: withdrawn from the first withdrawal
    still in effect; consented again after a return to active (or once no withdrawal
    is left)."""
    current = disposition_in_effect(patient)
    if current is not None and current.status == DispositionStatus.WITHDRAWN:
        if patient.consent_status != ConsentStatus.WITHDRAWN or patient.withdrawal_date is None \
                or patient.withdrawal_date > current.date:
            patient.consent_status, patient.withdrawal_date = ConsentStatus.WITHDRAWN, current.date
            record_save(patient, actor=actor, reason=reason)
        return
    withdrawal = Disposition.objects.filter(patient_id=patient.pk,
                                            status=DispositionStatus.WITHDRAWN).exists()
    resumed = current is not None and current.status == DispositionStatus.ACTIVE
    if patient.consent_status == ConsentStatus.WITHDRAWN and (resumed or not withdrawal):
        patient.consent_status, patient.withdrawal_date = ConsentStatus.CONSENTED, None
        record_save(patient, actor=actor, reason=reason)


def consent_followed(*, patient: Patient, before: tuple[str, datetime.date | None], actor,
                     reason: str) -> None:
    """A consent change made on the patient itself (the patient form, an import) gets its
    disposition: a withdrawal becomes a withdrawn disposition (no more contact, as a
    withdrawal always meant here); undoing a withdrawal (a correction) deletes the
    withdrawn dispositions of that date. Called by `patients.patient_save`."""
    was_withdrawn = before[0] == ConsentStatus.WITHDRAWN
    now_withdrawn = patient.consent_status == ConsentStatus.WITHDRAWN
    reason = reason or CONSENT_REASON
    if now_withdrawn:
        current = disposition_in_effect(patient, on=patient.withdrawal_date)
        if current is None or current.status != DispositionStatus.WITHDRAWN:
            row = Disposition(patient=patient, status=DispositionStatus.WITHDRAWN,
                              date=patient.withdrawal_date,
                              withdrawal_level=WithdrawalLevel.NO_CONTACT)
            disposition_check(row)
            record_save(row, actor=actor, reason=reason)
        if was_withdrawn and before[1] and before[1] != patient.withdrawal_date:
            for old in Disposition.objects.filter(patient_id=patient.pk, date=before[1],
                                                  status=DispositionStatus.WITHDRAWN):
                record_delete(old, actor=actor, reason=reason)
    elif was_withdrawn:
        for old in Disposition.objects.filter(patient_id=patient.pk,
                                              status=DispositionStatus.WITHDRAWN):
            record_delete(old, actor=actor, reason=reason)


def contact_attempt_record(*, attempt: ContactAttempt, actor, reason: str = "",
                           expected_version: int | None = None) -> ContactAttempt:
    """Record a contact attempt (for a visit, or tracing the patient)."""
    return record_save(attempt, actor=actor, reason=reason or "Contact attempt",
                       expected_version=expected_version)

"""The patient's answers: saved between pages, then landed in the visit.

`draft_save` keeps the answers so far on the link (save and continue, within the
window). `answers_submit` lands them: the visit becomes completed, dated the day
of submission at the site, with `entered_by` = patient and the history reason
"submitted by the patient through the link (link N)", recorded as the inactive,
non-staff patient user (links.patient_user), never as a person of the clinic.
The PROM items land as PromAnswer rows through services.proms (the one write path,
with the same validation as every channel), recorded the same way.
Nothing the clinic entered is overwritten: when a nurse completed the visit in the
meantime, all the answers are kept on the link as a conflict; when she had entered
some answers of a still scheduled visit (an NRS, a PROM item) and the patient's
differ, the visit lands with hers and the differing ones are kept as the conflict.
Her patient page and digest show conflicts.
A landed submission runs the data checks over the patient, as an admin save does
(services.checks.checks_after_save).
"""

import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from registry.models import EnteredBy, EproLink, PainScore, Recall, Visit, VisitStatus

from .. import checks
from ..audit import attach_audit, record_save
from ..dates import site_today
from ..proms.answers import answers_by_visit, prom_answers_record
from .links import link_problem, patient_user
from .questions import answers_read, questions_for

LANDED, CONFLICT = "landed", "conflict"


class LinkDead(Exception):
    """The link does not work (any reason: the page says the same for all)."""


def submitted_reason(link: EproLink) -> str:
    return f"submitted by the patient through the link (link {link.pk})"


def draft_for(link: EproLink) -> dict:
    """The answers saved so far for the link's visit: the latest draft of any of its
    links (a reminder's link continues where the invitation's stopped)."""
    latest = (EproLink.objects.filter(visit_id=link.visit_id, draft_saved_at__isnull=False)
              .order_by("-draft_saved_at").values_list("draft", flat=True).first())
    return dict(latest or {})


def draft_save(*, link: EproLink, data) -> dict:
    """Merge the valid answers in `data` into the draft; returns the errors (by field).
    Refuses (LinkDead) a link that does not work."""
    if link_problem(link) is not None:
        raise LinkDead(link.pk)
    questions = questions_for(link.visit)
    values, errors = answers_read(questions, data, complete=False)
    draft = draft_for(link)
    draft.update(values)
    EproLink.objects.filter(pk=link.pk).update(draft=draft, draft_saved_at=timezone.now())
    link.draft = draft
    return errors


def answers_submit(*, link: EproLink, data=None, now: datetime.datetime | None = None) -> str:
    """Land the answers (`data`, or the saved draft) in the visit: LANDED, or CONFLICT
    when the visit was entered by a nurse meanwhile or some answers differ from those
    the clinic entered (those are kept on the link for her).

    Refuses: LinkDead for a link that does not work; ValidationError (by field) for a
    missing or impossible answer. Nothing is saved unless everything is.
    """
    now = now or timezone.now()
    with transaction.atomic():
        link = (EproLink.objects.select_for_update().select_related("visit__patient__site")
                .get(pk=link.pk))
        visit = Visit.objects.select_for_update().select_related("patient__site").get(pk=link.visit_id)
        link.visit = visit
        if link_problem(link, now=now, visit_status=False) is not None:
            raise LinkDead(link.pk)
        questions = questions_for(visit)
        values, errors = answers_read(questions, draft_for(link) if data is None else data,
                                      complete=True)
        if errors:
            raise ValidationError(errors)
        if visit.status != VisitStatus.SCHEDULED:
            link.conflict = values
            link.submitted_at = now
            attach_audit(link, actor=patient_user(),
                         reason=f"{submitted_reason(link)}; not taken: the visit was already "
                                f"{visit.get_status_display().lower()}")
            link.save()
            return CONFLICT
        kept = _land(visit, link, questions, values, now)
        link.submitted_at = now
        reason = submitted_reason(link)
        if kept:
            link.conflict = kept
            reason += f"; not taken (the clinic had entered other answers): {', '.join(kept)}"
        attach_audit(link, actor=patient_user(), reason=reason)
        link.save()
    # As after every save in the admin and the API: the data checks over the patient (a
    # PROM left unscorable opens its query, one now complete closes it).
    checks.checks_after_save(visit)
    return CONFLICT if kept else LANDED


def _land(visit: Visit, link: EproLink, questions, values: dict, now) -> dict:
    """Write the answers; returns those not taken because the clinic's differ."""
    actor, reason = patient_user(), submitted_reason(link)
    kept = {}
    held_proms = answers_by_visit([visit.pk]).get(visit.pk, {})
    by_instrument: dict[str, dict[str, int]] = {}
    for q in questions:
        if not q.instrument:
            continue
        held = held_proms.get(q.instrument, {}).get(q.item)
        if held is not None and held != values[q.name]:
            kept[q.name] = values[q.name]
        elif held is None:
            by_instrument.setdefault(q.instrument, {})[q.item] = values[q.name]
    for instrument, answers in by_instrument.items():
        prom_answers_record(visit=visit, instrument=instrument, answers=answers, actor=actor,
                            reason=reason)
    for q in questions:
        if q.pain_site or q.instrument:
            continue
        held = getattr(visit, q.name)
        if held is not None and held != values[q.name]:
            kept[q.name] = values[q.name]
        else:
            setattr(visit, q.name, values[q.name])
    visit.status = VisitStatus.COMPLETED
    visit.date_done = site_today(visit.patient.site.timezone, now)
    visit.entered_by = EnteredBy.PATIENT
    record_save(visit, actor=actor, reason=reason)
    for q in questions:
        if q.pain_site:
            score = (PainScore.objects.filter(visit=visit, pain_site=q.pain_site, recall=Recall.AVG_7D)
                     .first() or PainScore(visit=visit, pain_site=q.pain_site, recall=Recall.AVG_7D))
            if score.pk and score.score is not None and score.score != values[q.name]:
                kept[q.name] = values[q.name]
                continue
            score.score = values[q.name]
            record_save(score, actor=actor, reason=reason)
    return kept


def answers_summary(link: EproLink, draft: dict) -> list[tuple]:
    """(question, value, value label) in page order, for the summary before submit."""
    return [(q, draft.get(q.name), q.label_of(draft.get(q.name))) for q in questions_for(link.visit)]


__all__ = ["CONFLICT", "LANDED", "LinkDead", "answers_submit", "answers_summary", "draft_for",
           "draft_save", "submitted_reason"]

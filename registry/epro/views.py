"""The questionnaire pages a patient opens from her link: the only pages outside the admin.

Thin: the token is looked up and checked, answers saved and submitted by
services.epro; this module only picks the page, the language and the step.
One question per screen, then a summary, then submit. A used, expired, revoked or
unknown link gets the same plain page with the same status; every such try and
every page counts against the address (services.throttling), so guessing links is
refused after a few attempts. No page shows an identifier: no name, no registry id,
no date of birth, only the clinic's name and the questions.
"""

from axes.helpers import get_client_ip_address
from django.core.exceptions import ValidationError
from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.utils import translation
from django.views.decorators.cache import never_cache

from registry.models import EproLink, PatientLanguage, timepoint_months
from registry.services import epro
from registry.services.throttling import epro_address_allowed, epro_failure

LANGUAGES = tuple(PatientLanguage.values)
SUMMARY = "summary"


def _render(request, template, context, language, status=200):
    with translation.override(language):
        context = {"language": language, "languages": PatientLanguage.choices, **context}
        response = render(request, template, context, status=status)
    response["Content-Language"] = language
    response["X-Robots-Tag"] = "noindex, nofollow"
    # The token is in the address: it never goes to another origin (the pages load
    # nothing from elsewhere anyway); "no-referrer" would make the browser send
    # "Origin: null" with the forms, which the CSRF check refuses.
    response["Referrer-Policy"] = "same-origin"
    return response


def _language(request, link: EproLink | None) -> str:
    asked = request.GET.get("lang", "")
    if link is None:
        if asked in LANGUAGES:
            return asked
        detected = translation.get_language_from_request(request)[:2]
        return detected if detected in LANGUAGES else "en"
    if asked in LANGUAGES and asked != link.language:
        link.language = asked
        EproLink.objects.filter(pk=link.pk).update(language=asked)  # a preference, not audited
    return link.language or link.visit.patient.epro_language or "en"


def _dead(request, link=None, address=""):
    if address:
        epro_failure(address)
    return _render(request, "epro/closed.html", {}, _language(request, None), status=404)


@never_cache
def questionnaire(request, token: str):
    address = get_client_ip_address(request) or "unknown"
    if not epro_address_allowed(address):
        return _render(request, "epro/too_many.html", {}, _language(request, None), status=429)
    link = epro.link_find(token)
    if link is None:
        return _dead(request, address=address)
    # A submit after a nurse entered the visit is taken as a conflict (answers_submit),
    # not refused: she is shown the answers.
    submitting = request.method == "POST" and request.POST.get("action") == "submit"
    problem = epro.link_problem(link, visit_status=not submitting)
    if problem is not None and problem != epro.NOT_YET:
        return _dead(request, address=address)
    language = _language(request, link)
    visit = link.visit
    days = epro.valid_days(visit)
    base = {"clinic": visit.patient.site.name, "months": timepoint_months(visit.timepoint),
            "last_day": days[1] if days else None, "first_day": days[0] if days else None,
            "path": request.path}
    if problem == epro.NOT_YET:
        return _render(request, "epro/not_yet.html", base, language)
    epro.link_opened(link)
    questions = epro.questions_for(visit)
    draft = epro.draft_for(link)
    step = request.POST.get("step") or request.GET.get("step") or ""

    if request.method == "POST":
        action = request.POST.get("action", "next")
        if action == "submit":
            try:
                outcome = epro.answers_submit(link=link, data=draft)
            except epro.LinkDead:
                return _dead(request)
            except ValidationError as exc:
                return _summary(request, link, questions, draft, base, language,
                                errors=exc.message_dict, status=400)
            return _render(request, "epro/done.html", {**base, "conflict": outcome == epro.CONFLICT},
                           language)
        index = _index(step, questions)
        if index is None:
            return HttpResponseRedirect(request.path)
        try:
            errors = epro.draft_save(link=link, data=request.POST)
        except epro.LinkDead:
            return _dead(request)
        question = questions[index]
        if action == "back":
            target = f"?step={index}" if index > 0 else "?step=1"
        elif question.name in errors or question.name not in link.draft:
            message = errors.get(question.name) or translation.gettext("Please answer this question.")
            return _question(request, questions, index, link.draft, base, language, error=message,
                             status=400, posted=request.POST.get(question.name),
                             back_to=request.POST.get("return", ""))
        elif request.POST.get("return") == SUMMARY or index + 1 == len(questions):
            target = f"?step={SUMMARY}"
        else:
            target = f"?step={index + 2}"
        return HttpResponseRedirect(request.path + target)

    if step == SUMMARY:
        return _summary(request, link, questions, draft, base, language)
    index = _index(step, questions)
    if index is None:  # the first question not answered yet, else the summary
        index = next((i for i, q in enumerate(questions) if q.name not in draft), None)
        if index is None:
            return _summary(request, link, questions, draft, base, language)
    return _question(request, questions, index, draft, base, language,
                     back_to=SUMMARY if request.GET.get("return") == SUMMARY else "")


def _index(step: str, questions) -> int | None:
    try:
        index = int(step) - 1
    except (TypeError, ValueError):
        return None
    return index if 0 <= index < len(questions) else None


def _question(request, questions, index, draft, base, language, error="", status=200, posted=None,
              back_to=""):
    question = questions[index]
    chosen = draft.get(question.name)
    if posted not in (None, ""):
        chosen = posted
    return _render(request, "epro/question.html", {
        **base, "question": question, "number": index + 1, "total": len(questions),
        "step": index + 1, "chosen": str(chosen) if chosen is not None else "", "error": error,
        "back": index > 0, "back_to": back_to}, language, status=status)


def _summary(request, link, questions, draft, base, language, errors=None, status=200):
    rows = [{"question": q, "value": draft.get(q.name), "label": q.label_of(draft.get(q.name)),
             "step": i + 1, "error": (errors or {}).get(q.name, [""])[0] if errors else ""}
            for i, q in enumerate(questions)]
    return _render(request, "epro/summary.html", {
        **base, "rows": rows, "complete": all(r["value"] is not None for r in rows),
        "errors": bool(errors)}, language, status=status)


"""The patient's questionnaire pages: one question per screen, summary, submit; what lands;
dead links; brute force; Dutch."""

import datetime

import pytest
from django.utils import timezone

from registry.models import EnteredBy, EproLink, PainScore, Visit, VisitStatus
from registry.services import epro
from registry.services.audit import record_save
from registry.services.dates import site_today
from tests.epro.conftest import answers, open_m3

CLOSED = "This link can no longer be used"


def new_link(visit, actor=None):
    _link, token = epro.link_create(visit=visit, channel=EproLink.Channel.PRINTED, actor=actor)
    return token, f"/q/{token}/"


def answer_all(client, path, answers):
    for step, (name, value) in enumerate(answers.items(), 1):
        response = client.post(f"{path}?step={step}", {"step": step, name: value, "action": "next"})
        assert response.status_code == 302, response.content.decode()[:500]
    return client.get(response["Location"])


def test_the_patient_answers_question_by_question_and_the_visit_lands(client, m3):
    patient, visit = m3
    token, path = new_link(visit)
    first = client.get(path)
    page = first.content.decode()
    total = len(epro.questions_for(visit))
    assert first.status_code == 200 and 'name="nrs"' in page and f"Question 1 of {total}" in page
    assert patient.registry_id not in page and "Maria Jansen" not in page  # no identifier
    assert first["Cache-Control"].startswith("max-age=0") or "no-store" in first["Cache-Control"]
    summary = answer_all(client, path, answers(visit, nrs=3, satisfaction=4, pgic=2))
    text = summary.content.decode()
    assert "Check your answers" in text and "Satisfied" in text and "Much improved" in text
    done = client.post(path, {"action": "submit"})
    assert done.status_code == 200 and "Thank you" in done.content.decode()

    visit = Visit.objects.get(pk=visit.pk)
    assert (visit.status, visit.nrs, visit.satisfaction, visit.pgic) == (VisitStatus.COMPLETED, 3, 4, 2)
    assert visit.entered_by == EnteredBy.PATIENT
    assert visit.date_done == site_today(visit.patient.site.timezone)
    last = visit.history.first()
    link = EproLink.objects.get()
    assert last.history_change_reason == f"submitted by the patient through the link (link {link.pk})"
    assert last.history_user.username == "registry-patient" and not last.history_user.is_staff
    # The link refuses from now on, with the same page as an unknown one.
    again = client.get(path)
    assert again.status_code == 404 and CLOSED in again.content.decode()


def test_used_expired_revoked_and_unknown_links_get_the_same_page(client, site_a, nurse, settings):
    settings.REGISTRY_EPRO_GRACE_DAYS = 0
    pages = []
    _, used = open_m3(site_a)
    token, path = new_link(used)
    answer_all(client, path, answers(used, nrs=5, satisfaction=3, pgic=4))
    client.post(path, {"action": "submit"})
    pages.append(client.get(path))
    _, revoked = open_m3(site_a)
    token, path = new_link(revoked)
    epro.link_revoke(link=epro.link_find(token), actor=nurse)
    pages.append(client.get(path))
    today = timezone.now().date()
    _, expired = open_m3(site_a, today=today - datetime.timedelta(days=40))  # window closed
    link = EproLink(visit=expired, token_hash="0" * 64, channel="printed")
    link.save()
    pages.append(client.get("/q/" + "A" * 43 + "/"))  # unknown
    pages.append(client.get("/q/short/"))  # not even a token
    bodies = {(p.status_code, p.content.decode().replace(p.wsgi_request.path, "")) for p in pages}
    assert len(bodies) == 1 and next(iter(bodies))[0] == 404


def test_an_expired_link_is_refused(client, site_a, settings):
    settings.REGISTRY_EPRO_GRACE_DAYS = 3
    _, visit = open_m3(site_a)
    token, path = new_link(visit)
    closed = site_today(site_a.timezone) - datetime.timedelta(days=4)
    Visit.objects.filter(pk=visit.pk).update(window_end=closed)
    assert CLOSED in client.get(path).content.decode()


def test_guessing_links_is_refused_after_a_few_tries(client, m3, settings):
    settings.REGISTRY_EPRO_FAILURES_PER_IP = 5
    _, visit = m3
    _token, path = new_link(visit)
    for i in range(5):
        assert client.get(f"/q/{'B' * 42}{i}/").status_code == 404
    # Now even the right link from that address is refused, for the lockout time.
    refused = client.get(path)
    assert refused.status_code == 429 and "Too many attempts" in refused.content.decode()
    other = client.get(path, REMOTE_ADDR="10.9.8.7")
    assert other.status_code == 200


def test_pages_per_address_are_rate_limited(client, m3, settings):
    settings.REGISTRY_EPRO_RATE = "3/min"
    _, visit = m3
    _token, path = new_link(visit)
    assert [client.get(path).status_code for _ in range(4)] == [200, 200, 200, 429]


def test_an_impossible_answer_is_refused_naming_field_and_value(client, m3):
    _, visit = m3
    _token, path = new_link(visit)
    response = client.post(f"{path}?step=1", {"step": 1, "nrs": "11", "action": "next"})
    assert response.status_code == 400
    assert "nrs: &#x27;11&#x27; is not an answer here" in response.content.decode()
    response = client.post(f"{path}?step=1", {"step": 1, "action": "next"})
    assert response.status_code == 400 and "Please answer this question" in response.content.decode()
    assert EproLink.objects.get().draft == {}


def test_answers_are_saved_as_she_goes_and_a_reminder_link_continues(client, m3):
    _, visit = m3
    _token, path = new_link(visit)
    client.post(f"{path}?step=1", {"step": 1, "nrs": "6", "action": "next"})
    _token2, path2 = new_link(visit)
    page = client.get(path2).content.decode()
    assert f"Question 2 of {len(epro.questions_for(visit))}" in page  # the first is answered already
    summary = client.get(f"{path2}?step=summary").content.decode()
    assert "Not answered yet" in summary
    refused = client.post(path2, {"action": "submit"})
    assert refused.status_code == 400 and Visit.objects.get(pk=visit.pk).status == VisitStatus.SCHEDULED


def test_a_nurse_entry_is_not_overwritten_and_the_conflict_is_kept(client, m3, nurse):
    _, visit = m3
    _token, path = new_link(visit)
    given = answers(visit, nrs=2, satisfaction=5, pgic=1)
    answer_all(client, path, given)
    visit = Visit.objects.get(pk=visit.pk)
    visit.status, visit.date_done, visit.nrs = VisitStatus.COMPLETED, visit.window_start, 7
    record_save(visit, actor=nurse, reason="phone call")
    done = client.post(path, {"action": "submit"})
    assert done.status_code == 200
    visit = Visit.objects.get(pk=visit.pk)
    assert visit.nrs == 7 and visit.entered_by == EnteredBy.NURSE
    link = EproLink.objects.get()
    assert link.conflict == given
    assert epro.link_status(link) == "conflict"


def test_pain_site_answers_land_as_pain_scores(client, site_a):
    _, visit = open_m3(site_a, etiology="postamputation", diagnosis="rlp_plp")
    _token, path = new_link(visit)
    answer_all(client, path, answers(visit, nrs=4, nrs_residual_limb=3, nrs_phantom_limb=6,
                                     satisfaction=4, pgic=3))
    client.post(path, {"action": "submit"})
    scores = dict(PainScore.objects.filter(visit=visit).values_list("pain_site", "score"))
    assert scores == {"residual_limb": 3, "phantom_limb": 6}


def test_the_page_speaks_dutch_when_chosen_and_remembers(client, site_a):
    _, visit = open_m3(site_a, epro_language="nl")
    _token, path = new_link(visit)
    page = client.get(path).content.decode()
    total = len(epro.questions_for(visit))
    assert '<html lang="nl">' in page and f"Vraag 1 van {total}" in page
    english = client.get(f"{path}?lang=en").content.decode()
    assert '<html lang="en">' in english and f"Question 1 of {total}" in english
    assert '<html lang="en">' in client.get(path).content.decode()  # switched for this link


def test_a_link_before_its_window_says_when_it_opens(client, site_a):
    _, visit = open_m3(site_a)
    token, path = new_link(visit)
    start = site_today(site_a.timezone) + datetime.timedelta(days=2)
    Visit.objects.filter(pk=visit.pk).update(window_start=start)
    page = client.get(path)
    assert page.status_code == 200 and "not open yet" in page.content.decode()


@pytest.mark.parametrize("step", ["0", "99", "x", "summary"])
def test_odd_steps_are_not_errors(client, m3, step):
    _, visit = m3
    _token, path = new_link(visit)
    assert client.get(f"{path}?step={step}").status_code == 200
    assert client.post(f"{path}?step={step}", {"step": step, "action": "next"}).status_code in (302, 400)

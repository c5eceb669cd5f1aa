"""Visit entry as a follow-up call: one screen, plain messages next to the field,
outside-window visits saved but flagged, pain scores with the visit, reason for
change also when only a pain score changes, and no lost updates."""

import datetime

import pytest
from django.test import Client
from django.urls import reverse

from registry.models import PainScore, Visit
from tests.admin.conftest import post_form, rendered_form_data
from tests.conftest import PASSWORD
from tests.factories import make_visit


def change_url(visit):
    return reverse("admin:registry_visit_change", args=[visit.pk])


def follow_up(patient, implant, **kwargs):
    """A 3-month visit with its window (what the scheduler creates)."""
    defaults = {"timepoint": "m3", "status": "scheduled", "date_done": None, "nrs": None,
                "target_date": datetime.date(2020, 6, 1), "window_start": datetime.date(2020, 5, 18),
                "window_end": datetime.date(2020, 6, 15)}
    defaults.update(kwargs)
    return make_visit(patient, implant, **defaults)


def test_the_visit_page_shows_target_date_and_window_and_all_scores(nurse_client, patient_a, implant_a):
    visit = follow_up(patient_a, implant_a)
    page = nurse_client.get(change_url(visit))
    html = page.content.decode()
    assert "Target 01 Jun 2020; window 18 May 2020 to 15 Jun 2020" in html
    for field in ("id_nrs", "id_satisfaction_0", "id_pgic_0", "pain_scores-0-score"):
        assert field in html, field


def test_it_refuses_an_nrs_of_11_with_the_message_next_to_the_field(nurse_client, patient_a, implant_a):
    visit = follow_up(patient_a, implant_a)
    response = post_form(nurse_client, change_url(visit), status="completed",
                         date_done="2020-06-01", nrs="11")
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert errors["nrs"] == ["NRS must be between 0 and 10; 11 is not on the scale."]
    visit.refresh_from_db()
    assert visit.nrs is None and visit.status == "scheduled"


def test_a_visit_done_outside_its_window_is_saved_and_flagged(nurse_client, patient_a, implant_a):
    visit = follow_up(patient_a, implant_a)
    response = post_form(nurse_client, change_url(visit), status="completed",
                         date_done="2020-07-01", nrs="4")
    assert response.status_code == 302
    visit.refresh_from_db()
    assert visit.nrs == 4 and visit.outside_window
    listing = nurse_client.get(response["Location"])
    assert "outside its window" in listing.content.decode()
    listing = nurse_client.get(reverse("admin:registry_visit_changelist"))
    assert "outside window" in listing.content.decode()


def test_a_hand_entered_extra_follow_up_gets_a_target_and_window(nurse_client, patient_a, implant_a):
    # m9 is not in the default protocol: target from the implant date, +/-14 days.
    response = post_form(nurse_client, reverse("admin:registry_visit_add"), patient=patient_a.pk,
                         implant=implant_a.pk, timepoint="m9", status="completed",
                         date_done="2020-12-03", nrs="3")
    assert response.status_code == 302, response.context["adminform"].form.errors
    visit = Visit.objects.get(implant=implant_a, timepoint="m9")
    assert visit.target_date == datetime.date(2020, 12, 1)
    assert (visit.window_start, visit.window_end) == (datetime.date(2020, 11, 17),
                                                      datetime.date(2020, 12, 15))
    assert not visit.outside_window


def test_a_second_visit_for_the_same_timepoint_is_refused_naming_the_first(nurse_client, patient_a,
                                                                          implant_a):
    follow_up(patient_a, implant_a)
    response = post_form(nurse_client, reverse("admin:registry_visit_add"), patient=patient_a.pk,
                         implant=implant_a.pk, timepoint="m3", status="completed",
                         date_done="2020-06-03", nrs="3")
    assert response.status_code == 200
    message = response.context["adminform"].form.errors["timepoint"][0]
    assert message.startswith(f"{patient_a.registry_id} already has a 3 months visit for implant "
                              f"{implant_a.ref} (scheduled, target 01 Jun 2020)")
    assert Visit.objects.filter(implant=implant_a, timepoint="m3").count() == 1


def test_pain_scores_are_entered_with_the_visit(nurse_client, nurse, patient_a, implant_a):
    visit = follow_up(patient_a, implant_a)
    response = post_form(nurse_client, change_url(visit), status="completed", date_done="2020-06-01",
                         nrs="5", **{
                             "pain_scores-TOTAL_FORMS": "2",
                             "pain_scores-0-pain_site": "phantom_limb", "pain_scores-0-recall": "avg_7d",
                             "pain_scores-0-score": "6",
                             "pain_scores-1-pain_site": "residual_limb", "pain_scores-1-recall": "now",
                             "pain_scores-1-score": "2"})
    assert response.status_code == 302, response.context["adminform"].form.errors
    scores = {(s.pain_site, s.recall): s.score for s in PainScore.objects.filter(visit=visit)}
    assert scores == {("phantom_limb", "avg_7d"): 6, ("residual_limb", "now"): 2}
    assert PainScore.history.filter(visit_id=visit.pk, history_user=nurse).count() == 2


def test_a_pain_score_of_a_completed_visit_needs_a_reason_to_change(nurse_client, nurse, patient_a,
                                                                    implant_a):
    visit = follow_up(patient_a, implant_a, status="completed", date_done=datetime.date(2020, 6, 1),
                      nrs=5)
    score = PainScore(visit=visit, pain_site="phantom_limb", recall="avg_7d", score=6)
    from registry.services.audit import record_save
    record_save(score, actor=nurse, reason="test")

    response = post_form(nurse_client, change_url(visit), **{"pain_scores-0-score": "3"})
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert form.errors["change_reason"] == [
        "This record was already complete: say why you are changing it."]
    score.refresh_from_db()
    assert score.score == 6

    response = post_form(nurse_client, change_url(visit), change_reason="Patient re-rated at call",
                         **{"pain_scores-0-score": "3"})
    assert response.status_code == 302
    score.refresh_from_db()
    assert score.score == 3
    assert score.history.latest().history_change_reason == "Patient re-rated at call"
    # The visit's own trail says when and why too (and its version moved on).
    latest = visit.history.latest()
    assert latest.history_change_reason == "Patient re-rated at call" and latest.history_user == nurse
    history = nurse_client.get(reverse("admin:registry_visit_history", args=[visit.pk]))
    html = history.content.decode()
    assert "Patient re-rated at call" in html and "Phantom limb pain" in html


def test_saving_an_unchanged_visit_writes_no_history_row(nurse_client, patient_a, implant_a):
    visit = follow_up(patient_a, implant_a, status="completed", date_done=datetime.date(2020, 6, 1),
                      nrs=5)
    before = visit.history.count()
    response = post_form(nurse_client, change_url(visit))
    assert response.status_code == 302
    assert visit.history.count() == before


def test_the_second_of_two_concurrent_edits_is_refused_and_the_first_kept(
        nurse, data_manager, patient_a, implant_a):
    visit = follow_up(patient_a, implant_a)
    first, second = Client(), Client()
    first.login(username=nurse.username, password=PASSWORD)
    second.login(username=data_manager.username, password=PASSWORD)
    url = change_url(visit)
    first_data = rendered_form_data(first.get(url))
    second_data = rendered_form_data(second.get(url))

    first_data.update(status="completed", date_done="2020-06-01", nrs="4")
    assert first.post(url, first_data).status_code == 302

    second_data.update(status="completed", date_done="2020-06-02", nrs="7")
    response = second.post(url, second_data)
    assert response.status_code == 200
    assert "Someone else saved this record while you were editing it" in response.content.decode()
    visit.refresh_from_db()
    assert (visit.nrs, visit.date_done) == (4, datetime.date(2020, 6, 1))
    assert visit.history.filter(nrs=7).count() == 0


@pytest.mark.parametrize("status", ["scheduled", "missed"])
def test_scores_on_a_visit_not_completed_are_refused_in_plain_words(nurse_client, patient_a, implant_a,
                                                                   status):
    visit = follow_up(patient_a, implant_a)
    response = post_form(nurse_client, change_url(visit), status=status, nrs="4")
    assert response.status_code == 200
    message = response.context["adminform"].form.errors["status"][0]
    assert "Scores were entered (nrs)" in message and "set it to completed" in message


def test_adding_a_visit_for_an_implant_shows_its_next_protocol_windows(nurse_client, patient_b,
                                                                      patient_a, nurse):
    from registry.services import scheduling
    from registry.services.dates import site_today
    from tests.factories import make_implant

    today = site_today(patient_a.site.timezone)
    implant = make_implant(patient_a, actor=nurse, trial_start=today - datetime.timedelta(days=60),
                           trial_end=today - datetime.timedelta(days=50),
                           implant_date=today - datetime.timedelta(days=40))
    page = nurse_client.get(reverse("admin:registry_visit_add"),
                            {"patient": patient_a.pk, "implant": implant.pk})
    text = page.content.decode()
    protocol = scheduling.protocol_for(site=patient_a.site)
    slots = [scheduling.timepoint_slot(implant_date=implant.implant_date, timepoint=tp)
             for tp in protocol.timepoints.order_by("months")]
    coming = [s for s in slots if s.end >= today][:3]
    assert f"Next windows of {implant.ref}" in text
    for slot in coming:
        assert f"target {slot.target:%d %b %Y}, window {slot.start:%d %b} to {slot.end:%d %b %Y}" in text
    assert f"target {slots[0].target:%d %b %Y}" not in text  # the 1-month window closed already
    # Another site's implant shows nothing.
    other = nurse_client.get(reverse("admin:registry_visit_add"),
                             {"implant": make_implant(patient_b).pk})
    assert "Next windows of" not in other.content.decode()

"""Forms that follow the clinic (issue 19): the visit form as the nurse records a call."""

import datetime
import json

from django.urls import reverse

from registry.models import PainScore, Visit
from registry.services.audit import record_save
from tests.admin.conftest import post_form
from tests.admin.test_visit_entry import change_url, follow_up
from tests.factories import make_patient, make_visit


def test_a_date_of_visit_makes_the_visit_completed(nurse_client, patient_a, implant_a):
    visit = follow_up(patient_a, implant_a)
    response = post_form(nurse_client, change_url(visit), date_done="2020-06-01", nrs="4")
    assert response.status_code == 302, response.context["adminform"].form.errors
    visit.refresh_from_db()
    assert (visit.status, visit.nrs) == ("completed", 4)


def test_timepoints_come_in_protocol_order_with_other_months_after_unscheduled(nurse_client,
                                                                              patient_a, implant_a):
    page = nurse_client.get(reverse("admin:registry_visit_add") + f"?patient={patient_a.pk}")
    choices = page.context["adminform"].form.fields["timepoint"].choices
    flat = [code for code, _ in choices if not isinstance(_, list)]
    assert flat[:7] == ["", "baseline", "trial_end", "m1", "m3", "m6", "m12"]
    assert flat[-1] == "unscheduled"
    group, others = choices[-1]
    assert group == "Other follow-up month" and others[0][0] == "m2"


def test_satisfaction_and_pgic_are_refused_at_baseline(nurse_client, patient_a):
    response = post_form(nurse_client, reverse("admin:registry_visit_add"), patient=patient_a.pk,
                         timepoint="baseline", status="completed", date_done="2020-01-10", nrs="8",
                         pgic="2", satisfaction="4")
    errors = response.context["adminform"].form.errors
    assert errors["pgic"] == ["PGIC 2 at baseline: PGIC is asked after the implant (at its "
                              "follow-up visits), not before it."]
    assert "Satisfaction 4 at baseline" in errors["satisfaction"][0]
    assert not Visit.objects.filter(timepoint="baseline").exists()


def test_a_post_amputation_patient_gets_residual_and_phantom_limb_rows_ready(nurse_client, site_a,
                                                                             nurse):
    patient = make_patient(site_a, actor=nurse, etiology="postamputation", diagnosis="rlp_plp")
    page = nurse_client.get(reverse("admin:registry_visit_add") + f"?patient={patient.pk}")
    formset = next(f.formset for f in page.context["inline_admin_formsets"]
                   if f.formset.model is PainScore)
    assert [(f.initial.get("pain_site"), f.initial.get("recall")) for f in formset.forms] == [
        ("residual_limb", "avg_7d"), ("phantom_limb", "avg_7d")]
    other = make_patient(site_a, actor=nurse)
    page = nurse_client.get(reverse("admin:registry_visit_add") + f"?patient={other.pk}")
    formset = next(f.formset for f in page.context["inline_admin_formsets"]
                   if f.formset.model is PainScore)
    assert [f.initial for f in formset.forms] == [{}]


def test_pain_score_rows_keep_a_fixed_order(nurse_client, nurse, patient_a, implant_a):
    visit = follow_up(patient_a, implant_a, status="completed", date_done=datetime.date(2020, 6, 1),
                      nrs=5)
    for site, recall in (("phantom_limb", "avg_7d"), ("residual_limb", "now"),
                         ("residual_limb", "avg_7d"), ("primary", "worst")):
        record_save(PainScore(visit=visit, pain_site=site, recall=recall, score=3), actor=nurse,
                    reason="test")
    page = nurse_client.get(change_url(visit))
    formset = next(f.formset for f in page.context["inline_admin_formsets"]
                   if f.formset.model is PainScore)
    assert [(f.instance.pain_site, f.instance.recall) for f in formset.initial_forms] == [
        ("primary", "worst"), ("residual_limb", "now"), ("residual_limb", "avg_7d"),
        ("phantom_limb", "avg_7d")]


def test_save_returns_to_the_patient_page_wherever_the_form_was_opened(nurse_client, patient_a,
                                                                      implant_a):
    visit = follow_up(patient_a, implant_a)
    url = change_url(visit) + "?_changelist_filters=follow_up%3Doverdue"
    response = post_form(nurse_client, url, date_done="2020-06-01", nrs="4")
    assert response["Location"] == reverse("admin:registry_patient_change", args=[patient_a.pk])


def test_save_and_next_due_visit_opens_the_next_one(nurse_client, patient_a, implant_a, site_a,
                                                    nurse):
    today = datetime.date.today()
    d = datetime.timedelta
    first = follow_up(patient_a, implant_a, target_date=today, window_start=today - d(5),
                      window_end=today + d(5))
    Visit.objects.exclude(pk=first.pk).delete()  # the rest of the generated schedule (overdue)
    other = make_patient(site_a, actor=nurse)
    following = make_visit(other, None, timepoint="unscheduled", status="scheduled",
                           date_done=None, nrs=None, target_date=today,
                           window_start=today - d(3), window_end=today + d(9))
    response = post_form(nurse_client, change_url(first), date_done=today.isoformat(), nrs="4",
                         _nextdue="Save and next due visit")
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert response["Location"] == change_url(following)
    response = post_form(nurse_client, change_url(following), date_done=today.isoformat(),
                         nrs="3", _nextdue="Save and next due visit")
    assert response["Location"] == reverse("admin:index")


def test_dates_have_one_format_with_a_visible_hint(nurse_client, patient_a, implant_a):
    visit = follow_up(patient_a, implant_a)
    page = nurse_client.get(change_url(visit))
    html = page.content.decode()
    assert 'placeholder="YYYY-MM-DD"' in html and "Format YYYY-MM-DD, e.g. 2026-03-31." in html
    response = post_form(nurse_client, change_url(visit), date_done="01/06/2020", nrs="4")
    assert response.context["adminform"].form.errors["date_done"] == [
        "Enter the date as YYYY-MM-DD (e.g. 2026-03-31)."]


def test_the_visit_form_says_the_questions_and_their_scales(nurse_client, patient_a, implant_a):
    html = nurse_client.get(change_url(follow_up(patient_a, implant_a))).content.decode()
    assert "how would you describe the change in your pain condition" in html
    assert "1 very dissatisfied … 5 very satisfied" in html


def test_the_event_form_carries_the_iso_class_table_for_the_live_class(nurse_client, patient_a):
    page = nurse_client.get(reverse("admin:registry_adverseevent_add") + f"?patient={patient_a.pk}")
    html = page.content.decode()
    assert "registry/iso-class.js" in html
    start = html.index('data-table="') + len('data-table="')
    table = json.loads(html[start:html.index('"', start)].replace("&quot;", '"'))
    assert table["1|1|1"]["code"] == "USADE" and table["1|1|0"]["code"] == "SADE"
    assert table["0|0|0"]["code"] == "AE" and table["0|1|0"]["code"] == "ADE"
    assert table["1|0|0"]["code"] == "SAE"

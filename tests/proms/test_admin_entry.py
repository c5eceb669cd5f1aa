"""A nurse enters PROMs on the visit, per instrument; the visit shows what is due,
missing and scored; the same validation as every channel; other sites get a 404."""

import pytest
from django.urls import reverse

from registry.models import PromAnswer
from tests.factories import make_visit


def entry_url(visit, instrument):
    return reverse("admin:registry_visit_proms", args=[visit.pk, instrument])


@pytest.fixture
def baseline(patient_a):
    return make_visit(patient_a)


def test_the_visit_page_lists_the_instruments_due_and_links_to_their_forms(client, nurse, baseline):
    client.force_login(nurse)
    html = client.get(reverse("admin:registry_visit_change", args=[baseline.pk])).content.decode()
    assert 'id="visit-proms"' in html
    for code in ("eq5d5l", "bpi_sf", "hads", "pcs", "pseq"):
        assert f'class="prom-{code}"' in html and entry_url(baseline, code) in html
    assert "missing" in html and "NL value set" in html


def test_a_nurse_enters_eq5d5l_and_sees_the_index_at_once(client, nurse, baseline):
    client.force_login(nurse)
    form = client.get(entry_url(baseline, "eq5d5l"))
    assert form.status_code == 200 and "Mobility" in form.content.decode()
    response = client.post(entry_url(baseline, "eq5d5l"),
                           {"mo": "2", "sc": "1", "ua": "3", "pd": "4", "ad": "2", "vas": "55"}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("admin:registry_visit_change", args=[baseline.pk])
    html = response.content.decode()
    # NL (the site's country): 1 - 0.047 - 0.035 - 0.087 - 0.360 - 0.070
    assert "eq5d5l_index 0.401" in html and "eq5d5l_vas 55" in html
    assert PromAnswer.objects.filter(visit=baseline, instrument="eq5d5l").count() == 6
    assert PromAnswer.history.filter(visit_id=baseline.pk, history_user=nurse).count() == 6


def test_an_answer_off_the_scale_is_refused_next_to_the_item_and_nothing_is_saved(client, nurse, baseline):
    client.force_login(nurse)
    response = client.post(entry_url(baseline, "odi"), {"s1": "3", "s2": "6"})
    assert response.status_code == 400
    assert response.context["form"].errors["s2"] == [
        "Oswestry Disability Index item s2 is scored 0-5; 6 is not on the scale."]
    assert not PromAnswer.objects.exists()


def test_a_change_to_a_completed_visit_needs_a_reason(client, nurse, baseline):
    client.force_login(nurse)
    client.post(entry_url(baseline, "pcs"), {f"q{n}": "2" for n in range(1, 14)})
    response = client.post(entry_url(baseline, "pcs"), {f"q{n}": "3" for n in range(1, 14)})
    assert response.status_code == 400 and "give a reason" in response.content.decode()
    response = client.post(entry_url(baseline, "pcs"), {**{f"q{n}": "3" for n in range(1, 14)},
                                                        "change_reason": "re-read the form"})
    assert response.status_code == 302
    assert PromAnswer.objects.get(visit=baseline, item="q1").history.latest().history_change_reason \
        == "re-read the form"


def test_other_sites_get_a_404_and_investigators_may_not_enter(client, nurse_b, investigator, baseline):
    client.force_login(nurse_b)
    assert client.get(entry_url(baseline, "odi")).status_code == 404
    assert client.post(entry_url(baseline, "odi"), {"s1": "1"}).status_code == 404
    client.force_login(investigator)
    assert client.post(entry_url(baseline, "odi"), {"s1": "1"}).status_code == 403
    assert not PromAnswer.objects.exists()
    client.force_login(nurse_b)
    assert client.get(entry_url(baseline, "sf36")).status_code == 404


def test_a_nurse_gives_the_reason_an_item_is_not_answered(client, nurse, baseline):
    client.force_login(nurse)
    answers = {f"s{n}": "2" for n in range(1, 9)}
    response = client.post(entry_url(baseline, "odi"), {**answers, "s9_missing": "declined",
                                                        "s10_missing": "not_asked"})
    assert response.status_code == 302
    held = {a.item: (a.value, a.value_missing) for a in PromAnswer.objects.filter(visit=baseline)}
    assert held["s9"] == (None, "declined") and held["s10"] == (None, "not_asked")
    assert held["s1"] == (2, "")
    form = client.get(entry_url(baseline, "odi")).context["form"]
    assert form["s9_missing"].initial == "declined"
    # Both an answer and a reason: refused beside the reason, nothing changed.
    response = client.post(entry_url(baseline, "odi"), {**answers, "s9": "1", "s9_missing": "declined",
                                                        "change_reason": "x"})
    assert response.status_code == 400 and "s9_missing" in response.context["form"].errors
    assert PromAnswer.objects.get(visit=baseline, item="s9").value is None


def test_the_entry_runs_the_prom_check_at_once(client, nurse, baseline):
    from registry.models import DataQuery, QueryStatus

    client.force_login(nurse)
    client.post(entry_url(baseline, "odi"), {f"s{n}": "2" for n in range(1, 6)})  # 5 of 10
    query = DataQuery.objects.get(rule="prom_items_missing")
    assert (query.record_id, query.field, query.status) == (baseline.pk, "prom:odi", QueryStatus.OPEN)
    client.post(entry_url(baseline, "odi"), {**{f"s{n}": "2" for n in range(1, 9)},
                                             "change_reason": "rest of the paper form"})
    query.refresh_from_db()
    assert query.status == QueryStatus.CLOSED and query.closed_by_check

"""Every admin page, lookup and choice follows the access rule: a nurse sees and
edits her sites only, an investigator reads, a data manager sees everything."""

import pytest
from django.urls import reverse

from registry.models import PatientIdentifiers, Visit
from tests.admin.conftest import post_form
from tests.factories import make_event, make_visit


def listed(client, model, query=""):
    response = client.get(reverse(f"admin:registry_{model}_changelist") + query)
    assert response.status_code == 200
    return list(response.context["cl"].result_list)


def test_a_nurse_lists_only_her_sites_patients_visits_and_events(login, nurse, patient_a, patient_b):
    make_visit(patient_a)
    make_visit(patient_b)
    make_event(patient_a)
    make_event(patient_b)
    client = login(nurse)
    assert listed(client, "patient") == [patient_a]
    assert {v.patient_id for v in listed(client, "visit")} == {patient_a.pk}
    assert {e.patient_id for e in listed(client, "adverseevent")} == {patient_a.pk}


def test_a_data_manager_lists_every_site(login, data_manager, patient_a, patient_b):
    assert set(listed(login(data_manager), "patient")) == {patient_a, patient_b}


@pytest.mark.parametrize("view", ["change", "history", "delete"])
def test_another_sites_nurse_gets_404_on_every_page_of_a_patient(login, nurse_b, patient_a, view):
    client = login(nurse_b)
    assert client.get(reverse(f"admin:registry_patient_{view}", args=[patient_a.pk])).status_code == 404


def test_another_sites_nurse_gets_404_on_a_visit_and_its_history(login, nurse_b, patient_a):
    visit = make_visit(patient_a)
    client = login(nurse_b)
    assert client.get(reverse("admin:registry_visit_change", args=[visit.pk])).status_code == 404
    assert client.get(reverse("admin:registry_visit_history", args=[visit.pk])).status_code == 404
    record = visit.history.first()
    url = reverse("admin:registry_visit_simple_history", args=[visit.pk, record.history_id])
    assert client.get(url).status_code == 404


def test_a_nurse_cannot_attach_a_visit_to_another_sites_patient(login, nurse, patient_a, patient_b):
    client = login(nurse)
    response = post_form(client, reverse("admin:registry_visit_add"), patient=patient_b.pk,
                         timepoint="baseline", status="completed", date_done="2020-01-10", nrs="8")
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["patient"] == [
        "This patient is not at one of your sites (or does not exist)."]
    assert not Visit.objects.filter(patient=patient_b).exists()


def test_the_patient_autocomplete_offers_only_her_patients(login, nurse, patient_a, patient_b):
    client = login(nurse)
    response = client.get(reverse("admin:autocomplete"), {
        "app_label": "registry", "model_name": "visit", "field_name": "patient", "term": ""})
    assert response.status_code == 200
    assert [r["id"] for r in response.json()["results"]] == [str(patient_a.pk)]


def test_an_investigator_reads_but_cannot_change(login, investigator, patient_a):
    visit = make_visit(patient_a, nrs=8)
    client = login(investigator)
    page = client.get(reverse("admin:registry_visit_change", args=[visit.pk]))
    assert page.status_code == 200
    assert page.context["has_change_permission"] is False
    response = client.post(reverse("admin:registry_visit_change", args=[visit.pk]),
                           {"nrs": "2", "change_reason": "try"})
    assert response.status_code == 403
    visit.refresh_from_db()
    assert visit.nrs == 8
    assert client.get(reverse("admin:registry_visit_add")).status_code == 403


def test_identifiers_are_editable_on_the_patient_page_by_her_own_site_only(
        login, nurse, investigator, data_manager, identified_a):
    url = reverse("admin:registry_patient_change", args=[identified_a.patient_id])
    own = login(nurse).get(url)
    assert "HRN-111" in own.content.decode()
    assert login(investigator).get(url).content.decode().count("HRN-111") == 0


def test_a_data_manager_of_another_site_does_not_see_identifiers(login, data_manager, identified_b):
    # The data manager is a member of site A only: B's identifiers stay at B.
    url = reverse("admin:registry_patient_change", args=[identified_b.patient_id])
    page = login(data_manager).get(url)
    assert page.status_code == 200
    assert "HRN-222" not in page.content.decode()


def test_a_nurse_enters_the_record_number_when_she_edits_the_patient(login, nurse, patient_a):
    url = reverse("admin:registry_patient_change", args=[patient_a.pk])
    response = post_form(login(nurse), url, **{
        "identifiers-TOTAL_FORMS": "1", "identifiers-0-record_number": "HRN-777"})
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert PatientIdentifiers.objects.get(patient=patient_a).record_number == "HRN-777"


def test_record_number_search_finds_only_patients_of_her_own_site(login, nurse, nurse_b, identified_a,
                                                                  identified_b):
    assert listed(login(nurse), "patient", "?q=HRN-111") == [identified_a.patient]
    assert listed(login(nurse), "patient", "?q=HRN-222") == []
    assert listed(login(nurse_b), "patient", "?q=HRN-111") == []


def test_an_investigator_cannot_search_by_record_number(login, investigator, identified_a):
    assert listed(login(investigator), "patient", "?q=HRN-111") == []
    assert listed(login(investigator), "patient", f"?q={identified_a.patient.registry_id}") == [
        identified_a.patient]


def test_the_visit_list_searches_by_record_number_within_her_site(login, nurse, identified_a):
    visit = make_visit(identified_a.patient)
    assert listed(login(nurse), "visit", "?q=HRN-111") == [visit]


def test_the_site_filter_lists_only_her_sites(login, nurse, site_a, site_b):
    response = login(nurse).get(reverse("admin:registry_patient_changelist"))
    site_filter = next(f for f in response.context["cl"].filter_specs if f.parameter_name == "site")
    assert [label for _, label in site_filter.lookup_choices] == ["AAA"]

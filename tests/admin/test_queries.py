"""Data queries in the admin: the list and the page per role, the steps, opening from a
record's page, the queries on the record's page, nothing for investigators; the checks
run after an admin save."""

import pytest
from django.urls import reverse

from registry.models import DataQuery, QueryStatus, Visit, VisitStatus
from registry.services import queries
from tests.factories import make_visit

LIST = "/admin/registry/dataquery/"


@pytest.fixture
def visit_a(patient_a, implant_a, nurse):
    return make_visit(patient_a, implant_a, actor=nurse, timepoint="m3", date_done=implant_a.implant_date
                      .replace(month=6), nrs=4)


@pytest.fixture
def query_a(visit_a, data_manager):
    return queries.query_open(record=visit_a, field="nrs", text="Is 4 right?", actor=data_manager)


def login(client, user):
    client.force_login(user)
    return client


def test_the_nurse_sees_her_sites_query_in_the_list_and_answers_it(client, query_a, nurse):
    login(client, nurse)
    page = client.get(LIST).content.decode()
    assert query_a.record_key in page and "Is 4 right?" in page
    url = reverse("admin:registry_dataquery_change", args=[query_a.pk])
    page = client.get(url).content.decode()
    assert 'name="_answer"' in page and 'name="_close"' not in page
    response = client.post(url, {"text": "Yes, checked.", "_answer": "Send answer"})
    assert response.status_code == 302
    query_a.refresh_from_db()
    assert query_a.status == QueryStatus.ANSWERED and query_a.answered_by == nurse


def test_the_data_manager_closes_and_reopens(client, query_a, data_manager):
    login(client, data_manager)
    url = reverse("admin:registry_dataquery_change", args=[query_a.pk])
    client.post(url, {"text": "Fine.", "_close": "Close"})
    query_a.refresh_from_db()
    assert query_a.status == QueryStatus.CLOSED
    assert 'name="_reopen"' in client.get(url).content.decode()
    client.post(url, {"text": "Not fine.", "_reopen": "Reopen"})
    query_a.refresh_from_db()
    assert query_a.status == QueryStatus.OPEN


def test_a_step_without_a_message_is_refused_with_a_message(client, query_a, nurse):
    login(client, nurse)
    url = reverse("admin:registry_dataquery_change", args=[query_a.pk])
    response = client.post(url, {"text": " ", "_answer": "Send answer"}, follow=True)
    assert "Write the answer" in response.content.decode()
    query_a.refresh_from_db()
    assert query_a.status == QueryStatus.OPEN


def test_a_nurse_cannot_close_by_posting_the_button(client, query_a, nurse):
    login(client, nurse)
    url = reverse("admin:registry_dataquery_change", args=[query_a.pk])
    response = client.post(url, {"text": "x", "_close": "Close"}, follow=True)
    assert "Only data managers close" in response.content.decode()
    query_a.refresh_from_db()
    assert query_a.status == QueryStatus.OPEN


def test_the_nurse_of_another_site_gets_a_404_and_an_empty_list(client, query_a, nurse_b):
    login(client, nurse_b)
    assert query_a.record_key not in client.get(LIST).content.decode()
    url = reverse("admin:registry_dataquery_change", args=[query_a.pk])
    assert client.get(url).status_code == 404
    assert client.post(url, {"text": "x", "_answer": "1"}).status_code == 404


def test_investigators_see_no_query_page_and_no_queries_on_records(client, query_a, visit_a,
                                                                 investigator):
    login(client, investigator)
    assert client.get(LIST).status_code == 403
    page = client.get(reverse("admin:registry_visit_change", args=[visit_a.pk])).content.decode()
    assert "Data queries" not in page and "Is 4 right" not in page
    assert "Data queries" not in client.get("/admin/").content.decode()


def test_the_record_page_lists_its_open_queries_and_the_data_manager_opens_one(
        client, query_a, visit_a, data_manager, nurse):
    login(client, nurse)
    page = client.get(reverse("admin:registry_visit_change", args=[visit_a.pk])).content.decode()
    assert "Data queries" in page and "record-queries" in page and "Open a query" not in page
    login(client, data_manager)
    page = client.get(reverse("admin:registry_visit_change", args=[visit_a.pk])).content.decode()
    assert "Open a query" in page
    add = f"{reverse('admin:registry_dataquery_add')}?record_type=visit&record_id={visit_a.pk}"
    assert client.get(add).status_code == 200
    response = client.post(add, {"record_type": "visit", "record_id": visit_a.pk,
                                 "field": "satisfaction", "text": "Satisfaction missing?"})
    assert response.status_code == 302, response.content.decode()[:3000]
    query = DataQuery.objects.get(field="satisfaction")
    assert query.opened_by == data_manager and query.messages.get().text == "Satisfaction missing?"


def test_opening_without_a_record_is_refused_with_a_message(client, data_manager, site_a):
    login(client, data_manager)
    response = client.post(reverse("admin:registry_dataquery_add"),
                           {"record_type": "visit", "record_id": "99999", "text": "?"})
    assert response.status_code == 200
    assert "Open a query from the page of the record" in response.content.decode()
    assert not DataQuery.objects.exists()


def test_a_nurses_fix_in_the_admin_closes_the_checks_query(client, patient_a, implant_a, nurse):
    from registry.services import checks

    visit = Visit.objects.get(implant=implant_a, timepoint="m1")
    visit.status, visit.date_done = VisitStatus.COMPLETED, visit.target_date
    from registry.services.audit import record_save

    record_save(visit, actor=nurse, reason="test")
    checks.checks_run(rules=["visit_completed_without_nrs"])
    query = DataQuery.objects.get(rule="visit_completed_without_nrs")
    login(client, nurse)
    url = reverse("admin:registry_visit_change", args=[visit.pk])
    form = client.get(url).context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and k in form.fields}
    data.update({"nrs": 5, "change_reason": "NRS from the call sheet", "edit_version": visit.version,
                 "pain_scores-TOTAL_FORMS": 0, "pain_scores-INITIAL_FORMS": 0,
                 "reminders-TOTAL_FORMS": 0, "reminders-INITIAL_FORMS": 0})
    data = {k: ("" if v is None else v) for k, v in data.items()}
    response = client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    query.refresh_from_db()
    assert query.status == QueryStatus.CLOSED and query.closed_by_check

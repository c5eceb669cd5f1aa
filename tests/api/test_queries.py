"""/api/v1/queries/: rows, filters, steps by role, refusals naming the field, query counts."""

import datetime

import pytest
from django.utils import timezone

from registry.models import DataQuery
from registry.services import checks, queries

pytestmark = pytest.mark.django_db
URL = "/api/v1/queries/"


@pytest.fixture
def asked(cohort, data_manager):
    """A query on site A's m3 NRS by the data manager, one from a check at site B."""
    manual = queries.query_open(record=cohort["a1_m3"], field="nrs", text="Is 3 right?",
                                actor=data_manager)
    visit_b = cohort["b1"].visits.get(timepoint="m1")
    visit_b.nrs = None
    from registry.services.audit import record_save, system_user

    record_save(visit_b, actor=system_user(), reason="test", validate=False)
    checks.checks_run(rules=["visit_completed_without_nrs"])
    return manual


def test_a_nurse_lists_her_sites_queries_with_the_record_and_the_timepoint(client_for, asked, nurse,
                                                                         cohort):
    response = client_for(nurse).get(URL)
    assert response.status_code == 200
    [row] = response.json()["results"]
    assert row["registry_id"] == cohort["a1"].registry_id and row["site"] == "AAA"
    assert (row["record_type"], row["record_id"], row["timepoint"], row["field"], row["rule"],
            row["status"]) == ("visit", cohort["a1_m3"].pk, "m3", "nrs", "", "open")
    assert row["opened_by"] == "dm" and row["opened_at"] and row["age_days"] == 0


def test_a_data_manager_sees_every_site_and_filters(client_for, asked, data_manager):
    client = client_for(data_manager)
    assert {r["site"] for r in client.get(URL).json()["results"]} == {"AAA", "BBB"}
    by_rule = client.get(URL, {"rule": "visit_completed_without_nrs"}).json()["results"]
    assert [r["site"] for r in by_rule] == ["BBB"]
    assert [r["rule"] for r in client.get(URL, {"manual": "true"}).json()["results"]] == [""]
    assert len(client.get(URL, {"site": "AAA", "status": "open"}).json()["results"]) == 1
    assert client.get(URL, {"status": "closed"}).json()["results"] == []
    DataQuery.objects.filter(pk=asked.pk).update(opened_at=timezone.now() - datetime.timedelta(days=40))
    old = client.get(URL, {"opened_before_days": 30}).json()["results"]
    assert [r["id"] for r in old] == [asked.pk]
    assert asked.pk not in [r["id"] for r in client.get(URL, {"opened_within_days": 30}).json()["results"]]


@pytest.mark.parametrize("params, name", [
    ({"status": "opn"}, "status"), ({"rule": "nrs_jumps"}, "rule"), ({"site": "ZZZ"}, "site"),
    ({"opened_before_days": "-1"}, "opened_before_days"), ({"opened_within_days": "x"}, "opened_within_days"),
    ({"record_type": "prom"}, "record_type"), ({"opened_before_days": "1e400"}, "opened_before_days"),
])
def test_bad_filters_are_a_400_naming_the_parameter(client_for, asked, data_manager, params, name):
    response = client_for(data_manager).get(URL, params)
    assert response.status_code == 400, response.content
    assert name in response.json()


def test_investigators_get_nothing_not_even_an_empty_list(client_for, asked, investigator):
    client = client_for(investigator)
    assert client.get(URL).status_code == 403
    assert client.get(f"{URL}{asked.pk}/").status_code == 403
    assert client.post(URL, {"record_type": "visit", "record_id": 1, "text": "?"}).status_code == 403


def test_the_nurse_of_another_site_gets_a_404(client_for, asked, nurse_b):
    client = client_for(nurse_b)
    assert client.get(f"{URL}{asked.pk}/").status_code == 404
    assert client.post(f"{URL}{asked.pk}/answer/", {"text": "?"}).status_code == 404


def test_the_cycle_through_the_api(client_for, cohort, data_manager, nurse):
    dm, site_nurse = client_for(data_manager), client_for(nurse)
    response = dm.post(URL, {"record_type": "visit", "record_id": cohort["a1_m3"].pk, "field": "nrs",
                             "text": "Please confirm the NRS."}, format="json")
    assert response.status_code == 201, response.content
    query = response.json()
    assert query["status"] == "open" and query["messages"][0]["text"] == "Please confirm the NRS."
    detail = f"{URL}{query['id']}/"
    assert site_nurse.post(f"{detail}close/", {"text": "done"}).status_code == 403
    response = site_nurse.post(f"{detail}answer/", {"text": "Confirmed in the chart."}, format="json")
    assert response.status_code == 200 and response.json()["status"] == "answered"
    assert response.json()["answered_by"] == "nurse_a"
    response = dm.post(f"{detail}close/", {"text": "Thanks."}, format="json")
    assert response.status_code == 200 and response.json()["status"] == "closed"
    assert [m["action"] for m in dm.get(detail).json()["messages"]] == ["open", "answer", "close"]
    response = dm.post(f"{detail}close/", {"text": "Again."}, format="json")
    assert response.status_code == 400 and "status" in response.json()


@pytest.mark.parametrize("body, name", [
    ({"record_type": "visits", "record_id": 1, "text": "?"}, "record_type"),
    ({"record_type": "visit", "record_id": 99999999, "text": "?"}, "record_id"),
    ({"record_type": "visit", "record_id": "x", "text": "?"}, "record_id"),
    ({"record_type": "visit", "record_id": "RECORD", "field": "nrss", "text": "?"}, "field"),
    ({"record_type": "visit", "record_id": "RECORD", "text": ""}, "text"),
    ({"record_type": "visit", "record_id": "RECORD", "text": "a\x00b"}, "text"),
])
def test_a_bad_create_is_a_400_naming_the_field(client_for, cohort, data_manager, body, name):
    body = {k: (cohort["a1_m3"].pk if v == "RECORD" else v) for k, v in body.items()}
    response = client_for(data_manager).post(URL, body, format="json")
    assert response.status_code == 400, response.content
    assert name in response.json()
    assert not DataQuery.objects.exists()


def test_a_nurse_cannot_open_a_query(
        client_for, cohort, nurse):
    response = client_for(nurse).post(URL, {"record_type": "visit", "record_id": cohort["a1_m3"].pk,
                                            "text": "?"}, format="json")
    assert response.status_code == 403


def test_the_list_has_a_bounded_number_of_queries(client_for, asked, data_manager, cohort,
                                                  django_assert_max_num_queries):
    for visit in cohort["a1"].visits.all():
        queries.query_open(record=visit, field="", text="?", actor=data_manager)
    client = client_for(data_manager)
    with django_assert_max_num_queries(12):
        response = client.get(URL)
    assert len(response.json()["results"]) > 3

"""The record status grid: each cell's state, paging, a bounded query count, who sees it."""

import datetime
from unittest import mock

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from registry.models import Visit, VisitStatus
from registry.services import status_grid, worklist
from tests.conftest import PASSWORD
from tests.factories import make_implant, make_patient, make_visit

DAY = datetime.date(2020, 9, 15)  # implant 2020-03-01: m1, m3 closed, m6 open, m12 later
AT = datetime.datetime(2020, 9, 15, 12, tzinfo=datetime.UTC)


def a_followed_patient(site, actor):
    patient = make_patient(site, actor=actor)
    implant = make_implant(patient, actor=actor)
    make_visit(patient, None, actor=actor)  # baseline, done
    make_visit(patient, implant, actor=actor, timepoint="m1", date_done=datetime.date(2020, 4, 2), nrs=5)
    make_visit(patient, implant, actor=actor, timepoint="m3", status=VisitStatus.MISSED,
               date_done=None, nrs=None, visit_missing="declined")
    return patient


def states(grid, patient):
    row = next(r for r in grid.rows if r.patient_id == patient.pk)
    return {code: cell for (code, _label), cell in zip(grid.columns, row.cells, strict=True)}


def test_each_cell_says_the_visits_state_on_the_sites_day(site_a, nurse):
    patient = a_followed_patient(site_a, nurse)
    Visit.objects.filter(patient=patient, timepoint="m24").update(status=VisitStatus.NOT_APPLICABLE)
    grid = status_grid.record_status_grid(site=site_a, user=nurse, day=DAY)
    cells = states(grid, patient)
    codes = [code for code, _label in grid.columns]
    assert codes[:5] == ["baseline", "trial_end", "m1", "m3", "m6"] and codes[-1] == "unscheduled"
    assert cells["baseline"].state == "done" and cells["m1"].state == "done"
    assert cells["m3"].state == "missed" and cells["m3"].label == "Missed: Asked but declined"
    assert cells["m6"].state == "due" and cells["m12"].state == "upcoming"
    assert cells["m24"].state == "not_applicable"
    assert cells["trial_end"].state == "" and cells["trial_end"].visit_id is None
    assert cells["m1"].visit_id == Visit.objects.get(patient=patient, timepoint="m1").pk
    # Nothing recorded for m1 of another patient: overdue the day after its window.
    other = make_patient(site_a, actor=nurse)
    make_implant(other, actor=nurse)
    assert states(status_grid.record_status_grid(site=site_a, user=nurse, day=DAY), other)[
        "m1"].state == "overdue"


@pytest.fixture
def nurse_client(client, nurse):
    client.login(username=nurse.username, password=PASSWORD)
    return client


def test_the_page_shows_the_grid_with_links_to_the_visits_and_pages(nurse_client, site_a, nurse):
    patients = [a_followed_patient(site_a, nurse) for _ in range(3)]
    url = reverse("admin:registry_status_grid", args=[site_a.pk])
    with mock.patch.object(worklist, "now", return_value=AT):
        page = nurse_client.get(url, {"per_page": 2})
    html = page.content.decode()
    assert page.status_code == 200 and 'id="status-grid"' in html
    m1 = Visit.objects.get(patient=patients[0], timepoint="m1")
    assert reverse("admin:registry_visit_change", args=[m1.pk]) in html
    assert patients[0].registry_id in html and patients[2].registry_id not in html
    assert "Page 1 of 2 (3 patients)" in html
    with mock.patch.object(worklist, "now", return_value=AT):
        second = nurse_client.get(url, {"per_page": 2, "page": 2}).content.decode()
    assert patients[2].registry_id in second and patients[0].registry_id not in second
    # The home page links each of her sites' grids.
    assert url in nurse_client.get(reverse("admin:index")).content.decode()


def test_the_query_count_does_not_grow_with_the_page(nurse_client, site_a, nurse):
    for _ in range(12):
        a_followed_patient(site_a, nurse)
    url = reverse("admin:registry_status_grid", args=[site_a.pk])
    nurse_client.get(url)  # the first request of a session caches her role and sites
    counts = []
    for per_page in (2, 12):
        with CaptureQueriesContext(connection) as queries:
            assert nurse_client.get(url, {"per_page": per_page}).status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1] and counts[0] <= 15, counts


def test_another_sites_nurse_gets_a_404_and_an_investigator_is_refused(client, site_a, nurse, nurse_b,
                                                                        investigator):
    a_followed_patient(site_a, nurse)
    url = reverse("admin:registry_status_grid", args=[site_a.pk])
    client.login(username=nurse_b.username, password=PASSWORD)
    assert client.get(url).status_code == 404
    client.logout()
    client.login(username=investigator.username, password=PASSWORD)
    assert client.get(url).status_code == 403


def test_a_bad_page_or_size_is_not_a_500(nurse_client, site_a, nurse):
    a_followed_patient(site_a, nurse)
    url = reverse("admin:registry_status_grid", args=[site_a.pk])
    for params in ({"page": "x"}, {"page": "999"}, {"per_page": "-3"}, {"per_page": "100000"}):
        assert nurse_client.get(url, params).status_code == 200, params

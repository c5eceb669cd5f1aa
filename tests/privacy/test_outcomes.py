"""Outcomes as an attacker uses them: a filter on the real implant year to find the
real year behind a shifted date, and a cohort of one patient to read that patient's
figures. Investigators get a 400 naming the parameter, and small cells suppressed."""

import datetime

import pytest
from django.test import override_settings
from django.urls import reverse
from rest_framework.test import APIClient

from registry.services import outcomes
from registry.services.tokens import api_token_create
from tests.factories import make_implant, make_patient, make_visit

pytestmark = pytest.mark.django_db


def api(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_create(user=user, label='t')}")
    return client


@pytest.fixture
def cohort(site_a, nurse):
    """Six SCS patients and one DRG patient at site A, each with baseline and m3."""
    for therapy in ["SCS"] * 6 + ["DRG"]:
        patient = make_patient(site_a, actor=nurse)
        implant = make_implant(patient, actor=nurse, therapy=therapy)
        make_visit(patient, None, actor=nurse, timepoint="baseline", nrs=8)
        make_visit(patient, implant, actor=nurse, timepoint="m3", nrs=3,
                   date_done=datetime.date(2020, 6, 1))


@pytest.mark.parametrize("param", ["implant_year_from", "implant_year_to"])
def test_an_investigator_may_not_filter_on_the_implant_year(cohort, investigator, data_manager, param):
    response = api(investigator).get("/api/v1/outcomes/", {param: "2020"})
    assert response.status_code == 400
    assert param in response.json() and "real dates" in response.json()[param][0]
    assert api(data_manager).get("/api/v1/outcomes/", {param: "2020"}).status_code == 200


def test_the_dashboard_refuses_the_implant_year_for_an_investigator(client, cohort, investigator):
    client.force_login(investigator)
    response = client.get(reverse("admin:registry_outcomes"), {"implant_year_from": "2020"})
    html = response.content.decode()
    assert "implant_year_from" in html and "real dates" in html
    assert response.context["report"] is None


def test_a_group_under_the_limit_is_suppressed_for_an_investigator(cohort, investigator, data_manager):
    shown = api(investigator).get("/api/v1/outcomes/", {"group_by": "therapy"}).json()
    groups = {g["group"]: g for g in shown["groups"]}
    assert groups["DRG"]["suppressed"] is True
    assert groups["DRG"]["n_patients"] is None and groups["DRG"]["responders"] is None
    assert groups["SCS"]["suppressed"] is False and groups["SCS"]["n_patients"] == 6
    real = api(data_manager).get("/api/v1/outcomes/", {"group_by": "therapy"}).json()
    assert {g["group"]: g["n_patients"] for g in real["groups"]} == {"DRG": 1, "SCS": 6}


def test_a_one_patient_cohort_is_suppressed_for_an_investigator(cohort, investigator):
    body = api(investigator).get("/api/v1/outcomes/", {"therapy": "DRG"}).json()
    assert body["suppressed"] is True and body["n_patients"] is None and body["nrs_baseline_mean"] is None


@override_settings(REGISTRY_MIN_CELL=7)
def test_the_limit_is_a_setting(cohort, investigator):
    assert api(investigator).get("/api/v1/outcomes/", {"therapy": "SCS"}).json()["suppressed"] is True
    assert api(investigator).get("/api/v1/outcomes/").json()["n_patients"] == 7


def test_the_dashboard_and_the_text_say_that_a_cohort_was_suppressed(client, cohort, investigator):
    client.force_login(investigator)
    response = client.get(reverse("admin:registry_outcomes"), {"therapy": "DRG"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "suppressed" in html and "Fewer than 5 patients" in html
    report = outcomes.outcome_report(user=investigator, therapy="DRG")
    assert report["pairs"] == [] and "suppressed" in report["paragraph"]
    assert all(g["suppressed"] for g in report["by_therapy"])

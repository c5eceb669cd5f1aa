"""Issue 21: the outcomes dashboard (report, PROM outcomes, survival, attrition and their eight
plots) issues as many queries for many patients as for few, and reads the cohort once per
request (services.outcomes.outcome_cohort)."""

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from registry.services.audit import system_user
from registry.services.outcomes import analysis
from registry.services.synthetic import synthetic_registry
from registry.services.users import registry_user_save

pytestmark = pytest.mark.django_db

TODAY = datetime.date(2026, 12, 1)


def _grow(patients: int, seed: int) -> None:
    synthetic_registry(patients=patients, seed=seed, today=TODAY, actor=system_user())


def _queries(call) -> int:
    with CaptureQueriesContext(connection) as captured:
        call()
    return len(captured)


def _all_sites_manager():
    user, _ = registry_user_save(username="dm-all", role="data_manager", site_codes=[], all_sites=True,
                                 password=None, validate_pw=False)
    return user


def test_the_dashboard_issues_as_many_queries_for_many_patients_as_for_few(client):
    client.force_login(_all_sites_manager())

    def dashboard():
        response = client.get("/admin/registry/outcomes/")
        assert response.status_code == 200
        # Every plot drawn: the report's four, the PROM MIC and the three of survival and attrition.
        assert response.content.decode().count('class="outcome-plot"') == 8

    _grow(12, seed=7)
    dashboard()  # the first request of a session also loads what later ones find cached
    few = _queries(dashboard)
    _grow(48, seed=8)
    assert _queries(dashboard) == few


def test_the_dashboard_reads_the_cohort_once(client, monkeypatch):
    client.force_login(_all_sites_manager())
    _grow(12, seed=9)
    loads = []
    original = analysis._load
    monkeypatch.setattr(analysis, "_load", lambda *a: loads.append(1) or original(*a))
    assert client.get("/admin/registry/outcomes/").status_code == 200
    assert len(loads) == 1

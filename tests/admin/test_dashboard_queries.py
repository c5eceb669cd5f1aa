"""Issue 21: the outcomes dashboard (report, PROM outcomes, survival, attrition and their eight
plots) issues as many queries for many patients as for few, and reads the cohort once per
request (services.outcomes.outcome_cohort)."""

import pytest

from registry.services.outcomes import analysis
from registry.services.users import registry_user_save
from tests.factories import count_queries, grow_synthetic

pytestmark = pytest.mark.django_db


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

    grow_synthetic(12, seed=7)
    dashboard()  # the first request of a session also loads what later ones find cached
    few = count_queries(dashboard)
    grow_synthetic(48, seed=8)
    assert count_queries(dashboard) == few


def test_the_dashboard_reads_the_cohort_once(client, monkeypatch):
    client.force_login(_all_sites_manager())
    grow_synthetic(12, seed=9)
    loads = []
    original = analysis._load
    monkeypatch.setattr(analysis, "_load", lambda *a: loads.append(1) or original(*a))
    assert client.get("/admin/registry/outcomes/").status_code == 200
    assert len(loads) == 1

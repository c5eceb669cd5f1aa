"""/api/v1/completeness/: rows per site, timepoint and instrument; filters; 400 naming the
parameter; investigators counts only; the schema and the responses agree."""

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from registry.services import queries
from tests.api.test_schema import keep_test_connection  # noqa: F401  (a fixture)

pytestmark = pytest.mark.django_db
URL = "/api/v1/completeness/"


def by_key(data):
    return {(r["site"], r["timepoint"], r["instrument"]): r for r in data["rows"]}


def test_a_nurse_gets_her_sites_rows_with_reasons_and_queries(client_for, cohort, nurse, data_manager):
    queries.query_open(record=cohort["a1_m3"], field="nrs", text="Is 3 right?", actor=data_manager)
    response = client_for(nurse).get(URL, {"timepoint": "m3"})
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["shows_queries"] is True
    assert [r["code"] for r in data["reasons"]][-1] == "none"
    rows = by_key(data)
    assert {site for site, _tp, _i in rows} == {"AAA"}
    nrs = rows["AAA", "m3", "nrs"]
    # Two site-A patients implanted 2020: a1's m3 done (NRS 3), a2's m3 overdue, no reason.
    assert (nrs["expected"], nrs["done"], nrs["missing"]["none"], nrs["open_queries"]) == (2, 1, 1, 1)
    assert nrs["done_percent"] == 50.0


def test_the_site_filter(client_for, cohort, data_manager):
    rows = by_key(client_for(data_manager).get(URL, {"site": "BBB"}).json())
    assert rows and {site for site, _tp, _i in rows} == {"BBB"}


@pytest.mark.parametrize("params, name", [
    ({"site": "ZZZ"}, "site"), ({"site": "BBB"}, "site"), ({"timepoint": "m3x"}, "timepoint"),
    ({"timepoint": "unscheduled"}, "timepoint"), ({"colour": "red"}, "colour"),
    ({"format": "csv"}, "format"),
])
def test_bad_parameters_are_a_400_naming_them(client_for, cohort, nurse, params, name):
    response = client_for(nurse).get(URL, params)
    assert response.status_code == 400
    assert name in response.json() and str(next(iter(params.values()))) in str(response.json())


def test_investigators_get_counts_without_queries(client_for, cohort, investigator, data_manager,
                                                  settings):
    settings.REGISTRY_MIN_CELL = 2
    queries.query_open(record=cohort["a1_m3"], field="nrs", text="Is 3 right?", actor=data_manager)
    data = client_for(investigator).get(URL).json()
    assert data["shows_queries"] is False and data["min_cell"] == 2
    rows = by_key(data)
    assert rows["AAA", "m3", "nrs"]["expected"] == 2
    assert all(r["open_queries"] is None for r in data["rows"])
    assert {site for site, _tp, _i in rows} == {"AAA"}  # her site only
    settings.REGISTRY_MIN_CELL = 3  # two patients at site A: every row is too small
    data = client_for(investigator).get(URL).json()
    assert data["rows"] and all(r["suppressed"] and r["expected"] is None and r["missing"] is None
                                and r["done_percent"] is None for r in data["rows"])


def test_no_token_is_a_401(client_for, cohort):
    assert client_for().get(URL).status_code == 401


def test_the_report_conforms_to_its_schema(cohort, data_manager, keep_test_connection):  # noqa: F811
    from registry.services.tokens import api_token_create

    header = {"Authorization": f"Token {api_token_create(user=data_manager)}"}
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())
    [operation] = [op for op in (r.ok() for r in schema.get_all_operations()) if op.path == URL]

    @given(case=operation.as_strategy())
    @settings(max_examples=10, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def conforms(case):
        case.call_and_validate(headers=header, checks=[
            not_a_server_error, response_schema_conformance, content_type_conformance])

    conforms()

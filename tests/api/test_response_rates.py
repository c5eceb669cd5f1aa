"""GET /api/v1/outcomes/response-rates/: the dashboard's questionnaire response rates, per
site and timepoint, scoped to the caller's sites and suppressed for small groups."""

import pytest

from registry.models import EproLink
from registry.services import epro
from tests.epro.conftest import answers, open_m3

pytestmark = pytest.mark.django_db

URL = "/api/v1/outcomes/response-rates/"


@pytest.fixture
def invited(site_a, site_b, nurse, nurse_b):
    visits = [open_m3(site_a)[1] for _ in range(3)] + [open_m3(site_b)[1]]
    for visit in visits:
        link, _ = epro.link_create(visit=visit, channel=EproLink.Channel.PRINTED, actor=nurse)
    first = EproLink.objects.get(visit=visits[0])
    epro.answers_submit(link=first, data=answers(visits[0]))
    return visits


def test_the_rates_are_the_dashboards_per_site_and_timepoint(client_for, invited, nurse):
    response = client_for(nurse).get(URL)
    assert response.status_code == 200
    assert response.json() == {"rates": [{"site": "AAA", "timepoint": "m3", "invited": 3, "answered": 1,
                                          "rate": 33.3, "suppressed": False}]}
    assert response.json()["rates"] == epro.response_rates(nurse)


def test_each_caller_sees_only_her_sites(client_for, invited, nurse_b):
    assert [r["site"] for r in client_for(nurse_b).get(URL).json()["rates"]] == ["BBB"]


def test_small_groups_are_suppressed_for_investigators(client_for, invited, investigator, settings):
    settings.REGISTRY_MIN_CELL = 5
    assert client_for(investigator).get(URL).json()["rates"] == [
        {"site": "AAA", "timepoint": "m3", "invited": None, "answered": None, "rate": None,
         "suppressed": True}]


def test_no_role_no_token_and_bad_parameters_are_refused(client_for, invited, outsider, data_manager):
    assert client_for().get(URL).status_code == 401
    assert client_for(outsider).get(URL).status_code == 403
    response = client_for(data_manager).get(URL, {"site": "AAA"})
    assert response.status_code == 400 and "site" in response.json()
    bad = client_for(data_manager).get(URL, {"format": "csv"})
    assert bad.status_code == 400 and "csv" in str(bad.json())


def test_the_schema_lists_it(client):
    schema = client.get("/api/schema/?format=json").json()
    operation = schema["paths"][URL]["get"]
    assert operation["operationId"] == "outcomes_response_rates" and "outcomes" in operation["tags"]

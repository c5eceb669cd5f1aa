"""GET /api/v1/outcomes/explant-incidence/, ipg-longevity/ and attrition/: the service's
figures, scoped to the caller's sites, small cohorts suppressed, bad input a 400."""

import datetime

import pytest

from registry.models import DeviceComponent
from registry.services.audit import system_user
from registry.services.components import component_save
from registry.services.implants import implant_save
from tests.factories import make_implant, make_patient

pytestmark = pytest.mark.django_db
D = datetime.date


@pytest.fixture
def explants(site_a, site_b):
    for site, n in ((site_a, 3), (site_b, 2)):
        for k in range(n):
            patient = make_patient(site)
            implant = make_implant(patient)
            component_save(component=DeviceComponent(implant=implant, kind="ipg",
                                                     manufacturer="Acme", model="X"),
                           actor=system_user())
            if k == 0:
                implant.explant_date, implant.explant_reason_code = D(2021, 3, 1), "infection"
                implant_save(implant=implant, actor=system_user(), reason="explant")


def test_the_incidence_is_scoped_to_the_callers_sites(client_for, nurse, data_manager, explants):
    mine = client_for(nurse).get("/api/v1/outcomes/explant-incidence/").json()
    everyone = client_for(data_manager).get("/api/v1/outcomes/explant-incidence/").json()
    assert (mine["n_patients"], everyone["n_patients"]) == (3, 5)
    infection = {c["cause"]: c for c in everyone["causes"]}["infection"]
    assert infection["events"] == 2 and infection["curve"]["values"][-1] > 0
    assert "competing" in everyone["censoring"] and everyone["method"] == "Aalen-Johansen"


def test_ipg_longevity_and_attrition_answer(client_for, data_manager, explants):
    longevity = client_for(data_manager).get("/api/v1/outcomes/ipg-longevity/").json()
    assert [(m["model"], m["n_ipgs"]) for m in longevity["models"]] == [("Acme X", 5)]
    attrition = client_for(data_manager).get("/api/v1/outcomes/attrition/", {"therapy": "SCS"})
    assert attrition.status_code == 200
    body = attrition.json()
    assert body["enrolled"] == 5 and body["timepoints"][0]["timepoint"] == "m1"


def test_an_investigator_gets_a_small_cohort_suppressed(client_for, investigator, explants,
                                                        settings):
    settings.REGISTRY_MIN_CELL = 10
    body = client_for(investigator).get("/api/v1/outcomes/explant-incidence/").json()
    assert body["suppressed"] and body["causes"] == []
    models = client_for(investigator).get("/api/v1/outcomes/ipg-longevity/").json()["models"]
    assert models[0]["n_ipgs"] is None and models[0]["curve"] is None


@pytest.mark.parametrize("url", ["explant-incidence", "ipg-longevity", "attrition"])
def test_bad_input_is_a_400_naming_the_parameter(client_for, data_manager, url):
    response = client_for(data_manager).get(f"/api/v1/outcomes/{url}/", {"therapy": "XYZ"})
    assert response.status_code == 400 and "XYZ" in response.json()["therapy"][0]
    assert client_for(None).get(f"/api/v1/outcomes/{url}/").status_code in (401, 403)

"""The outcomes dashboard shows explants per cause, IPG longevity and the attrition
waterfall, each with how it censors."""

import datetime

import pytest

from registry.services.audit import system_user
from registry.services.implants import implant_save
from tests.factories import make_implant, make_patient

pytestmark = pytest.mark.django_db


@pytest.fixture
def explanted(site_a):
    for k in range(3):
        implant = make_implant(make_patient(site_a))
        if k == 0:
            implant.explant_date, implant.explant_reason_code = datetime.date(2021, 3, 1), "infection"
            implant_save(implant=implant, actor=system_user(), reason="explant")


def test_the_dashboard_plots_the_incidence_longevity_and_attrition(login, data_manager, explanted):
    response = login(data_manager).get("/admin/registry/outcomes/")
    html = response.content.decode()
    assert response.status_code == 200
    assert 'aria-label="Cumulative incidence of explant per cause, death a competing event"' in html
    assert 'aria-label="Kaplan-Meier IPG longevity per model"' in html
    assert 'aria-label="Attrition waterfall per follow-up timepoint"' in html
    assert "death before an explant is a competing event" in html
    assert "removal for another reason is censored" in html
    assert '<table id="attrition">' in html and "<th scope=\"row\">m1</th>" in html


def test_an_investigator_sees_no_small_cell_in_the_waterfall(login, investigator, explanted,
                                                              settings):
    settings.REGISTRY_MIN_CELL = 5
    html = login(investigator).get("/admin/registry/outcomes/").content.decode()
    assert '<table id="attrition">' not in html and "Attrition waterfall" not in html

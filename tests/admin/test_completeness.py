"""The completeness report page: linked from the Registry app list, a table and a plot,
nurses their sites with the open queries, investigators counts only, bad filters named."""

import datetime

import pytest

from registry.models import Visit, VisitStatus
from registry.services import queries
from registry.services.audit import record_save, system_user
from tests.factories import make_implant, make_patient, make_visit

pytestmark = pytest.mark.django_db
URL = "/admin/registry/completeness/"


@pytest.fixture
def cohort(site_a, site_b, nurse, nurse_b, data_manager):
    a = make_patient(site_a, actor=nurse)
    make_visit(a, actor=nurse)
    implant = make_implant(a, actor=nurse)
    m3 = Visit.objects.get(implant=implant, timepoint="m3")
    m3.status, m3.date_done, m3.nrs, m3.nrs_missing = (VisitStatus.COMPLETED, m3.target_date, None,
                                                       "declined")
    record_save(m3, actor=system_user(), reason="test", validate=False)
    queries.query_open(record=m3, field="nrs_missing", text="Declined, really?", actor=data_manager)
    b = make_patient(site_b, actor=nurse_b)
    make_visit(b, actor=nurse_b, date_done=datetime.date(2020, 1, 20))
    return m3


def table_rows(response):
    return {(r.site, r.timepoint, r.instrument): r for r in response.context["report"].rows}


def test_the_app_list_links_the_report(login, nurse):
    response = login(nurse).get("/admin/")
    registry = next(app for app in response.context["app_list"] if app["app_label"] == "registry")
    assert {"name": "Completeness report", "admin_url": URL}.items() <= registry["models"][1].items()


def test_a_nurse_sees_her_sites_table_and_plot(login, cohort, nurse):
    response = login(nurse).get(URL)
    assert response.status_code == 200
    html = response.content.decode()
    assert '<table id="completeness">' in html and 'aria-label="Completeness by instrument' in html
    rows = table_rows(response)
    assert {site for site, _tp, _i in rows} == {"AAA"}
    m3 = rows["AAA", "m3", "nrs"]
    assert (m3.expected, m3.missing["declined"], m3.open_queries) == (1, 1, 1)
    assert "Open queries" in html and "Asked but declined" in html


def test_the_filters_and_their_errors(login, cohort, nurse, data_manager):
    response = login(data_manager).get(URL, {"site": "BBB", "timepoint": "baseline"})
    rows = table_rows(response)
    assert ("BBB", "baseline", "nrs") in rows
    assert {(site, tp) for site, tp, _i in rows} == {("BBB", "baseline")}
    response = login(nurse).get(URL, {"timepoint": "m3x"})
    assert response.status_code == 200 and response.context["report"] is None
    assert "m3x" in str(response.context["form"].errors["timepoint"])
    # Another site's code is not a choice for her.
    assert "site" in login(nurse).get(URL, {"site": "BBB"}).context["form"].errors


def test_investigators_see_no_queries_and_small_rows_suppressed(login, cohort, investigator, settings):
    settings.REGISTRY_MIN_CELL = 2
    response = login(investigator).get(URL)
    html = response.content.decode()
    assert "Open queries" not in html and "fewer than 2" in html
    assert all(r.suppressed and r.open_queries is None for r in response.context["report"].rows)


def test_users_without_a_role_are_refused(login, outsider):
    assert login(outsider).get(URL).status_code == 403

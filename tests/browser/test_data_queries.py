"""A data query in a real browser (Debian's chromium driven by Playwright): the data
manager opens it on a visit, the nurse of that site sees it in her list and in her
site's daily digest (a real SMTP server) and answers it, the data manager closes it;
the nurse of another site never sees it.

Skipped when /usr/bin/chromium is missing (bare machine); CI installs it.
"""

import datetime

import pytest

from registry.models import DataQuery, QueryStatus, Visit, VisitStatus
from registry.services import reminders
from registry.services.audit import record_save, system_user
from tests.browser.test_nurse_workflow import CHROMIUM, browser, page_as  # noqa: F401  (fixtures)
from tests.factories import make_implant, make_patient, make_visit
from tests.mailserver import restore_reference_data, smtp_server_fixture  # noqa: F401

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture(autouse=True)
def reference_data():
    restore_reference_data()
    yield
    restore_reference_data()


@pytest.fixture
def visit(site_a, nurse):
    patient = make_patient(site_a, actor=nurse)
    make_visit(patient, actor=nurse)
    implant = make_implant(patient, actor=nurse, implant_date=datetime.date(2020, 3, 1))
    m3 = Visit.objects.get(implant=implant, timepoint="m3")
    m3.status, m3.date_done, m3.nrs = VisitStatus.COMPLETED, m3.target_date, 9
    return record_save(m3, actor=system_user(), reason="test")


def test_a_query_from_the_data_manager_to_the_sites_nurse_and_back(
        page_as, live_server, visit, site_a, site_b, nurse, nurse_b, data_manager,  # noqa: F811
        smtp_server):
    # The data manager opens it from the visit's page.
    dm = page_as(data_manager.username)
    dm.goto(f"{live_server.url}/admin/registry/visit/{visit.pk}/change/")
    dm.click("text=Open a query")
    dm.select_option("#id_field", "nrs")
    dm.fill("#id_text", "NRS 9 at m3 after 8 at baseline: is 9 right?")
    dm.click("input[name=_save]")
    dm.wait_for_load_state("load")
    query = DataQuery.objects.get()
    assert (query.record_id, query.field, query.status) == (visit.pk, "nrs", QueryStatus.OPEN)

    # The nurse of the site: in her list, and in her site's digest (no message text).
    page = page_as(nurse.username)
    page.goto(f"{live_server.url}/admin/registry/dataquery/")
    assert query.record_key in page.inner_text("#result_list")
    reminders.site_digest_send(site=site_a, actor=system_user())
    reminders.site_digest_send(site=site_b, actor=system_user())
    digests = {tuple(smtp_server.to(i)): smtp_server.text(i) + smtp_server.html(i)
               for i in range(len(smtp_server.messages))}
    site_a_digest = digests[("aaa@example.org",)]
    assert query.record_key in site_a_digest and "is 9 right" not in site_a_digest
    assert query.record_key not in digests.get(("bbb@example.org",), "")

    # She answers on the query's page.
    page.goto(f"{live_server.url}/admin/registry/dataquery/{query.pk}/change/")
    assert "is 9 right?" in page.content()
    page.fill("#id_text", "Checked the source: 9 is right, a flare after a fall.")
    page.click("input[name=_answer]")
    page.wait_for_load_state("load")
    query.refresh_from_db()
    assert (query.status, query.answered_by) == (QueryStatus.ANSWERED, nurse)

    # The data manager reads the answer and closes it.
    dm.goto(f"{live_server.url}/admin/registry/dataquery/{query.pk}/change/")
    assert "a flare after a fall" in dm.content()
    dm.fill("#id_text", "Thank you; accepted.")
    dm.click("input[name=_close]")
    dm.wait_for_load_state("load")
    query.refresh_from_db()
    assert (query.status, query.closed_by) == (QueryStatus.CLOSED, data_manager)

    # The nurse of the other site never sees it: not in her list, not by its address.
    other = page_as(nurse_b.username)
    other.goto(f"{live_server.url}/admin/registry/dataquery/")
    assert query.record_key not in other.content()
    response = other.goto(f"{live_server.url}/admin/registry/dataquery/{query.pk}/change/")
    assert query.record_key not in other.content() and "is 9 right" not in other.content()
    assert response.status == 404 or "/admin/" in other.url

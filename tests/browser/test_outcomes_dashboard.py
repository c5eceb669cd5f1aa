"""The outcomes dashboard in a real browser (Debian chromium through Playwright)."""

import os
import shutil

import pytest

from registry.services import outcomes
from tests.conftest import PASSWORD
from tests.services.test_outcomes import plan_cohort, write_cohort

CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    pytest.mark.skipif(not shutil.which(CHROMIUM), reason=f"needs {CHROMIUM} (CI installs it)"),
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def page(live_server):
    sync_api = pytest.importorskip("playwright.sync_api")
    # Playwright's sync API runs an event loop in this thread; Django's ORM
    # calls from the test are still synchronous and safe here.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--no-first-run"],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        yield page
        browser.close()


def log_in(page, base_url, username):
    page.goto(f"{base_url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#content")


def table_value(page, label):
    return page.locator("#outcome-summary tr", has=page.locator(f"th:text-is('{label}')")) \
        .locator("td").inner_text()


def test_an_investigator_opens_the_dashboard_from_the_index_and_sees_table_and_plots(
        page, live_server, site_a, site_b, investigator, data_manager):
    write_cohort(plan_cohort(5, n=14), {"AAA": site_a, "BBB": site_b}, data_manager)
    expected = outcomes.outcome_summary(user=investigator)
    assert expected["n_patients"] > 0
    log_in(page, live_server.url, investigator.username)

    page.click("text=Outcomes dashboard")
    page.wait_for_selector("#outcome-summary")
    assert table_value(page, "Patients") == str(expected["n_patients"])
    assert table_value(page, "Responders") == str(expected["responders"])
    plots = page.locator("svg.outcome-plot")
    # NRS, responders, Kaplan-Meier, AEs; PROM MIC; explant incidence and IPG longevity (issue 20).
    assert plots.count() == 7
    for i in range(7):
        box = plots.nth(i).bounding_box()
        assert box and box["width"] > 200 and box["height"] > 100, f"plot {i} is not visible: {box}"
        assert plots.nth(i).is_visible()
    paragraph = page.input_value("#results-paragraph")
    assert paragraph.startswith(f"{expected['n_patients']} patient")
    assert paragraph == outcomes.outcome_paragraph(expected)


def test_the_cohort_form_narrows_the_cohort_and_reports_a_bad_timepoint(
        page, live_server, site_a, site_b, investigator, data_manager):
    write_cohort(plan_cohort(6, n=14), {"AAA": site_a, "BBB": site_b}, data_manager)
    log_in(page, live_server.url, investigator.username)
    page.goto(f"{live_server.url}/admin/registry/outcomes/")
    page.check("input[name=therapy][value=SCS]")
    page.fill("input[name=timepoint]", "m12")
    page.click("input[type=submit][value='Show outcomes']")
    page.wait_for_selector("#outcome-summary")
    expected = outcomes.outcome_summary(user=investigator, therapy="SCS", timepoint="m12")
    assert table_value(page, "Patients") == str(expected["n_patients"])
    assert table_value(page, "Paired baseline/follow-up") == str(expected["n_paired"])
    assert page.locator("svg.outcome-plot").count() == 7

    page.fill("input[name=timepoint]", "m12x")
    page.click("input[type=submit][value='Show outcomes']")
    page.wait_for_selector(".errorlist")
    assert "m12x" in page.locator(".field-timepoint .errorlist").inner_text()
    assert page.locator("svg.outcome-plot").count() == 0

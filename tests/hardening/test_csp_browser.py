"""The pages still work under the Content-Security-Policy, in a real browser (Debian
chromium through Playwright): no script or style refused, admin widgets, the dashboard's
copy button and the API docs running."""

import os
import shutil

import pytest
from django.urls import reverse

from tests.browser.test_outcomes_dashboard import CHROMIUM, log_in
from tests.factories import make_implant, make_patient, make_visit

pytestmark = [
    pytest.mark.skipif(not shutil.which(CHROMIUM), reason=f"needs {CHROMIUM} (CI installs it)"),
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--no-first-run"])
        yield browser
        browser.close()


def watched_page(browser):
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.refused = []
    page.on("console", lambda m: page.refused.append(m.text)
            if "Content Security Policy" in m.text else None)
    page.on("pageerror", lambda e: page.refused.append(f"page error: {e}"))
    return page


def test_admin_pages_run_their_scripts_under_the_csp(browser, live_server, site_a, nurse,
                                                     data_manager):
    patient = make_patient(site_a, actor=nurse)
    make_visit(patient, make_implant(patient, actor=nurse), actor=nurse, nrs=7)
    page = watched_page(browser)
    log_in(page, live_server.url, data_manager.username)
    assert "Content-Security-Policy" in {h.title() for h in page.goto(
        f"{live_server.url}{reverse('admin:index')}").headers}
    page.goto(f"{live_server.url}{reverse('admin:registry_visit_add')}")
    # The admin's own scripts ran: the date widget's calendar link is drawn by JavaScript.
    page.wait_for_selector(".datetimeshortcuts a", timeout=10_000)
    page.goto(f"{live_server.url}{reverse('admin:registry_visit_changelist')}")
    page.wait_for_selector("#changelist")
    page.goto(f"{live_server.url}{reverse('admin:django_celery_beat_periodictask_add')}")
    page.wait_for_selector("#periodictask_form")
    # The nonce'd override hides the translation row.
    assert page.locator(".field-crontab_translation").is_hidden()
    assert page.refused == []


def test_the_dashboard_copy_button_and_the_api_docs_work_under_the_csp(
        browser, live_server, site_a, nurse, investigator):
    patient = make_patient(site_a, actor=nurse)
    implant = make_implant(patient, actor=nurse)
    make_visit(patient, implant, actor=nurse, nrs=8)
    page = watched_page(browser)
    log_in(page, live_server.url, investigator.username)
    page.goto(f"{live_server.url}{reverse('admin:registry_outcomes')}")
    page.wait_for_selector("#results-paragraph")
    page.evaluate("() => { window.copied = null; document.execCommand = (c) => { window.copied = c; }; "
                  "Object.defineProperty(navigator, 'clipboard', {value: undefined}); }")
    page.click("#copy-paragraph")
    assert page.evaluate("() => window.copied") == "copy"  # the nonce'd inline script ran
    page.goto(f"{live_server.url}/api/docs/")
    page.wait_for_selector(".swagger-ui .info", timeout=15_000)
    assert page.refused == []

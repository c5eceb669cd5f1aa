"""Fixtures for the security tests: the browser (Debian's chromium, as tests/browser),
signing in through the real login page, and switching on the controls that the
test settings keep out of the rest of the suite."""

import os
from pathlib import Path

import pytest

from tests.conftest import PASSWORD

# Playwright's sync API runs an event loop in this thread; the tests still talk to
# the database synchronously (fixtures, checks), which is safe here.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]

needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(),
                                    reason="needs Debian's chromium at /usr/bin/chromium")
MFA_ROLES = ["data_manager", "investigator"]  # what production requires


@pytest.fixture
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def new_page(browser):
    contexts = []

    def make():
        context = browser.new_context()
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        return page

    yield make
    for context in contexts:
        context.close()


def sign_in(page, base_url, username, password=PASSWORD, next_url="/admin/"):
    """Fill in and send the admin login page; returns the page after the answer."""
    page.goto(f"{base_url}/admin/login/?next={next_url}")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_load_state("load")
    return page


@pytest.fixture
def axes_on(settings):
    """django-axes as in production (the test settings switch it off, since it refuses
    Client.login(), which authenticates without a request)."""
    settings.AXES_ENABLED = True
    return settings


@pytest.fixture
def mfa_on(settings):
    settings.REGISTRY_MFA_REQUIRED_ROLES = MFA_ROLES
    return settings


def log_in_with_request(client, username, password=PASSWORD):
    """Sign in through the login page (POST), as a browser does, so django-axes sees it."""
    return client.post("/admin/login/?next=/admin/", {"username": username, "password": password})

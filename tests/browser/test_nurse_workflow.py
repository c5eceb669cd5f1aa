"""A research nurse's day in a real browser (Debian's chromium driven by Playwright).

Skipped when /usr/bin/chromium is missing (bare machine); CI installs it.
"""

import datetime
import os
import re
from pathlib import Path

import pytest

from registry.models import Patient, Role, Visit
from tests.conftest import PASSWORD, _user

# Playwright's sync API runs an event loop in this thread; the test still talks
# to the database synchronously (fixtures, checks), which is safe here.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page_as(browser, live_server):
    contexts = []

    def log_in(username):
        context = browser.new_context()
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.goto(f"{live_server.url}/admin/login/?next=/admin/")
        page.fill("#id_username", username)
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        page.wait_for_selector("#site-name")
        assert "/admin/login/" not in page.url, "login failed"
        return page

    yield log_in
    for context in contexts:
        context.close()


def save_and_continue(page):
    page.click("input[name=_continue]")
    page.wait_for_load_state("load")


def test_a_nurse_enrols_implants_and_records_a_follow_up_with_an_audited_correction(
        page_as, live_server, site_a, nurse):
    today = datetime.date.today()
    implant_date = today - datetime.timedelta(days=95)  # the 3-month window is open today
    page = page_as(nurse.username)

    # Enrol: her only site is preselected; the record number goes in the identifiers.
    page.goto(f"{live_server.url}/admin/registry/patient/add/")
    page.select_option("#id_sex", "F")
    page.fill("#id_birth_year", "1968")
    page.fill("#id_consent_date", (implant_date - datetime.timedelta(days=30)).isoformat())
    page.select_option("#id_etiology", "postamputation")
    page.select_option("#id_diagnosis", "rlp_plp")
    page.fill("#id_identifiers-0-record_number", "HRN-4711")
    save_and_continue(page)
    patient = Patient.objects.get(site=site_a)
    assert page.inner_text("#hub-registry-id") == patient.registry_id
    assert "AAA" in page.inner_text("#hub-site")
    assert page.input_value("#id_identifiers-0-record_number") == "HRN-4711"

    # Implant, from the hub; saving returns to the hub.
    page.click("#hub-add-implant")
    page.select_option("#id_therapy", "SCS")
    page.fill("#id_trial_start", (implant_date - datetime.timedelta(days=14)).isoformat())
    page.fill("#id_trial_end", (implant_date - datetime.timedelta(days=4)).isoformat())
    page.fill("#id_implant_date", implant_date.isoformat())
    page.click("input[name=_save]")
    page.wait_for_selector("#hub-therapy")
    assert "Spinal cord stimulation" in page.inner_text("#hub-therapy")

    # The 3-month visit: the scheduled one when the scheduler made it, else a new one.
    scheduled = page.locator("#hub-visits a", has_text="3 months")
    if scheduled.count():
        scheduled.first.click()
    else:
        page.click("#hub-add-visit")
        page.select_option("#id_timepoint", "m3")
    page.wait_for_selector("#id_nrs")
    page.select_option("#id_status", "completed")
    page.fill("#id_date_done", today.isoformat())
    page.fill("#id_nrs", "11")
    save_and_continue(page)
    error = page.locator(".field-nrs .errorlist")
    assert "11 is not on the scale" in error.inner_text()
    assert not Visit.objects.filter(patient=patient, nrs__isnull=False).exists()

    page.fill("#id_nrs", "4")
    page.check("input[name=satisfaction][value=\"4\"]")  # 4 - Satisfied
    save_and_continue(page)
    assert page.locator(".errorlist").count() == 0, page.inner_text("#content")
    visit = Visit.objects.get(patient=patient, timepoint="m3")
    assert (visit.status, visit.nrs, visit.satisfaction) == ("completed", 4, 4)

    # Correcting the completed visit asks for a reason, next to the reason field.
    page.fill("#id_nrs", "3")
    save_and_continue(page)
    assert "say why you are changing it" in page.inner_text(".field-change_reason .errorlist")
    visit.refresh_from_db()
    assert visit.nrs == 4
    page.fill("#id_change_reason", "Source document check: patient said 3")
    save_and_continue(page)
    assert page.locator(".errorlist").count() == 0, page.inner_text("#content")
    visit.refresh_from_db()
    assert visit.nrs == 3

    # The history says who, when, what and why.
    page.click("a.historylink")
    page.wait_for_selector("#change-history")
    row = page.locator("#change-history tbody tr", has_text="Source document check: patient said 3")
    assert row.count() == 1
    text = row.inner_text()
    assert nurse.username in text
    assert re.search(r"NRS pain \(0-10\):?\s*4\s*→\s*3", text), text


def test_a_nurse_of_another_site_cannot_open_the_patient(page_as, live_server, site_a, site_b, nurse):
    from tests.factories import make_patient

    patient = make_patient(site_a, actor=nurse)
    other = _user("nurse_other_site", Role.NURSE, [site_b.code])
    page = page_as(other.username)
    response = page.goto(f"{live_server.url}/admin/registry/patient/{patient.pk}/change/")
    assert response.status == 404
    assert patient.registry_id not in page.content()
    listing = page.goto(f"{live_server.url}/admin/registry/patient/?q={patient.registry_id}")
    assert listing.status == 200
    assert patient.registry_id not in page.inner_text("#changelist")


def test_an_investigator_opens_a_patient_and_sees_the_dates_shifted(page_as, live_server, site_a,
                                                                    nurse, investigator):
    from django.utils import formats

    from registry.services import deid
    from tests.factories import make_implant, make_patient

    patient = make_patient(site_a, actor=nurse, consent_date=datetime.date(2016, 4, 5))
    implant = make_implant(patient, actor=nurse, trial_start=datetime.date(2017, 6, 1),
                           trial_end=datetime.date(2017, 6, 11), implant_date=datetime.date(2018, 9, 3))
    days = deid.date_shift_days(patient.registry_id)
    assert days, "a shift of 0 days would make this test meaningless"
    page = page_as(investigator.username)
    page.goto(f"{live_server.url}/admin/registry/patient/{patient.pk}/change/")
    assert page.inner_text("#hub-registry-id") == patient.registry_id
    implants = page.inner_text("#hub-implants")
    shifted = deid.shifted(implant.implant_date, days)
    assert f"{shifted:%d %b %Y}" in implants
    assert f"{implant.implant_date:%d %b %Y}" not in implants
    assert deid.SHIFTED_NOTE in page.inner_text("#shifted-dates-note")
    consent = page.inner_text(".field-consent_date .readonly")
    assert consent == formats.localize(deid.shifted(patient.consent_date, days))
    # Read-only, and no audit trail (it shows the real dates).
    assert page.locator("input[name=_save]").count() == 0
    assert page.locator("a.historylink").count() == 0

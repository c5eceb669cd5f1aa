"""A patient answers her questionnaire on a phone, from the e-mail the job sent (Debian's
chromium driven by Playwright, a real SMTP server on loopback).

Skipped when /usr/bin/chromium is missing (bare machine); CI installs it.
"""

import os
import re
from pathlib import Path

import pytest

from registry.models import EnteredBy, PromAnswer, Visit, VisitStatus
from registry.services import epro
from registry.services.dates import site_today
from tests.epro.conftest import open_m3
from tests.mailserver import restore_reference_data, smtp_server_fixture  # noqa: F401

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]
PHONE = {"width": 320, "height": 640}

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def phone(live_server):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        contexts = []

        def new_page():
            context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True,
                                          device_scale_factor=2, locale="en-GB")
            contexts.append(context)
            page = context.new_page()
            page.set_default_timeout(15_000)
            return page

        yield new_page
        for context in contexts:
            context.close()
        browser.close()


def link_to(smtp_server, address: str) -> str:
    for index, (to, _message) in enumerate(smtp_server.messages):
        if to == [address]:
            return re.search(r"http\S+/q/[A-Za-z0-9_-]{43}/", smtp_server.text(index)).group(0)
    raise AssertionError(f"no e-mail to {address}")


def fits_the_screen(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def answer_the_rest(page, start: int, total: int, values: dict) -> None:
    """Questions `start`..`total`: each PROM item answered with `values` (name -> value) or
    its lowest value, by label, as a patient taps."""
    for number in range(start, total + 1):
        page.wait_for_selector(f"text=Question {number} of {total}")
        box = page.locator("input[type=number]")
        if box.count():
            name = box.get_attribute("name")
            box.fill(str(values.get(name, 50)))
        else:
            radios = page.locator("input[type=radio]")
            name = radios.first.get_attribute("name")
            wanted = values.get(name)
            target = radios.first if wanted is None else page.locator(f"input[name={name}][value='{wanted}']")
            page.locator(f"label[for='{target.get_attribute('id')}']").click()
        page.get_by_role("button", name="Save and continue").click()


def test_a_patient_answers_on_her_phone_from_the_e_mail_and_the_link_then_refuses(
        phone, live_server, smtp_server, site_a, settings):
    restore_reference_data()
    settings.SITE_URL = live_server.url
    first, first_visit = open_m3(site_a, email="first@example.org")
    second, second_visit = open_m3(site_a, email="second@example.org", etiology="postamputation",
                                   diagnosis="rlp_plp")
    epro.invitations_send(site=site_a)
    url = link_to(smtp_server, "first@example.org")
    assert url.startswith(live_server.url)

    page = phone()
    page.goto(url)
    assert fits_the_screen(page)
    assert page.locator("html").get_attribute("lang") == "en"
    total = len(epro.questions_for(first_visit))
    assert total == 20  # NRS, satisfaction, PGIC, EQ-5D-5L (6) and BPI-SF (11) at m3
    assert page.locator(".progress").inner_text() == f"Question 1 of {total}"
    body = page.locator("body").inner_text()
    assert first.registry_id not in body and "Maria Jansen" not in body
    # Every choice has a label (screen readers), the question is the fieldset's legend.
    assert page.get_by_role("group", name=re.compile("pain on average")).is_visible()
    page.get_by_label("3", exact=True).check()
    page.get_by_role("button", name="Save and continue").click()

    # The keyboard alone: into the options, pick one with the arrow keys, Enter sends.
    page.wait_for_selector(f"text=Question 2 of {total}")
    page.get_by_label("Very dissatisfied").focus()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    assert page.get_by_label("Satisfied", exact=True).is_checked()
    page.keyboard.press("Enter")

    page.wait_for_selector(f"text=Question 3 of {total}")
    page.get_by_label("Much improved", exact=True).check()
    page.get_by_role("button", name="Save and continue").click()
    page.wait_for_selector(f"text=Question 4 of {total}")
    assert page.locator("legend").inner_text() == "Mobility" and fits_the_screen(page)
    answer_the_rest(page, 4, total, {"eq5d5l_mo": 2, "eq5d5l_vas": 65, "bpi_sf_worst": 7})

    page.wait_for_selector("h1:text('Check your answers')")
    assert fits_the_screen(page)
    summary = page.locator("dl.summary").inner_text()
    assert "Satisfied" in summary and "Much improved" in summary
    page.get_by_role("button", name="Send my answers").click()
    page.wait_for_selector("h1:text('Thank you')")

    visit = Visit.objects.get(pk=first_visit.pk)
    assert (visit.status, visit.nrs, visit.satisfaction, visit.pgic) == (VisitStatus.COMPLETED, 3, 4, 2)
    assert visit.entered_by == EnteredBy.PATIENT
    assert visit.date_done == site_today(site_a.timezone)
    held = {(a.instrument, a.item): a.value for a in PromAnswer.objects.filter(visit=visit)}
    assert len(held) == 17 and held[("eq5d5l", "mo")] == 2 and held[("eq5d5l", "vas")] == 65
    assert held[("bpi_sf", "worst")] == 7

    page.goto(url)
    assert page.locator("h1").inner_text() == "This link can no longer be used"

    # The second patient's link: her own questionnaire (two more pain sites), nothing of the first.
    other = phone()
    other.goto(link_to(smtp_server, "second@example.org"))
    total = len(epro.questions_for(second_visit))
    assert total == 22 and other.locator(".progress").inner_text() == f"Question 1 of {total}"
    text = other.locator("body").inner_text()
    assert first.registry_id not in text and second.registry_id not in text
    other.get_by_label("7", exact=True).check()
    other.get_by_role("button", name="Save and continue").click()
    other.wait_for_selector(f"text=Question 2 of {total}")
    assert "residual limb" in other.locator("legend").inner_text()
    # Nederlands, on the page itself.
    other.get_by_role("link", name="Nederlands").click()
    other.wait_for_selector("html[lang=nl]")
    assert f"Vraag 2 van {total}" in other.locator(".progress").inner_text()
    assert Visit.objects.get(pk=second_visit.pk).status == VisitStatus.SCHEDULED

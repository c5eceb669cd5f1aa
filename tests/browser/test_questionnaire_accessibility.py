"""WCAG 2.1 AA of the patient's questionnaire pages, checked by axe-core in Debian's chromium
at 320 px, and the whole questionnaire completed with the keyboard alone.

axe-core (Deque, MPL-2.0) is vendored in tests/browser/vendor/ so a fresh clone runs this
without a network. Every page a patient can meet is audited: a scale question, a choice
question, a PROM item, the number box, an answer refused, the summary, the thank-you page,
the page of a dead link, the page before the window opens, and the same in Dutch.
Skipped when /usr/bin/chromium is missing (bare machine); CI installs it.
"""

import datetime
import json
from pathlib import Path

import pytest

from registry.models import EproLink, PromAnswer, Visit, VisitStatus
from registry.services import epro
from tests.browser.test_patient_questionnaire import ARGS, CHROMIUM, PHONE, fits_the_screen
from tests.epro.conftest import answers, open_m3
from tests.mailserver import restore_reference_data

AXE = Path(__file__).parent / "vendor" / "axe.min.js"
LEVELS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def phone(live_server):
    """Pages on a 320 px phone; the pages' Content-Security-Policy (script-src 'self') is
    bypassed only so that axe can be injected."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True,
                                      device_scale_factor=2, locale="en-GB", bypass_csp=True)

        def new_page():
            page = context.new_page()
            page.set_default_timeout(15_000)
            return page

        yield new_page
        context.close()
        browser.close()


def violations(page) -> list[dict]:
    """axe-core's WCAG 2.0/2.1 A and AA violations on the page as it is now."""
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("""async (levels) => {
        const r = await axe.run(document, {runOnly: {type: "tag", values: levels},
                                           resultTypes: ["violations"]});
        return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                       nodes: v.nodes.map(n => n.html).slice(0, 3)}));
    }""", LEVELS)
    return result


def audited(page, where: str, seen: dict) -> None:
    assert page.viewport_size["width"] == PHONE["width"]
    assert fits_the_screen(page), f"{where}: wider than the 320 px screen"
    found = violations(page)
    seen[where] = found
    assert found == [], f"{where}: " + json.dumps(found, indent=1)


def step_of(visit, name: str) -> int:
    return next(i for i, q in enumerate(epro.questions_for(visit), 1) if q.name == name)


def test_every_questionnaire_page_passes_wcag_2_1_aa_at_320_px(phone, live_server, site_a,  # noqa: F811
                                                               settings):
    restore_reference_data()
    settings.SITE_URL = live_server.url
    _, visit = open_m3(site_a)
    link, token = epro.link_create(visit=visit, channel=EproLink.Channel.PRINTED)
    url = f"{live_server.url}/q/{token}/"
    page = phone()
    seen: dict = {}

    page.goto(url)  # the start: question 1, the NRS scale
    audited(page, "start (NRS scale)", seen)
    page.goto(f"{url}?step={step_of(visit, 'satisfaction')}")
    audited(page, "a choice question", seen)
    page.goto(f"{url}?step={step_of(visit, 'eq5d5l_mo')}")
    audited(page, "a PROM item", seen)
    page.goto(f"{url}?step={step_of(visit, 'eq5d5l_vas')}")
    audited(page, "the number box (EQ VAS)", seen)
    page.get_by_role("button", name="Save and continue").click()  # nothing entered: refused
    page.wait_for_selector("[role=alert]")
    audited(page, "an answer refused", seen)

    epro.draft_save(link=link, data=answers(visit, eq5d5l_vas=50))  # the rest, saved as she went
    page.goto(f"{url}?step=summary")
    page.wait_for_selector("h1:text('Check your answers')")
    audited(page, "the summary", seen)

    page.goto(f"{url}?lang=nl&step=summary")
    page.wait_for_selector("html[lang=nl]")
    audited(page, "the summary in Dutch", seen)
    page.goto(f"{url}?lang=nl&step={step_of(visit, 'eq5d5l_mo')}")
    audited(page, "a PROM item in Dutch", seen)
    page.goto(f"{url}?lang=en&step=summary")
    page.get_by_role("button", name="Send my answers").click()
    page.wait_for_selector("h1:text('Thank you')")
    audited(page, "the thank-you page", seen)
    assert Visit.objects.get(pk=visit.pk).status == VisitStatus.COMPLETED

    page.goto(url)
    page.wait_for_selector("h1:text('This link can no longer be used')")
    audited(page, "a dead link", seen)
    page.goto(f"{live_server.url}/q/{'A' * 43}/?lang=nl")
    audited(page, "a dead link in Dutch", seen)

    _, later = open_m3(site_a)
    Visit.objects.filter(pk=later.pk).update(window_start=later.window_start + datetime.timedelta(days=40),
                                             window_end=later.window_end + datetime.timedelta(days=40))
    _link, early = epro.link_create(visit=Visit.objects.get(pk=later.pk), channel=EproLink.Channel.PRINTED)
    page.goto(f"{live_server.url}/q/{early}/")
    page.wait_for_selector("text=not open yet")
    audited(page, "before the window opens", seen)
    assert len(seen) == 12
    # The audit can fail: the same page without its language and with a low-contrast text.
    page.evaluate("""() => { document.documentElement.removeAttribute('lang');
                             document.querySelector('h1').style.color = '#bbb'; }""")
    assert {"html-has-lang", "color-contrast"} <= {v["id"] for v in violations(page)}


def test_the_whole_questionnaire_can_be_completed_with_the_keyboard_alone(phone, live_server,
                                                                         site_a, settings):
    restore_reference_data()
    _, visit = open_m3(site_a)
    _link, token = epro.link_create(visit=visit, channel=EproLink.Channel.PRINTED)
    page = phone()
    page.goto(f"{live_server.url}/q/{token}/")
    questions = epro.questions_for(visit)

    def tab_to(selector: str) -> None:
        for _ in range(80):
            page.keyboard.press("Tab")
            if page.evaluate(f"document.activeElement.matches({json.dumps(selector)})"):
                return
        raise AssertionError(f"Tab never reached {selector}")

    for number, question in enumerate(questions, 1):
        page.wait_for_selector(f"text=Question {number} of {len(questions)}")
        if question.widget == "number":
            tab_to("input[type=number]")
            page.keyboard.type("42")
        else:
            tab_to("input[type=radio]")
            page.keyboard.press("Space")  # the first option
            page.keyboard.press("ArrowRight")  # the next one: arrow keys move the choice
        page.keyboard.press("Enter")  # the form's first button: save and continue
    page.wait_for_selector("h1:text('Check your answers')")
    tab_to("button[value=submit]")
    page.keyboard.press("Enter")
    page.wait_for_selector("h1:text('Thank you')")

    visit = Visit.objects.get(pk=visit.pk)
    assert (visit.status, visit.nrs, visit.satisfaction, visit.pgic) == (VisitStatus.COMPLETED, 1, 2, 2)
    held = {(a.instrument, a.item): a.value for a in PromAnswer.objects.filter(visit=visit)}
    assert held[("eq5d5l", "mo")] == 2 and held[("eq5d5l", "vas")] == 42 and held[("bpi_sf", "worst")] == 1

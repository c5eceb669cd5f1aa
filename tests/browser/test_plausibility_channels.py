"""Every plausibility rule of tests/models/test_plausibility.py in a real browser: the
admin form refuses it with a message, and a bundle upload of the same values refuses it
with the same message (issue 19's Done-when)."""

import pytest

from registry.models import Role
from tests.browser import test_nurse_workflow as nurse_workflow
from tests.browser.test_workplace import upload_message, zipped
from tests.conftest import _user
from tests.factories import make_site
from tests.models.test_plausibility import (
    EVENT_CASES,
    EVENT_COLUMNS,
    IMPLANT_CASES,
    IMPLANT_COLUMNS,
    VISIT_CASES,
    VISIT_COLUMNS,
    write_bundle,
)
from tests.services.test_worklist import a_site_with_work

browser = nurse_workflow.browser
page_as = nurse_workflow.page_as
pytestmark = nurse_workflow.pytestmark

EVENT_BASE = {"category": "infection_superficial", "severity": "mild",
              "device_relatedness": "not_related", "procedure_relatedness": "probable",
              "action": "antibiotics", "outcome": "ongoing"}


def fill(page, values: dict) -> None:
    """Each value into its form field (#id_<name>), whatever the widget."""
    for name, value in values.items():
        field = page.locator(f"#id_{name}")
        kind = field.evaluate("e => e.tagName === 'SELECT' ? 'select' : e.type")
        if kind == "select":
            page.select_option(f"#id_{name}", value)
        elif kind == "checkbox":
            field.set_checked(value == "yes")
        elif kind == "radio" or field.count() == 0:
            page.check(f"input[name={name}][value=\"{value}\"]")
        else:
            field.fill(value)


def admin_message(page, url, values, field) -> str:
    page.goto(url)
    fill(page, values)
    with page.expect_navigation():
        page.click("input[name=_save]")
    errors = page.locator(f".field-{field} .errorlist")
    assert errors.count() == 1, f"the admin saved it or said nothing on {field}: {page.url}"
    return errors.inner_text()


@pytest.fixture
def setting(page_as, live_server):
    site = make_site("AMS", timezone="Europe/Amsterdam")
    dm = _user("dm_rules", Role.DATA_MANAGER, [site.code])
    nurse = _user("nurse_rules", Role.NURSE, [site.code])
    patient = a_site_with_work(site, nurse)  # consent 2020-01-01, an SCS implant of 2020-03-01
    return page_as(dm.username), patient, patient.implants.get()


def test_each_rule_is_refused_with_the_same_message_in_the_admin_and_an_upload(
        setting, live_server, tmp_path):
    page, patient, implant = setting
    base = live_server.url + "/admin/registry"
    checked = []
    for case, (field, expect, values) in IMPLANT_CASES.items():
        shown = admin_message(page, f"{base}/implant/add/?patient={patient.pk}", values, field)
        assert expect in shown, case
        row = {"implant_ref": f"{patient.registry_id}-I7", "registry_id": patient.registry_id,
               "trial_success": "yes", **values}
        folder = write_bundle(tmp_path / f"i{len(checked)}", patient, "implants.csv", IMPLANT_COLUMNS, row)
        assert upload_message(page, live_server, zipped(folder, tmp_path / f"i{len(checked)}.zip"),
                              field) == shown, case
        checked.append(case)
    for case, (field, expect, values) in EVENT_CASES.items():
        shown = admin_message(page, f"{base}/adverseevent/add/?patient={patient.pk}",
                              {**EVENT_BASE, **values}, field)
        assert expect in shown, case
        row = {"registry_id": patient.registry_id, "implant_ref": implant.ref, "serious": "no",
               **EVENT_BASE, **values}
        folder = write_bundle(tmp_path / f"e{len(checked)}", patient, "adverse_events.csv",
                              EVENT_COLUMNS, row)
        assert upload_message(page, live_server, zipped(folder, tmp_path / f"e{len(checked)}.zip"),
                              field) == shown, case
        checked.append(case)
    for case, (field, expect, values) in VISIT_CASES.items():
        shown = admin_message(page, f"{base}/visit/add/?patient={patient.pk}",
                              {"status": "completed", "nrs": "5", **values}, field)
        assert expect in shown, case
        row = {"registry_id": patient.registry_id, "implant_ref": implant.ref, "nrs": "5",
               "timepoint": values["timepoint"], "visit_date": values["date_done"]}
        folder = write_bundle(tmp_path / f"v{len(checked)}", patient, "visits.csv", VISIT_COLUMNS, row)
        assert upload_message(page, live_server, zipped(folder, tmp_path / f"v{len(checked)}.zip"),
                              "visit_date") == shown, case
        checked.append(case)
    assert len(checked) == len(IMPLANT_CASES) + len(EVENT_CASES) + len(VISIT_CASES)

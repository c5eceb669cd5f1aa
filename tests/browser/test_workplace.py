"""The nurse's workplace in a real browser (Debian's chromium driven by Playwright):
the home page's counts equal the digest's, and plausibility rules are refused alike
in the admin form and in a bundle upload."""

import datetime
import zipfile
from unittest import mock

import pytest

from registry.models import Role, Site, Visit
from registry.services import worklist
from registry.services.audit import system_user
from registry.services.reminders import site_digest_send
from tests.browser import test_nurse_workflow as nurse_workflow
from tests.conftest import _user
from tests.factories import make_site
from tests.models.test_plausibility import (
    EVENT_COLUMNS,
    FUTURE,
    IMPLANT_COLUMNS,
    write_bundle,
)
from tests.services.test_worklist import a_site_with_work

# The same chromium, log-in and markers as the nurse's workflow.
browser = nurse_workflow.browser
page_as = nurse_workflow.page_as
pytestmark = nurse_workflow.pytestmark

# Europe leaves summer time on Sunday 25 October 2026 (01:00 UTC); New York on
# 1 November; Auckland is on summer time since 27 September. At these moments
# Amsterdam and Auckland are already a day ahead of New York, Amsterdam only
# thanks to its offset of the day (+2 before, +1 after).
MOMENTS = {
    "the day before the change": datetime.datetime(2026, 10, 24, 22, 30, tzinfo=datetime.UTC),
    "the day after the change": datetime.datetime(2026, 10, 26, 23, 30, tzinfo=datetime.UTC),
}


@pytest.mark.parametrize("moment", MOMENTS)
def test_the_home_page_counts_equal_the_digests_for_three_sites(moment, page_as, live_server):
    at = MOMENTS[moment]
    sites = [make_site("AMS", timezone="Europe/Amsterdam"),
             make_site("NYC", timezone="America/New_York", country="US"),
             make_site("AKL", timezone="Pacific/Auckland", country="NZ")]
    nurse = _user("nurse3", Role.NURSE, [s.code for s in sites])
    for site in sites:
        # The same visits everywhere, around the UTC date: each site's own day splits
        # them differently.
        a_site_with_work(site, nurse, day=at.date())
        a_site_with_work(site, nurse, day=at.date() + datetime.timedelta(days=1))

    with mock.patch.object(worklist, "now", return_value=at):
        page = page_as(nurse.username)
        page.wait_for_selector("#worklist")
        assert "Django administration" not in page.content()
        assert page.inner_text("#site-name") == "Neuromodulation pain registry"
        shown = {}
        for site in sites:
            shown[site.code] = {
                cat.key: int(page.inner_text(
                    f"#worklist tr[data-category={cat.key}] td[data-site={site.code}] a.count"))
                for cat in worklist.CATEGORIES}

    digests = {site.code: site_digest_send(site=Site.objects.get(pk=site.pk), actor=system_user(),
                                           dry_run=True, now=at).worklist
               for site in sites}
    assert shown == digests
    # The sites' days differ, and so do their counts (the test would not see a shared day).
    assert shown["AMS"] != shown["NYC"] and shown["AKL"] == shown["AMS"]

    # A count links to the list it counts, with the visit form one click away.
    with mock.patch.object(worklist, "now", return_value=at):
        page.click("#worklist tr[data-category=open_now] td[data-site=NYC] a.count")
        page.wait_for_selector("#result_list")
        assert page.locator("#result_list tbody tr").count() == shown["NYC"]["open_now"]
        page.locator("#result_list a.enter-visit").first.click()
        page.wait_for_selector("#id_nrs")


def zipped(folder, path):
    with zipfile.ZipFile(path, "w") as z:
        for csv_file in folder.iterdir():
            z.write(csv_file, csv_file.name)
    return path


def upload_message(page, live_server, bundle, column):
    page.goto(f"{live_server.url}/admin/registry/importrun/upload/")
    page.set_input_files("#id_bundle", str(bundle))
    page.fill("#id_reason", "plausibility check")
    page.click("#bundle-upload input[type=submit]")
    page.wait_for_selector("#import-errors")
    row = page.locator("#import-errors tbody tr", has_text=column)
    assert row.count() == 1, page.inner_text("#import-errors")
    return row.locator("td").nth(4).inner_text()


def test_plausibility_rules_are_refused_alike_in_the_admin_and_an_upload(page_as, live_server,
                                                                        tmp_path):
    site = make_site("AMS", timezone="Europe/Amsterdam")
    dm = _user("dm3", Role.DATA_MANAGER, [site.code])
    nurse = _user("nurse4", Role.NURSE, [site.code])
    patient = a_site_with_work(site, nurse)
    implant = patient.implants.get()
    page = page_as(dm.username)

    # An implant dated in the future.
    page.goto(f"{live_server.url}/admin/registry/implant/add/?patient={patient.pk}")
    page.select_option("#id_therapy", "DRG")
    page.fill("#id_implant_date", FUTURE)
    page.click("input[name=_save]")
    admin_message = page.inner_text(".field-implant_date .errorlist")
    assert FUTURE in admin_message and "is in the future" in admin_message
    bundle = write_bundle(tmp_path / "implant", patient, "implants.csv", IMPLANT_COLUMNS,
                          {"implant_ref": f"{patient.registry_id}-I5",
                           "registry_id": patient.registry_id, "therapy": "DRG",
                           "trial_success": "yes", "implant_date": FUTURE})
    assert upload_message(page, live_server, zipped(bundle, tmp_path / "i.zip"),
                          "implant_date") == admin_message

    # A serious adverse event without a seriousness criterion.
    page.goto(f"{live_server.url}/admin/registry/adverseevent/add/?patient={patient.pk}")
    page.fill("#id_onset_date", "2021-01-01")
    page.select_option("#id_category", "infection_deep")
    page.check("#id_serious")
    page.select_option("#id_severity", "severe")
    page.select_option("#id_device_relatedness", "not_related")
    page.select_option("#id_procedure_relatedness", "probable")
    page.click("input[name=_save]")
    admin_message = page.inner_text(".field-serious_criterion .errorlist")
    assert "no seriousness criterion" in admin_message
    bundle = write_bundle(tmp_path / "event", patient, "adverse_events.csv", EVENT_COLUMNS,
                          {"registry_id": patient.registry_id, "implant_ref": implant.ref,
                           "onset_date": "2021-01-01", "category": "infection_deep",
                           "serious": "yes", "severity": "severe",
                           "device_relatedness": "not_related",
                           "procedure_relatedness": "probable"})
    assert upload_message(page, live_server, zipped(bundle, tmp_path / "e.zip"),
                          "serious_criterion") == admin_message


def test_the_save_flow_returns_to_the_patient_page_and_goes_on_to_the_next_due_visit(
        page_as, live_server):
    site = make_site("AMS", timezone="Europe/Amsterdam")
    nurse = _user("nurse5", Role.NURSE, [site.code])
    today = datetime.date.today()
    first = a_site_with_work(site, nurse, day=today)
    second = a_site_with_work(site, nurse, day=today)
    page = page_as(nurse.username)

    # From the worklist to the overdue list, into a visit; Save lands on the patient page.
    page.click("#worklist tr[data-category=overdue] td[data-site=AMS] a.count")
    page.wait_for_selector("#result_list")
    assert page.locator("#result_list tbody tr").count() == 2
    page.locator("#result_list a.enter-visit").first.click()
    page.wait_for_selector("#id_date_done")
    assert page.get_attribute("#id_date_done", "placeholder") == "YYYY-MM-DD"
    page.fill("#id_date_done", today.isoformat())  # the status follows the date
    page.fill("#id_nrs", "4")
    page.click("input[name=_save]")
    page.wait_for_selector("#hub-registry-id")
    saved_for = page.inner_text("#hub-registry-id")
    assert saved_for in (first.registry_id, second.registry_id)
    done = Visit.objects.get(patient__registry_id=saved_for, timepoint="m1")
    assert (done.status, done.nrs, done.date_done) == ("completed", 4, today)

    # Save and next due visit: the other overdue one, then the open windows.
    left = Visit.objects.get(timepoint="m1", status="scheduled")
    page.goto(f"{live_server.url}/admin/registry/visit/{left.pk}/change/")
    page.fill("#id_date_done", today.isoformat())
    page.fill("#id_nrs", "5")
    page.click("#save-next-due")
    page.wait_for_selector("#id_nrs")
    left.refresh_from_db()
    assert left.status == "completed"
    following = page.url.rstrip("/").split("/")[-2]
    assert Visit.objects.get(pk=following).status == "scheduled"
    assert "Next due" in page.inner_text(".messagelist")

    # The ISO 14155 class follows the event form as it is filled in.
    page.goto(f"{live_server.url}/admin/registry/adverseevent/add/?patient={first.pk}")
    page.select_option("#id_device_relatedness", "not_related")
    page.select_option("#id_procedure_relatedness", "not_related")
    assert page.get_attribute("#iso-class-live", "data-code") == "AE"
    page.check("#id_serious")
    assert page.get_attribute("#iso-class-live", "data-code") == "SAE"
    page.select_option("#id_device_relatedness", "probable")
    page.select_option("#id_anticipated", "false")
    assert page.inner_text("#iso-class-live").startswith("USADE")


def test_a_data_manager_creates_a_nurse_and_a_token_in_the_admin(page_as, live_server):
    from registry.models import ApiToken, RegistryRole

    site = make_site("AMS", timezone="Europe/Amsterdam")
    make_site("NYC", timezone="America/New_York", country="US")
    dm = _user("dm6", Role.DATA_MANAGER, [site.code])
    page = page_as(dm.username)

    page.goto(f"{live_server.url}/admin/auth/user/add/")
    page.fill("#id_username", "new_nurse")
    page.fill("#id_first_name", "Nora")
    page.fill("#id_password1", "a long pass phrase 4 nora")
    page.fill("#id_password2", "a long pass phrase 4 nora")
    page.select_option("#id_role", "nurse")
    page.check(f"input[name=sites][value=\"{site.pk}\"]")
    page.fill("#id_change_reason", "New research nurse at AMS")
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist .success")
    role = RegistryRole.objects.get(user__username="new_nurse")
    assert role.role == Role.NURSE and [s.code for s in role.sites.all()] == ["AMS"]
    assert role.history.latest().history_change_reason == "New research nurse at AMS"
    assert role.history.latest().history_user_id == dm.pk

    page.goto(f"{live_server.url}/admin/registry/apitoken/add/")
    page.select_option("#id_user", label="new_nurse")
    page.fill("#id_label", "REDCap pull")
    page.fill("#id_reason", "Monthly REDCap pull")
    page.click("#content-main input[type=submit]")
    key = page.inner_text("#apitoken-key")
    assert len(key) == 32
    token = ApiToken.objects.get(user__username="new_nurse")
    assert token.is_active and token.label == "REDCap pull"

    # Listed, then revoked with a reason.
    page.goto(f"{live_server.url}/admin/registry/apitoken/")
    page.check(f"input[name=_selected_action][value=\"{token.pk}\"]")
    page.select_option("select[name=action]", "revoke")
    page.fill("input[name=reason]", "Pull no longer needed")
    page.click("button[name=index]")
    page.wait_for_selector(".messagelist")
    token.refresh_from_db()
    assert token.revoked_at is not None

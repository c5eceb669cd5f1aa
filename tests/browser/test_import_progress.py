"""An import in a real browser: the data manager uploads, checks, confirms, sees the
progress page polling the job and lands on the result in words and counts. Eager
(as `make run`) and, where PostgreSQL and Redis are reachable, on a real worker."""

import zipfile

from registry.models import Patient, Role, Visit
from registry.services.imports import REFERENCE_BUNDLE
from tests.browser import test_nurse_workflow as nurse_workflow
from tests.conftest import _user
from tests.factories import make_site
from tests.tasks.test_reminder_tasks import worker  # noqa: F401

browser = nurse_workflow.browser
page_as = nurse_workflow.page_as
pytestmark = nurse_workflow.pytestmark


def bundle_zip(tmp_path):
    path = tmp_path / "chart-review.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for csv_file in sorted(REFERENCE_BUNDLE.glob("*.csv")):
            archive.write(csv_file, csv_file.name)
    return path


def import_in_the_browser(page_as, live_server, tmp_path):
    make_site("AMS", timezone="Europe/Amsterdam")
    dm = _user("dm_import", Role.DATA_MANAGER, ["AMS"])
    page = page_as(dm.username)
    statuses, pages = [], []
    page.on("response", lambda r: statuses.append(r.json()) if "/status/" in r.url else None)
    page.on("framenavigated", lambda frame: pages.append(frame.url))
    page.goto(f"{live_server.url}/admin/registry/importrun/upload/")
    assert page.locator("#import-template-link").count() == 1
    page.set_input_files("#id_bundle", str(bundle_zip(tmp_path)))
    page.fill("#id_reason", "Chart review 2005-2021")
    page.click("#bundle-upload input[type=submit]")
    page.wait_for_selector("#bundle-confirm")
    page.click("#bundle-confirm input[type=submit]")
    page.wait_for_selector("#import-result", timeout=60_000)
    return page, statuses, pages, dm


def assert_finished(page, statuses, pages, dm):
    assert any("/importrun/job/" in url for url in pages), pages  # the progress page was shown
    assert statuses and statuses[-1]["state"] == "done" and statuses[-1]["percent"] == 100
    assert statuses[-1]["checked"] == statuses[-1]["to_check"] > 0
    assert statuses[-1]["scheduled"] == 15
    text = page.inner_text("#import-result")
    assert "Imported chart-review.zip" in text and "Chart review 2005-2021" in text
    row = page.locator("#import-result-counts tr", has_text="Patients").inner_text().split()
    assert row[:2] == ["Patients", "15"]
    assert "{" not in text and "/tmp" not in text
    assert Patient.objects.filter(site__code="RAD").count() == 15
    history = Visit.history.filter(history_change_reason="Chart review 2005-2021")
    assert history.exists() and set(history.values_list("history_user_id", flat=True)) == {dm.pk}


def test_an_import_shows_its_progress_and_finishes(page_as, live_server, tmp_path, settings):
    settings.REGISTRY_IMPORT_DIR = str(tmp_path / "staged")
    assert_finished(*import_in_the_browser(page_as, live_server, tmp_path))


def test_on_a_real_worker_the_page_follows_the_job_until_it_finishes(
        worker, page_as, live_server, tmp_path, settings):  # noqa: F811
    settings.REGISTRY_IMPORT_DIR = str(tmp_path / "staged")
    # The confirm only enqueues: the worker imports while the page polls.
    assert_finished(*import_in_the_browser(page_as, live_server, tmp_path))

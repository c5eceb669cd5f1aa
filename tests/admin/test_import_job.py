"""The confirmed import as a Celery task: progress polled by the page, result in words and
counts, the format and an empty template from the upload page. Eager here (as `make run`);
the last test runs it on a real worker (PostgreSQL and Redis, as tests/tasks does)."""

import io
import json
import zipfile

import pytest
from django.urls import reverse

from registry.models import ImportRun, Patient, Visit
from registry.services.bundles import FILES
from registry.services.imports import jobs, staged_bundle_path
from tests.admin.test_bundle_import import UPLOAD, zipped
from tests.conftest import PASSWORD
from tests.tasks.test_reminder_tasks import pg_worker, worker  # noqa: F401

IMPORT_TASK = "registry.tasks.import_bundle"


@pytest.fixture
def dm_client(client, data_manager, settings, tmp_path):
    settings.REGISTRY_IMPORT_DIR = str(tmp_path / "staged")
    client.login(username=data_manager.username, password=PASSWORD)
    return client


def dry_run(client, reason="Chart review RAD") -> ImportRun:
    assert client.post(UPLOAD, {"bundle": zipped(), "reason": reason}).status_code == 200
    return ImportRun.objects.get(dry_run=True)


def test_the_confirm_runs_the_job_and_the_page_shows_the_result_in_words_and_counts(
        dm_client, data_manager):
    run = dry_run(dm_client)
    confirm = dm_client.post(reverse("admin:registry_importrun_confirm", args=[run.pk]))
    job_url = confirm["Location"]
    job_id = job_url.rstrip("/").rsplit("/", 1)[-1]
    assert job_url == reverse("admin:registry_importrun_job", args=[job_id])
    status = dm_client.get(reverse("admin:registry_importrun_job_status", args=[job_id])).json()
    imported = ImportRun.objects.get(dry_run=False)
    assert status["state"] == "done" and status["percent"] == 100
    # Rows checked: every row of the bundle; written: every new row; scheduled: the implants.
    assert status["checked"] == status["to_check"] > 15
    assert status["written"] == status["to_write"] > 15
    assert status["scheduled"] == status["to_schedule"] == 15
    assert status["result_url"] == reverse("admin:registry_importrun_result", args=[imported.pk])
    # Audited as the import always was: the data manager, the dry run's reason.
    history = Visit.history.filter(history_change_reason="Chart review RAD")
    assert history.count() >= 30 and {h.history_user for h in history} == {data_manager}
    assert not staged_bundle_path(run).exists()

    progress = dm_client.get(job_url).content.decode()
    assert 'id="import-bar"' in progress and f'href="{status["result_url"]}"' in progress
    page = dm_client.get(status["result_url"])
    html = page.content.decode()
    assert 'id="import-result"' in html and "Imported <strong>cohort.zip</strong>" in html
    assert "<td>Patients</td><td class=\"n\">15</td>" in html
    assert "follow-up visits scheduled" in html
    assert "{" not in html.split('id="import-result"')[1].split("</div>")[0]  # no raw JSON
    assert "/staged" not in html and "/tmp" not in html  # no server paths
    listing = dm_client.get(reverse("admin:registry_importrun_changelist")).content.decode()
    assert status["result_url"] in listing  # the import log links the result


def test_a_job_is_only_shown_to_who_started_it(dm_client, client, data_manager, site_a, site_b):
    from registry.models import Role
    from registry.services.users import registry_user_save

    run = dry_run(dm_client)
    job = jobs.import_job_create(dry_run=run, actor=data_manager)
    other, _ = registry_user_save(username="dm2", role=Role.DATA_MANAGER, site_codes=[site_a.code],
                                  password=PASSWORD, validate_pw=False)
    client.logout()
    client.login(username="dm2", password=PASSWORD)
    assert client.get(reverse("admin:registry_importrun_job", args=[job])).status_code == 404
    assert client.get(reverse("admin:registry_importrun_job_status", args=[job])).status_code == 404
    assert client.get(reverse("admin:registry_importrun_job_status", args=["nope"])).status_code == 404


def test_a_job_that_finds_the_registry_changed_says_so_in_words_and_writes_nothing(
        dm_client, data_manager):
    run = dry_run(dm_client)
    staged = staged_bundle_path(run)
    # Between the dry run and the confirm the staged bundle is replaced by a faulty one.
    bad = zipped({"patients.csv": b"registry_id,site\nRAD-0001,NOPE\n"})
    staged.write_bytes(bad.read())
    job = jobs.import_job_create(dry_run=run, actor=data_manager)
    assert jobs.import_job_run(job_id=job)["state"] == "failed"
    assert jobs.import_job_run(job_id=job)["skipped"] == "already claimed"  # runs once
    status = dm_client.get(reverse("admin:registry_importrun_job_status", args=[job])).json()
    assert status["state"] == "failed" and status["error_count"] >= 1
    assert any("patients.csv" in e for e in status["errors"])
    page = dm_client.get(reverse("admin:registry_importrun_job", args=[job])).content.decode()
    assert "nothing was written" in page and 'id="import-job-errors"' in page
    assert Patient.objects.count() == 0


def test_the_upload_page_links_the_format_and_an_empty_template(dm_client):
    page = dm_client.get(UPLOAD).content.decode()
    assert reverse("admin:registry_importrun_format") in page
    assert reverse("admin:registry_importrun_template") in page
    assert "semicolons" in page
    template = dm_client.get(reverse("admin:registry_importrun_template"))
    assert template["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(template.content)) as archive:
        headers = {name.split("/")[-1]: archive.read(name).decode().strip().split(",")
                   for name in archive.namelist()}
    assert headers == {spec.name: spec.column_names for spec in FILES}
    fmt = dm_client.get(reverse("admin:registry_importrun_format")).content.decode()
    for spec in FILES:
        assert spec.name in fmt and f"<code>{spec.columns[0].name}</code>" in fmt


def test_the_empty_template_zipped_back_is_read_without_column_errors(dm_client):
    template = dm_client.get(reverse("admin:registry_importrun_template"))
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = dm_client.post(UPLOAD, {"bundle": SimpleUploadedFile("t.zip", template.content),
                                       "reason": "template"})
    assert response.status_code == 200
    assert not [e for e in response.context["report"].errors if "column" in e.message]


def test_nurses_get_no_import_pages(client, nurse):
    client.login(username=nurse.username, password=PASSWORD)
    for name in ("admin:registry_importrun_template", "admin:registry_importrun_format"):
        assert client.get(reverse(name)).status_code == 403


@pg_worker
def test_on_a_real_worker_the_page_polls_progress_until_the_import_finishes(
        worker, client, data_manager, settings, tmp_path):  # noqa: F811
    settings.REGISTRY_IMPORT_DIR = str(tmp_path / "staged")
    client.login(username=data_manager.username, password=PASSWORD)
    run = dry_run(client)
    job_url = client.post(reverse("admin:registry_importrun_confirm", args=[run.pk]))["Location"]
    job_id = job_url.rstrip("/").rsplit("/", 1)[-1]
    status_url = reverse("admin:registry_importrun_job_status", args=[job_id])
    seen = [client.get(status_url).json()["state"]]  # queued or running: the request did not wait
    worker.wait(lambda: worker.count(IMPORT_TASK) == 1, "the import task")
    final = json.loads(client.get(status_url).content)
    assert seen[0] in ("queued", "running", "done") and final["state"] == "done", final
    assert Patient.objects.filter(site__code="RAD").count() == 15
    assert client.get(final["result_url"]).status_code == 200

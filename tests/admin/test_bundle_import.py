"""Bundle import in the admin: upload -> dry-run preview -> confirm -> import, data managers only."""

import datetime
import io
import os
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from registry.models import ImportRun, Patient, Visit
from registry.services.imports import REFERENCE_BUNDLE, STAGED_HOURS, staged_bundle_path
from tests.conftest import PASSWORD

UPLOAD = reverse("admin:registry_importrun_upload")


def zipped(replace: dict[str, bytes] | None = None) -> SimpleUploadedFile:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(REFERENCE_BUNDLE.glob("*.csv")):
            archive.writestr(path.name, (replace or {}).get(path.name, path.read_bytes()))
    return SimpleUploadedFile("cohort.zip", buffer.getvalue(), content_type="application/zip")


@pytest.fixture
def dm_client(client, data_manager, settings, tmp_path):
    settings.REGISTRY_IMPORT_DIR = str(tmp_path / "staged")
    client.login(username=data_manager.username, password=PASSWORD)
    return client


def test_a_data_manager_previews_then_confirms_and_only_then_rows_are_written(dm_client,
                                                                               data_manager):
    changelist = dm_client.get(reverse("admin:registry_importrun_changelist"))
    assert UPLOAD.encode() in changelist.content

    preview = dm_client.post(UPLOAD, {"bundle": zipped(), "reason": "Chart review RAD"})
    assert preview.status_code == 200
    assert b'id="bundle-confirm"' in preview.content and b'id="import-errors"' not in preview.content
    assert ("Patients", 15, 0, 0) in preview.context["counts"]
    assert Patient.objects.count() == 0
    dry_run = ImportRun.objects.get()
    assert dry_run.dry_run and staged_bundle_path(dry_run).exists()

    done = dm_client.post(reverse("admin:registry_importrun_confirm", args=[dry_run.pk]))
    assert done.status_code == 302
    assert Patient.objects.filter(site__code="RAD").count() == 15
    history = Visit.history.filter(history_change_reason="Chart review RAD")
    assert history.count() == 30 and {h.history_user for h in history} == {data_manager}
    assert not staged_bundle_path(dry_run).exists()
    # A second confirm of the same dry run imports nothing more.
    again = dm_client.post(reverse("admin:registry_importrun_confirm", args=[dry_run.pk]))
    assert again.status_code == 302 and Patient.objects.count() == 15


def test_a_preview_left_for_more_than_a_day_expires_and_its_file_is_removed(dm_client):
    dm_client.post(UPLOAD, {"bundle": zipped(), "reason": "Chart review RAD"})
    first = ImportRun.objects.get()
    dm_client.post(UPLOAD, {"bundle": zipped(), "reason": "Chart review RAD"})
    second = ImportRun.objects.exclude(pk=first.pk).get()
    a_day_ago = timezone.now() - datetime.timedelta(hours=STAGED_HOURS, minutes=1)
    ImportRun.objects.filter(pk=first.pk).update(created_at=a_day_ago)
    old = staged_bundle_path(first)
    os.utime(old, (a_day_ago.timestamp(), a_day_ago.timestamp()))

    done = dm_client.post(reverse("admin:registry_importrun_confirm", args=[first.pk]), follow=True)
    assert "expired" in done.content.decode()
    assert Patient.objects.count() == 0 and not old.exists()
    # The fresh preview is still waiting and imports.
    assert staged_bundle_path(second).exists()
    dm_client.post(reverse("admin:registry_importrun_confirm", args=[second.pk]))
    assert Patient.objects.count() == 15


def test_the_preview_lists_every_error_and_offers_no_confirm(dm_client):
    visits = (REFERENCE_BUNDLE / "visits.csv").read_bytes().replace(
        b"RAD-0001,RAD-0001-I1,m216,2023-01-03,1,5,1", b"RAD-0001,RAD-0001-I1,m216,2023-01-03,1,9,1")
    patients = (REFERENCE_BUNDLE / "patients.csv").read_bytes().replace(b"RAD-0002,RAD,F",
                                                                        b"RAD-0002,RAD,W")
    response = dm_client.post(UPLOAD, {"bundle": zipped({"visits.csv": visits,
                                                         "patients.csv": patients}),
                                       "reason": "x"})
    assert response.status_code == 200
    errors = [(e.file, e.line, e.column) for e in response.context["report"].errors]
    assert errors == [("patients.csv", 3, "sex"), ("visits.csv", 3, "satisfaction")]
    assert b'id="import-errors"' in response.content and b'id="bundle-confirm"' not in response.content
    assert b"expected a whole number from 1 to 5" in response.content
    assert Patient.objects.count() == 0


def test_it_refuses_a_file_that_is_not_a_zip(dm_client):
    response = dm_client.post(UPLOAD, {"bundle": SimpleUploadedFile("c.csv", b"a,b\n"),
                                       "reason": "x"})
    assert response.status_code == 400 and b"is not a .zip file" in response.content
    assert not ImportRun.objects.exists()


def test_nurses_and_investigators_cannot_import(client, nurse, investigator):
    for user in (nurse, investigator):
        client.login(username=user.username, password=PASSWORD)
        assert client.get(UPLOAD).status_code == 403
        assert client.post(UPLOAD, {"bundle": zipped(), "reason": "x"}).status_code == 403
    assert not ImportRun.objects.exists() and Patient.objects.count() == 0

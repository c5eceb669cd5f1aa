"""Bundle uploads are bounded: zip bombs, unreadable zips, too many columns, endless
lines and unstorable cells are refused with a clear message, in the admin upload and
in `import_registry`, without the request's memory growing with the unpacked size."""

import io
import tracemalloc
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse

from registry.models import Patient
from registry.services.imports import REFERENCE_BUNDLE, ImportRefused, bundle_import

UPLOAD = reverse("admin:registry_importrun_upload")
MB = 1024 * 1024


def bundle_bytes(replace: dict[str, bytes] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(REFERENCE_BUNDLE.glob("*.csv")):
            archive.writestr(path.name, (replace or {}).get(path.name, path.read_bytes()))
    return buffer.getvalue()


def newline_bomb(megabytes: int = 100) -> bytes:
    """A ~100 KB zip holding `megabytes` MB of newlines in visits.csv (written in chunks)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        with archive.open("visits.csv", "w") as member:
            for _ in range(megabytes):
                member.write(b"\n" * MB)
    return buffer.getvalue()


def _patched(data: bytes, *, local: int, central: int, value: bytes) -> bytes:
    """`data` with `value` written at an offset of every local and central header."""
    out = bytearray(data)
    for signature, offset in ((b"PK\x03\x04", local), (b"PK\x01\x02", central)):
        start = out.find(signature)
        while start != -1:
            out[start + offset:start + offset + len(value)] = value
            start = out.find(signature, start + 4)
    return bytes(out)


def encrypted(data: bytes) -> bytes:
    return _patched(data, local=6, central=8, value=b"\x01\x00")  # general purpose flag bit 0


def deflate64(data: bytes) -> bytes:
    return _patched(data, local=8, central=10, value=b"\x09\x00")  # compression method 9


@pytest.fixture
def dm_client(client, data_manager, settings, tmp_path):
    settings.REGISTRY_IMPORT_DIR = str(tmp_path / "staged")
    client.force_login(data_manager)
    return client


def test_a_100_mb_newline_bomb_is_refused_in_the_admin_with_flat_memory(dm_client):
    bomb = newline_bomb(100)
    assert len(bomb) < 200 * 1024  # the 104 KB zip
    upload = SimpleUploadedFile("bomb.zip", bomb, content_type="application/zip")
    tracemalloc.start()
    try:
        response = dm_client.post(UPLOAD, {"bundle": upload, "reason": "Chart review"})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 400
    assert "REGISTRY_IMPORT_MAX_UNCOMPRESSED" in response.content.decode()
    assert peak < 30 * MB, f"peak {peak / MB:.1f} MB"
    assert not Patient.objects.exists()


def test_a_bomb_whose_sizes_fit_the_limit_is_still_stopped_while_it_unpacks(
        dm_client, data_manager, settings, tmp_path):
    # The limit below the real size but above what a member's header declares is checked
    # as bytes come out; here the header is honest, so lower the limit to 10 MB and read 20.
    settings.REGISTRY_IMPORT_MAX_UNCOMPRESSED = 10 * MB
    path = tmp_path / "bomb.zip"
    path.write_bytes(newline_bomb(20))
    tracemalloc.start()
    try:
        with pytest.raises(CommandError, match="more than 10 MB of CSV once unpacked"):
            call_command("import_registry", str(path), "--user", data_manager.username,
                         "--reason", "Chart review", "--quiet")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 30 * MB


def test_a_zip_larger_than_the_compressed_limit_is_refused_before_unpacking(data_manager, settings):
    settings.REGISTRY_IMPORT_MAX_COMPRESSED = 1024
    with pytest.raises(ImportRefused, match="REGISTRY_IMPORT_MAX_COMPRESSED"):
        bundle_import(source=io.BytesIO(bundle_bytes()), actor=data_manager, reason="x", dry_run=True)


@pytest.mark.parametrize("damage,message", [
    (encrypted, "password-protected"),
    (deflate64, "compression this registry cannot read"),
    (lambda data: data[: len(data) // 2], "damaged zip"),
    (lambda data: b"PK\x03\x04" + b"\x00" * 200, "not a .zip file"),
])
def test_an_unreadable_zip_is_refused_with_a_clear_message_in_the_admin(dm_client, damage, message):
    upload = SimpleUploadedFile("cohort.zip", damage(bundle_bytes()), content_type="application/zip")
    response = dm_client.post(UPLOAD, {"bundle": upload, "reason": "Chart review"})
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Patient.objects.exists()


def test_an_encrypted_zip_is_refused_by_import_registry(data_manager, tmp_path):
    path = tmp_path / "locked.zip"
    path.write_bytes(encrypted(bundle_bytes()))
    with pytest.raises(CommandError, match="password-protected"):
        call_command("import_registry", str(path), "--user", data_manager.username,
                     "--reason", "Chart review", "--quiet")


def test_too_many_columns_and_too_long_lines_are_errors_naming_the_limit(data_manager, settings):
    settings.REGISTRY_IMPORT_MAX_COLUMNS = 50
    wide = ",".join(f"c{i}" for i in range(51)).encode() + b"\n"
    long_line = (REFERENCE_BUNDLE / "visits.csv").read_bytes().splitlines(keepends=True)
    long_line.insert(1, b"x" * (settings.REGISTRY_IMPORT_MAX_LINE_LENGTH + 10) + b"\n")
    report = bundle_import(source=io.BytesIO(bundle_bytes({"sites.csv": wide,
                                                           "visits.csv": b"".join(long_line)})),
                           actor=data_manager, reason="x", dry_run=True)
    messages = [str(e) for e in report.errors]
    assert any(m.startswith("sites.csv:1") and "REGISTRY_IMPORT_MAX_COLUMNS" in m for m in messages)
    assert any(m.startswith("visits.csv:2") and "REGISTRY_IMPORT_MAX_LINE_LENGTH" in m
               for m in messages)


def test_a_nul_byte_in_a_cell_is_an_error_naming_file_line_and_column(data_manager):
    lines = (REFERENCE_BUNDLE / "patients.csv").read_bytes().splitlines(keepends=True)
    header = lines[0].decode().strip().split(",")
    cells = lines[1].decode().rstrip("\r\n").split(",")
    column = header.index("affected_region")
    cells[column] = "left\x00arm"
    lines[1] = (",".join(cells) + "\n").encode()
    report = bundle_import(source=io.BytesIO(bundle_bytes({"patients.csv": b"".join(lines)})),
                           actor=data_manager, reason="x", dry_run=True)
    assert not report.ok
    assert any(e.file == "patients.csv" and e.line == 2 and e.column == "affected_region"
               and "NUL" in e.message for e in report.errors)

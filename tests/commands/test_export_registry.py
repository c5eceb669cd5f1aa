"""export_registry: the bundle format, no identifiers, and a byte-identical round trip."""

import io
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from registry.models import (
    AdverseEvent,
    ContactAttempt,
    Disposition,
    ExportLog,
    Implant,
    PainScore,
    Patient,
    PatientIdentifiers,
    Site,
    Visit,
    VisitStatus,
)
from registry.services.audit import record_save, system_user
from registry.services.bundles import FILES
from registry.services.imports import REFERENCE_BUNDLE


def export(path, *args):
    out = io.StringIO()
    call_command("export_registry", str(path), *args, stdout=out)
    return out.getvalue()


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def empty_the_registry():
    """As a fresh installation: no clinical rows, no history."""
    for model in (Disposition, ContactAttempt, PainScore, AdverseEvent, Visit, Implant,
                  PatientIdentifiers, Patient, Site):
        model.objects.all().delete()
        model.history.all().delete()


def test_export_then_import_into_an_empty_registry_then_export_gives_identical_files(
        db, tmp_path):
    call_command("seed_synthetic", "--patients", "40", "--seed", "11", "--quiet",
                 stdout=io.StringIO())
    call_command("import_registry", str(REFERENCE_BUNDLE), "--quiet", stdout=io.StringIO())
    assert PainScore.objects.exists() and AdverseEvent.objects.exists()
    export(tmp_path / "first")
    first = files(tmp_path / "first")
    assert set(first) == {spec.name for spec in FILES}
    visits_written = first["visits.csv"].count(b"\n") - 1
    assert visits_written == Visit.objects.filter(status=VisitStatus.COMPLETED).count()

    empty_the_registry()
    call_command("import_registry", str(tmp_path / "first"), "--quiet", stdout=io.StringIO())
    export(tmp_path / "second")

    assert files(tmp_path / "second") == first


def test_it_writes_one_site_without_identifiers_and_logs_the_export(db, tmp_path, site_a):
    call_command("import_registry", str(REFERENCE_BUNDLE), "--quiet", stdout=io.StringIO())
    patient = Patient.objects.get(registry_id="RAD-0001")
    record_save(PatientIdentifiers(patient=patient, record_number="HRN-998877",
                                   full_name="Jan Jansen"), actor=system_user(), reason="test")
    out = export(tmp_path / "rad", "--site", "rad")
    assert "15 patients" in out
    written = b"".join(files(tmp_path / "rad").values())
    assert b"HRN-998877" not in written and b"Jansen" not in written
    assert b"AAA" not in written
    sites = (tmp_path / "rad" / "sites.csv").read_text().splitlines()
    assert sites[0] == "code,name,country,timezone,reminder_emails" and len(sites) == 2
    log = ExportLog.objects.get()
    assert (log.channel, log.dataset, log.filters) == ("command", "bundle", {"site": "RAD"})


def test_it_refuses_an_unknown_site_and_a_folder_that_is_not_empty(db, tmp_path):
    with pytest.raises(CommandError, match="--site: no site 'ZZZ'"):
        export(tmp_path / "x", "--site", "ZZZ")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(CommandError, match="not an empty folder"):
        export(tmp_path / "full")
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"

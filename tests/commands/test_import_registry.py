"""import_registry: exit codes, one error per line, --user must be a data manager, dry run."""

import io
import shutil

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from registry.models import ImportRun, Patient, Visit
from registry.services.audit import SYSTEM_USERNAME
from registry.services.imports import REFERENCE_BUNDLE


def run(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command("import_registry", *map(str, args), "--quiet", stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def broken_bundle(tmp_path):
    bundle = tmp_path / "broken"
    shutil.copytree(REFERENCE_BUNDLE, bundle)
    visits = (bundle / "visits.csv").read_text().splitlines()
    visits[2] = visits[2].replace(",1,5,1", ",12,5,1")  # RAD-0001 m216: NRS 12
    visits[3] = visits[3].replace("2006-04-20", "2006-04-31")  # not a day
    (bundle / "visits.csv").write_text("\n".join(visits) + "\n")
    return bundle


def test_it_imports_a_bundle_as_the_named_data_manager(data_manager):
    out, _ = run(REFERENCE_BUNDLE, "--user", data_manager.username, "--reason", "Chart review")
    assert "15 new" in out and "import run" in out
    assert Patient.objects.filter(site__code="RAD").count() == 15
    history = Patient.history.filter(registry_id="RAD-0001").get()
    assert (history.history_user, history.history_change_reason) == (data_manager, "Chart review")


def test_without_user_the_system_user_is_in_the_audit_trail(db):
    run(REFERENCE_BUNDLE)
    history = Visit.history.filter(history_change_reason="Import of seed_reference")
    assert history.count() == 30
    assert {h.history_user.username for h in history} == {SYSTEM_USERNAME}


def test_it_prints_every_error_on_its_own_line_and_exits_non_zero(db, tmp_path):
    bundle = broken_bundle(tmp_path)
    err = io.StringIO()
    with pytest.raises(CommandError) as failure:
        call_command("import_registry", str(bundle), "--quiet", stdout=io.StringIO(), stderr=err)
    # manage.py turns a CommandError into this exit status (and prints the message).
    assert failure.value.returncode == 1
    assert "2 error(s)" in str(failure.value) and "nothing was imported" in str(failure.value)
    lines = err.getvalue().splitlines()
    assert lines[0] == "visits.csv:3 nrs '12': expected a whole number from 0 to 10."
    assert lines[1].startswith("visits.csv:4 visit_date '2006-04-31': expected a date")
    assert len(lines) == 2
    assert Patient.objects.count() == 0
    assert ImportRun.objects.get().succeeded is False


def test_a_dry_run_reports_and_writes_nothing(db):
    out, _ = run(REFERENCE_BUNDLE, "--dry-run")
    assert out.startswith("Dry run, nothing written.") and "patients: 15 new" in out
    assert Patient.objects.count() == 0


def test_it_refuses_a_user_who_is_not_a_data_manager(nurse):
    with pytest.raises(CommandError, match="--user: 'nurse_a' is not a data manager"):
        run(REFERENCE_BUNDLE, "--user", nurse.username)
    with pytest.raises(CommandError, match="--user: no user 'nobody'"):
        run(REFERENCE_BUNDLE, "--user", "nobody")
    assert Patient.objects.count() == 0


def test_it_refuses_a_path_that_is_neither_a_folder_nor_a_zip(db, tmp_path):
    with pytest.raises(CommandError, match="path: no such folder"):
        run(tmp_path / "missing")
    text = tmp_path / "cohort.txt"
    text.write_text("not a zip")
    with pytest.raises(CommandError, match="not a .zip file"):
        run(text)


def test_reimporting_prints_unchanged_counts_and_adds_nothing(db):
    run(REFERENCE_BUNDLE)
    count = Visit.objects.count(), Visit.history.count()
    out, _ = run(REFERENCE_BUNDLE)
    assert "patients: 0 new, 15 unchanged" in out
    assert (Visit.objects.count(), Visit.history.count()) == count

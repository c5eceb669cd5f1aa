"""The bundle carries visits not done (issue 18): visits.csv writes a missed or not-applicable
visit with its `status` and `visit_missing` (no date, no values), the import reads it back
through the same validation, and export -> import into an empty registry -> export gives the
same bytes, with a missed visit's reason and value-level reasons on board."""

import csv
import io

import pytest
from django.core.management import call_command

from registry.models import PromAnswer, Visit, VisitStatus
from registry.services.audit import record_save, system_user
from registry.services.imports import bundle_import
from registry.services.proms.answers import prom_answers_record, prom_item_missing_record
from tests.commands.test_export_registry import empty_the_registry, export, files

VALUES = ("nrs", "satisfaction", "pgic", "opioid_mme", "would_choose_again", "stimulation_use")


def not_done(visit, status, why):
    visit.status, visit.date_done, visit.visit_missing = status, None, why
    for name in VALUES:
        setattr(visit, name, None if name != "stimulation_use" else "")
    for name in ("nrs", "satisfaction", "pgic", "opioid_mme"):
        setattr(visit, f"{name}_missing", "")
    visit.pain_scores.all().delete()
    PromAnswer.objects.filter(visit=visit).delete()
    return record_save(visit, actor=system_user(), reason="test: not done")


def rows(data: bytes) -> list[dict]:
    return list(csv.DictReader(io.StringIO(data.decode())))


@pytest.fixture
def registry(db):
    call_command("seed_synthetic", "--patients", "12", "--seed", "5", "--quiet", stdout=io.StringIO())
    follow_ups = Visit.objects.exclude(timepoint__in=("baseline", "unscheduled")).filter(
        implant__isnull=False).order_by("pk")
    missed = not_done(follow_ups.filter(status=VisitStatus.COMPLETED)[0], VisitStatus.MISSED, "too_ill")
    skipped = not_done(follow_ups.exclude(pk=missed.pk).filter(status=VisitStatus.COMPLETED)[0],
                       VisitStatus.NOT_APPLICABLE, "site")
    # A completed visit with value-level reasons, and a PROM item with its reason.
    done = follow_ups.filter(status=VisitStatus.COMPLETED).exclude(pk__in=[missed.pk, skipped.pk])[0]
    done.nrs, done.nrs_missing, done.opioid_mme, done.opioid_mme_missing = None, "declined", None, "unknown"
    record_save(done, actor=system_user(), reason="test: reasons")
    prom_answers_record(visit=done, instrument="odi", actor=system_user(),
                        answers={f"s{n}": 2 for n in range(1, 10)})
    prom_item_missing_record(visit=done, instrument="odi", item="s10", why="not_applicable",
                             actor=system_user())
    return {"missed": missed, "skipped": skipped, "done": done}


def key(visit):
    return (visit.patient.registry_id, visit.implant.ref if visit.implant_id else "", visit.timepoint)


def test_missed_visits_round_trip_with_their_reasons(registry, tmp_path):
    export(tmp_path / "first")
    written = files(tmp_path / "first")
    visits = {(r["registry_id"], r["implant_ref"], r["timepoint"]): r for r in rows(written["visits.csv"])}
    missed = visits[key(registry["missed"])]
    assert (missed["status"], missed["visit_missing"], missed["visit_date"], missed["nrs"]) == \
        ("missed", "too_ill", "", "")
    assert visits[key(registry["skipped"])]["status"] == "not_applicable"
    assert visits[key(registry["done"])]["nrs_missing"] == "declined"
    # Scheduled visits, and visits not done without a reason, stay behind.
    assert {r["status"] for r in visits.values()} == {"completed", "missed", "not_applicable"}
    assert all(r["visit_missing"] for r in visits.values() if r["status"] != "completed")
    assert b",s10,,not_applicable" in written["prom_answers.csv"]

    empty_the_registry()
    call_command("import_registry", str(tmp_path / "first"), "--quiet", stdout=io.StringIO())
    back = {key(v): v for v in Visit.objects.select_related("patient", "implant")}
    again = back[key(registry["missed"])]
    assert (again.status, again.visit_missing, again.date_done, again.nrs) == \
        ("missed", "too_ill", None, None)
    assert again.history.get().history_change_reason == "Import of first"
    assert (back[key(registry["skipped"])].status, back[key(registry["skipped"])].visit_missing) == \
        ("not_applicable", "site")
    assert back[key(registry["done"])].nrs_missing == "declined"
    export(tmp_path / "second")
    assert files(tmp_path / "second") == written
    # Imported again into the registry that holds it: nothing new, nothing changed.
    report = bundle_import(source=tmp_path / "first", actor=system_user(), reason="again")
    assert report.ok, report.errors
    assert report.counts["visits"]["new"] == report.counts["visits"]["updated"] == 0


def _bundle_with(tmp_path, registry, **changes):
    export(tmp_path / "b")
    path = tmp_path / "b" / "visits.csv"
    table = rows(path.read_bytes())
    target = next(r for r in table if (r["registry_id"], r["implant_ref"], r["timepoint"])
                  == key(registry["missed"]))
    target.update(changes)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(table[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(table)
    empty_the_registry()
    return tmp_path / "b", table.index(target) + 2, target


@pytest.mark.parametrize(("changes", "column", "says"), [
    ({"visit_date": "2021-03-01"}, "visit_date", "has no visit date"),
    ({"nrs": "4"}, "status", "Scores were entered (nrs)"),
    ({"status": "", "visit_missing": "too_ill", "visit_date": "2021-03-01"}, "visit_missing",
     "for missed or not applicable visits"),
    ({"status": "scheduled"}, "status", "expected one of completed, missed, not_applicable"),
    ({"visit_missing": "lost"}, "visit_missing", "expected one of not_asked"),
    ({"nrs_missing": "declined"}, "nrs_missing", "Missing-value reasons are for completed visits"),
    ({"status": ""}, "visit_date", "A completed visit needs the date it was done"),
])
def test_a_visit_not_done_is_validated_as_everywhere_naming_column_and_value(registry, tmp_path,
                                                                            changes, column, says):
    folder, line, row = _bundle_with(tmp_path, registry, **changes)
    report = bundle_import(source=folder, actor=system_user(), reason="x")
    found = [(e.file, e.line, e.column) for e in report.errors]
    assert ("visits.csv", line, column) in found, report.errors
    [error] = [e for e in report.errors if (e.file, e.line, e.column) == ("visits.csv", line, column)]
    assert says in error.message and error.value == row[column]  # the cell as written
    assert not Visit.objects.exists()  # nothing half-saved


def test_a_scheduled_visit_the_bundle_says_was_missed_is_filled_in_with_its_reason(registry, tmp_path):
    scheduled = Visit.objects.filter(status=VisitStatus.SCHEDULED, implant__isnull=False).select_related(
        "patient", "implant").order_by("pk").first()
    assert scheduled is not None
    export(tmp_path / "b")
    path = tmp_path / "b" / "visits.csv"
    table = rows(path.read_bytes())
    table.append({**dict.fromkeys(table[0], ""), "registry_id": scheduled.patient.registry_id,
                  "implant_ref": scheduled.implant.ref, "timepoint": scheduled.timepoint,
                  "status": "missed", "visit_missing": "unreachable", "entered_by": "nurse"})
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(table[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(table)
    report = bundle_import(source=tmp_path / "b", actor=system_user(), reason="chart review")
    assert report.ok, report.errors
    assert report.counts["visits"]["updated"] == 1 and report.counts["visits"]["new"] == 0
    scheduled.refresh_from_db()
    assert (scheduled.status, scheduled.visit_missing, scheduled.date_done) == ("missed", "unreachable", None)
    assert scheduled.history.first().history_change_reason == "chart review"

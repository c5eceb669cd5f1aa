"""prom_answers.csv: written by export_registry, validated on import, round-trips."""

import csv
import datetime
from pathlib import Path

import pytest

from registry.models import PromAnswer
from registry.services.bundles import bundle_export, format_reference_markdown
from registry.services.imports import bundle_import
from registry.services.proms.answers import prom_answers_record
from tests.commands.test_export_registry import empty_the_registry, files
from tests.factories import make_implant, make_patient, make_visit

HEADER = ["registry_id", "implant_ref", "timepoint", "visit_date", "instrument", "item", "value",
          "value_missing"]


@pytest.fixture
def registry_with_proms(site_a, nurse):
    patient = make_patient(site_a)
    implant = make_implant(patient)
    base = make_visit(patient)
    m6 = make_visit(patient, implant, timepoint="m6", date_done=datetime.date(2020, 9, 2), nrs=3)
    prom_answers_record(visit=base, instrument="eq5d5l",
                        answers={"mo": 3, "sc": 2, "ua": 4, "pd": 4, "ad": 3, "vas": 30}, actor=nurse)
    prom_answers_record(visit=base, instrument="hads", answers={f"q{n}": n % 4 for n in range(1, 15)},
                        actor=nurse)
    prom_answers_record(visit=m6, instrument="bpi_sf", answers={"worst": 5, "least": 1, "average": 3,
                                                                "now": 2, "sleep": 4}, actor=nurse)
    return patient


def test_export_import_export_keeps_every_answer(registry_with_proms, data_manager, tmp_path):
    counts = bundle_export(target=tmp_path / "first", actor=data_manager)
    assert counts["prom_answers"] == 6 + 14 + 5
    lines = (tmp_path / "first" / "prom_answers.csv").read_text().splitlines()
    assert lines[0] == ",".join(HEADER)
    assert f"{registry_with_proms.registry_id},,baseline,2020-01-15,eq5d5l,mo,3," in lines
    before = sorted(PromAnswer.objects.values_list("visit__timepoint", "instrument", "item", "value"))
    empty_the_registry()
    assert not PromAnswer.objects.exists()
    report = bundle_import(source=tmp_path / "first", actor=data_manager, reason="round trip")
    assert report.ok, report.errors
    assert sorted(PromAnswer.objects.values_list("visit__timepoint", "instrument", "item", "value")) == before
    assert PromAnswer.history.filter(history_change_reason="round trip").count() == len(before)
    bundle_export(target=tmp_path / "second", actor=data_manager)
    assert files(tmp_path / "second") == files(tmp_path / "first")
    again = bundle_import(source=tmp_path / "first", actor=data_manager, reason="again")
    assert again.ok and again.count("prom_answers", "unchanged") == len(before)


def write_bundle(folder: Path, rows):
    folder.mkdir()
    with open(folder / "prom_answers.csv", "w", newline="") as fh:
        # Without value_missing: a bundle from before the column still imports.
        csv.writer(fh, lineterminator="\n").writerows([HEADER[:7], *rows])


def test_bad_answers_are_reported_by_line_and_column_and_nothing_is_written(registry_with_proms,
                                                                            data_manager, tmp_path):
    rid = registry_with_proms.registry_id
    write_bundle(tmp_path / "bad", [
        [rid, "", "baseline", "2020-01-15", "odi", "s1", "6"],
        [rid, "", "baseline", "2020-01-15", "odi", "s11", "1"],
        [rid, "", "baseline", "2020-01-15", "sf36", "q1", "1"],
        [rid, "", "baseline", "2020-01-15", "pcs", "q1", "2"],
        [rid, "", "baseline", "2020-01-15", "pcs", "q1", "3"],
        [rid, f"{rid}-I1", "m12", "2021-03-01", "pcs", "q1", "2"],
        [rid, "", "baseline", "2020-01-16", "pcs", "q2", "2"],
        [rid, "", "baseline", "2020-01-15", "pcs", "q3", "x"],
    ])
    held = PromAnswer.objects.count()
    report = bundle_import(source=tmp_path / "bad", actor=data_manager, reason="bad", dry_run=False)
    assert not report.ok
    said = {(e.line, e.column): e.message for e in report.errors}
    assert "0-5; 6 is not on the scale" in said[(2, "value")]
    assert "'s11' is not an item" in said[(3, "item")]
    assert said[(4, "instrument")] == "expected one of eq5d5l, odi, bpi_sf, hads, pcs, pseq."
    assert "second answer" in said[(6, "item")]
    assert "no such completed visit" in said[(7, "timepoint")]
    assert "expected 2020-01-15" in said[(8, "visit_date")]
    assert (9, "value") in said
    assert PromAnswer.objects.count() == held


def test_the_format_reference_documents_the_file():
    assert "### `prom_answers.csv` (optional file)" in format_reference_markdown()

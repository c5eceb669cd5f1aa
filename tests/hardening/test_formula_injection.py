"""Cells a spreadsheet would run as formulas (=, +, -, @, tab, CR first) leave the
registry with a quote in front (OWASP), in the bundle export, the CSV and the xlsx;
numbers stay numbers; the bundle import takes exactly that quote off again."""

import csv
import datetime
import io

import pytest
from django.db.models import CharField, IntegerField, Value
from openpyxl import load_workbook

from registry.services import datasets
from registry.services.bundles import bundle_export
from registry.services.cells import from_cell, to_cell
from registry.services.datasets.columns import Column
from registry.services.imports import bundle_import
from registry.services.tokens import api_token_create
from tests.factories import make_implant, make_patient, make_visit

FORMULAS = ["=HYPERLINK(\"http://x\",\"y\")", "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx"]


def test_to_cell_quotes_every_formula_start_and_from_cell_reverses_it():
    for text in FORMULAS:
        assert to_cell(text) == "'" + text
        assert from_cell(to_cell(text)) == text
    assert to_cell(-3) == -3 and to_cell("left arm") == "left arm"
    assert from_cell("'quoted") == "'quoted"  # not a neutralised cell: left alone


def test_the_bundle_export_quotes_formulas_and_its_reimport_reads_them_back(
        site_a, nurse, data_manager, tmp_path):
    patient = make_patient(site_a, actor=nurse, affected_region="=HYPERLINK(\"http://x\")",
                           amputation_cause="-3 mm below the knee")
    implant = make_implant(patient, actor=nurse)
    make_visit(patient, implant, actor=nurse, timepoint="m3", nrs=3,
               date_done=datetime.date(2020, 6, 1))
    bundle_export(target=tmp_path / "out", actor=data_manager)
    rows = list(csv.DictReader((tmp_path / "out" / "patients.csv").open(encoding="utf-8")))
    assert rows[0]["affected_region"] == "'=HYPERLINK(\"http://x\")"
    assert rows[0]["amputation_cause"] == "'-3 mm below the knee"
    assert not rows[0]["birth_year"].startswith("'")
    # Read back as written: the same values, so the re-import changes nothing.
    report = bundle_import(source=tmp_path / "out", actor=data_manager, reason="round trip",
                           dry_run=True)
    assert report.ok, [str(e) for e in report.errors]
    assert report.count("patients", "unchanged") == 1 and report.count("patients", "new") == 0


@pytest.fixture
def formula_columns(monkeypatch):
    text = Column("evil_text", "A text column (test)", "str",
                  lambda: Value("=cmd|' /C calc'!A0", output_field=CharField()))
    number = Column("minus_three", "A negative number (test)", "int",
                    lambda: Value(-3, output_field=IntegerField()))
    monkeypatch.setattr(datasets.VISITS, "columns", [*datasets.VISITS.columns, text, number])


def test_the_csv_and_xlsx_datasets_quote_formulas_and_keep_negative_numbers(
        client, site_a, nurse, formula_columns, tmp_path):
    patient = make_patient(site_a, actor=nurse)
    make_visit(patient, make_implant(patient, actor=nurse), actor=nurse, timepoint="m3", nrs=3,
               date_done=datetime.date(2020, 6, 1))
    auth = {"HTTP_AUTHORIZATION": f"Token {api_token_create(user=nurse, label='t')}"}
    response = client.get("/api/v1/exports/visits/", **auth)
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows and {r["evil_text"] for r in rows} == {"'=cmd|' /C calc'!A0"}
    assert {r["minus_three"] for r in rows} == {"-3"}

    response = client.get("/api/v1/exports/visits/?format=xlsx", **auth)
    path = tmp_path / "visits.xlsx"
    path.write_bytes(b"".join(response.streaming_content) if response.streaming else response.content)
    sheet = list(load_workbook(path)["data"].values)
    header, data = sheet[0], sheet[1:]
    text, number = header.index("evil_text"), header.index("minus_three")
    assert data and all(row[text] == "'=cmd|' /C calc'!A0" for row in data)
    assert all(row[number] == -3 for row in data)  # a number, not the text "-3"

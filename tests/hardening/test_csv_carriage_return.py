"""A text holding a carriage return leaves every CSV channel quoted, as PostgreSQL's COPY
quotes it: Python 3.11's csv writer (line terminator "\\n") quoted only "\\n", so on SQLite
and in the Python paths a lone "\\r" went out bare and a reader in universal-newline mode
split the row there (`cells.CsvWriter`)."""

import csv
import datetime
import io

import pytest
from django.db import connection
from django.db.models import CharField, Value

from registry.services import datasets
from registry.services.bundles import bundle_export
from registry.services.cells import CsvWriter
from registry.services.datasets.columns import Column
from registry.services.imports import bundle_import
from registry.services.tokens import api_token_create
from tests.factories import make_implant, make_patient, make_visit

TRICKY = ["left\rarm", "a,b", 'say "x"', "two\nlines", "crlf\r\nend", "plain", "", "\r"]


def _written(rows) -> str:
    out = io.StringIO()
    writer = CsvWriter(out)
    for row in rows:
        writer.writerow(row)
    return out.getvalue()


def test_a_carriage_return_is_quoted_and_reads_back_as_one_field():
    text = _written([["left\rarm", "x"], ["plain", "y"]])
    assert text == '"left\rarm",x\nplain,y\n'
    assert list(csv.reader(io.StringIO(text, newline=""))) == [["left\rarm", "x"], ["plain", "y"]]
    # Universal newlines (what Excel, R and pandas do): still two rows of two fields.
    assert len(list(csv.reader(io.StringIO(text)))) == 2


def test_rows_without_one_are_what_the_csv_module_writes():
    rows = [["a", 1, None, 2.5], ["b,c", 'q"', "", "x\ny"]]
    plain = io.StringIO()
    for row in rows:
        csv.writer(plain, lineterminator="\n").writerow(row)
    assert _written(rows) == plain.getvalue()


@pytest.mark.django_db
def test_the_writer_quotes_as_postgresql_copy_does():
    if connection.vendor != "postgresql":
        pytest.skip("COPY is PostgreSQL's")
    placeholders = ", ".join(["%s::text"] * len(TRICKY))
    with connection.cursor() as cursor:
        statement = cursor.cursor.mogrify(f"SELECT {placeholders}", TRICKY)
        with cursor.cursor.copy(f"COPY ({statement}) TO STDOUT WITH (FORMAT csv)") as copy:
            copied = b"".join(bytes(data) for data in copy).decode()
    # COPY writes NULL as an empty field and quotes an empty string; the exports write
    # every empty value as NULL, so compare without the empty one.
    copied = copied.replace(',"",', ",,")
    assert _written([TRICKY]) == copied


@pytest.fixture
def carriage_return_column(monkeypatch):
    text = Column("cr_text", "A text with a carriage return (test)", "str",
                  lambda: Value("left\rarm", output_field=CharField()))
    monkeypatch.setattr(datasets.VISITS, "columns", [*datasets.VISITS.columns, text])


@pytest.mark.django_db
def test_the_rest_csv_export_quotes_it(client, site_a, nurse, carriage_return_column):
    """On SQLite the Python writer, on PostgreSQL COPY: the same quoted field."""
    patient = make_patient(site_a, actor=nurse)
    make_visit(patient, make_implant(patient, actor=nurse), actor=nurse, timepoint="m3", nrs=3,
               date_done=datetime.date(2020, 6, 1))
    auth = {"HTTP_AUTHORIZATION": f"Token {api_token_create(user=nurse, label='t')}"}
    body = b"".join(client.get("/api/v1/exports/visits/", **auth).streaming_content).decode()
    assert '"left\rarm"' in body and "left\rarm\n" not in body.replace('"left\rarm"', "")
    exact = list(csv.DictReader(io.StringIO(body, newline="")))
    rows = list(csv.DictReader(io.StringIO(body)))  # universal newlines: the same rows
    assert len(rows) == len(exact) == patient.visits.count()
    assert {r["cr_text"] for r in rows} == {"left\rarm"}


@pytest.mark.django_db
def test_the_bundle_export_quotes_it_and_the_reimport_reads_it_back(
        site_a, nurse, data_manager, tmp_path):
    patient = make_patient(site_a, actor=nurse, amputation_cause="trauma\rbelow knee")
    make_visit(patient, make_implant(patient, actor=nurse), actor=nurse, timepoint="m3", nrs=3,
               date_done=datetime.date(2020, 6, 1))
    bundle_export(target=tmp_path / "out", actor=data_manager)
    text = (tmp_path / "out" / "patients.csv").read_bytes().decode()
    assert '"trauma\rbelow knee"' in text
    rows = list(csv.DictReader(io.StringIO(text)))  # universal newlines: still one patient
    assert len(rows) == 1 and rows[0]["amputation_cause"] == "trauma\rbelow knee"
    report = bundle_import(source=tmp_path / "out", actor=data_manager, reason="round trip",
                           dry_run=True)
    assert report.ok, [str(e) for e in report.errors]
    assert report.count("patients", "unchanged") == 1

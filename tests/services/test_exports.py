"""services.exports: the dataset definition, typed rows, the two CSV paths agree."""

import csv
import datetime
import io
import itertools

import pytest
from django.db import connection

from registry.models import AdverseEvent, Implant, Visit, iso14155_class
from registry.services import exports
from tests.conftest import needs_postgres
from tests.factories import make_event, make_implant, make_patient, make_visit

pytestmark = pytest.mark.django_db


@pytest.fixture
def small(site_a):
    patient = make_patient(site_a, birth_year=1950, sex="F")
    implant = make_implant(patient, therapy="DRG", implant_date=datetime.date(2021, 5, 10))
    make_visit(patient, None, timepoint="baseline", nrs=10, date_done=datetime.date(2021, 4, 1))
    make_visit(patient, implant, timepoint="m6", nrs=4, pgic=1, satisfaction=4,
               opioid_mme="7.5", date_done=datetime.date(2021, 11, 12))
    return patient


def test_visit_rows_are_typed_dicts_in_column_order(small):
    rows = [r for r in exports.visit_rows(Visit.objects.filter(patient=small)) if r["nrs"] is not None]
    m6 = next(r for r in rows if r["timepoint"] == "m6")
    assert list(m6) == [c.name for c in exports.VISIT_COLUMNS]
    assert m6 | {"age_at_implant": 71, "therapy": "DRG", "days_from_implant": 186, "nrs_baseline": 10,
                 "nrs_reduction_pct": 60.0, "responder": True, "pgic": 1, "opioid_mme": 7.5} == m6


def test_iso_dates_add_real_date_columns(small):
    rows = list(exports.visit_rows(Visit.objects.filter(patient=small, timepoint="m6"), dates="iso"))
    assert (rows[0]["visit_date"], rows[0]["implant_date"]) == (
        datetime.date(2021, 11, 12), datetime.date(2021, 5, 10))
    assert [c.name for c in exports.columns_for("visits", dates="iso")][-2:] == ["visit_date",
                                                                                "implant_date"]


def test_it_refuses_an_unknown_dates_mode_or_dataset(small):
    with pytest.raises(ValueError, match="dates mode 'real'"):
        exports.visit_dataset(Visit.objects.all(), dates="real")
    with pytest.raises(ValueError, match="dataset 'labs'"):
        exports.columns_for("labs")


def test_the_sql_iso_class_agrees_with_the_model_rule(site_a):
    patient = make_patient(site_a)
    implant = make_implant(patient)
    combos = list(itertools.product([False, True], ["not_related", "possible"], ["not_related", "causal"],
                                    [None, True, False]))
    for serious, device, procedure, anticipated in combos:
        make_event(patient, implant, serious=serious, device_relatedness=device,
                   procedure_relatedness=procedure, anticipated=anticipated,
                   serious_criterion="hospitalisation" if serious else "")
    expected = sorted(e.iso_class for e in AdverseEvent.objects.all())
    got = sorted(r["iso_class"] for r in exports.event_rows(AdverseEvent.objects.all()))
    assert got == expected
    assert {iso14155_class(serious=True, device_relatedness="possible", procedure_relatedness="x",
                           anticipated=False)} <= set(got)


def test_the_csv_stream_counts_its_rows_and_writes_a_header(small):
    counter = exports.RowCounter()
    text = b"".join(exports.export_csv_stream("visits", Visit.objects.filter(patient=small),
                                              counter=counter)).decode()
    lines = text.splitlines()
    assert lines[0] == ",".join(c.name for c in exports.VISIT_COLUMNS)
    assert counter.rows == len(lines) - 1 == Visit.objects.filter(patient=small).count()


@needs_postgres()
def test_copy_and_orm_paths_write_the_same_csv(small, site_b):
    other = make_patient(site_b, birth_year=1925)
    make_implant(other, therapy="SCS", implant_date=datetime.date(2021, 1, 1))
    make_event(small, Implant.objects.get(patient=small), anticipated=False, serious=True,
               serious_criterion="intervention", device_relatedness="probable")
    datasets = (("visits", Visit.objects.all()), ("adverse-events", AdverseEvent.objects.all()))
    for dataset, queryset in datasets:
        for dates in exports.DATES_MODES:
            copy_text, orm_text = _both_csv_paths(dataset, queryset, dates)
            assert copy_text == orm_text, (dataset, dates)
            assert copy_text.count(b"\n") == queryset.count() + 1  # and the header


def _both_csv_paths(dataset, queryset, dates="relative"):
    """The PostgreSQL export (COPY, the formula guard over the select's columns) and the
    ORM path (the guard in the select, the SQLite path) of the same rows."""
    copy_text = b"".join(exports.export_csv_stream(dataset, queryset, dates=dates))
    select = exports.datasets.get(dataset).select(queryset, dates=dates, spreadsheet=True)
    head = (",".join(c.name for c in exports.columns_for(dataset, dates=dates)) + "\n").encode()
    return copy_text, b"".join(exports._csv_orm(select, head, exports.RowCounter()))


@needs_postgres()
def test_the_copy_path_guards_every_formula_start_as_the_orm_path(small, monkeypatch):
    # Each start a spreadsheet runs (cells.FORMULA_STARTS), a quote already there, a
    # harmless text and a NULL: the same cells both ways, and `cells.to_cell`'s.
    from django.db.models import CharField, Value

    from registry.services.cells import FORMULA_STARTS, to_cell
    from registry.services.datasets import VISITS, Column

    texts = [f"{start}1+1" for start in FORMULA_STARTS] + ["'=x", "plain", None]
    extra = [Column(f"text_{i}", "A text column (test)", "str",
                    lambda t=t: Value(t, output_field=CharField())) for i, t in enumerate(texts)]
    monkeypatch.setattr(VISITS, "columns", [*VISITS.columns, *extra])
    copy_text, orm_text = _both_csv_paths("visits", Visit.objects.filter(patient=small))
    # Byte for byte, the cell holding a carriage return quoted both ways (`cells.CsvWriter`).
    assert b"\"'\r1+1\"" in copy_text
    assert copy_text == orm_text
    rows = list(csv.reader(io.StringIO(copy_text.decode(), newline="")))
    wanted = ["" if t is None else to_cell(t) for t in texts]
    assert all(row[-len(texts):] == wanted for row in rows[1:]) and len(rows) > 1


@needs_postgres()
def test_the_copy_statement_binds_parameters_safely(small):
    # A quote in a filter value must neither break nor change the statement.
    queryset = Visit.objects.filter(patient__affected_region="O'Brien); DROP TABLE x; --")
    statement = exports.copy_statement("visits", queryset)
    assert statement.startswith("COPY (SELECT")
    assert "'O''Brien); DROP TABLE x; --'" in statement
    assert b"".join(exports.export_csv_stream("visits", queryset)).count(b"\n") == 1
    assert connection.vendor == "postgresql"


def test_a_distinct_queryset_still_yields_only_the_dataset_columns(small):
    # DISTINCT pulls ORDER BY columns into the SELECT; COPY would write them out.
    queryset = Visit.objects.filter(patient__implants__therapy="DRG").distinct()
    lines = b"".join(exports.export_csv_stream("visits", queryset)).decode().splitlines()
    width = len(exports.VISIT_COLUMNS)
    assert {len(line.split(",")) for line in lines} == {width}
    assert len(lines) - 1 == Visit.objects.filter(patient=small).count()
    assert {len(row) for row in exports.visit_rows(queryset)} == {width}

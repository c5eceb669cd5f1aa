"""services.exports: the dataset definition, typed rows, the two CSV paths agree."""

import datetime
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
            select = exports.dataset_queryset(dataset, queryset, dates=dates)
            copy_text = b"".join(exports._csv_copy(select, b"", exports.RowCounter()))
            orm_text = b"".join(exports._csv_orm(select, b"", exports.RowCounter()))
            assert copy_text == orm_text, (dataset, dates)
            assert copy_text.count(b"\n") == queryset.count()


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

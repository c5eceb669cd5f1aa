"""Missing-data reasons: beside the value in the model, and in each format's own mechanism
(`<column>_missing` in CSV/JSON/xlsx, SPSS user-missing, Stata .a-.e, read back with
pyreadstat)."""

import json
import os

import pyreadstat
import pytest
from django.core.exceptions import ValidationError

from registry.models import Visit, VisitStatus
from registry.services import exports, missing
from registry.services.audit import record_save, system_user
from tests.factories import make_implant, make_patient, make_visit


@pytest.fixture
def visits(site_a, nurse):
    patient = make_patient(site_a, actor=nurse)
    implant = make_implant(patient, actor=nurse)
    make_visit(patient, actor=nurse, nrs=8)  # baseline
    m1 = Visit.objects.get(implant=implant, timepoint="m1")
    m1.status, m1.date_done = VisitStatus.COMPLETED, m1.target_date
    m1.nrs, m1.nrs_missing = None, "declined"
    m1.satisfaction_missing, m1.pgic, m1.opioid_mme_missing = "not_asked", 3, "unknown"
    record_save(m1, actor=nurse, reason="test")
    m3 = Visit.objects.get(implant=implant, timepoint="m3")
    m3.status, m3.visit_missing = VisitStatus.MISSED, "lost_to_follow_up"
    record_save(m3, actor=nurse, reason="test")
    return Visit.objects.filter(patient=patient)


def test_a_reason_beside_a_value_is_refused_naming_the_reason_field(visits):
    m1 = visits.get(timepoint="m1")
    m1.pgic_missing = "unknown"  # PGIC is 3
    with pytest.raises(ValidationError) as error:
        m1.full_clean()
    assert "pgic_missing" in error.value.message_dict


def test_a_visit_reason_is_for_visits_not_done(visits):
    m1 = visits.get(timepoint="m1")
    m1.visit_missing = "declined"
    with pytest.raises(ValidationError) as error:
        m1.full_clean()
    assert "visit_missing" in error.value.message_dict


def rows(visits, fmt):
    chunks = (exports.export_csv_stream if fmt == "csv" else exports.export_json_stream)(
        "visits", visits, dates="relative")
    return b"".join(c if isinstance(c, bytes) else c.encode() for c in chunks).decode()


def by_timepoint(records):
    return {r["timepoint"]: r for r in records}


def test_json_and_csv_carry_a_missing_column_beside_the_value(visits):
    data = by_timepoint(json.loads(rows(visits, "json")))
    assert (data["m1"]["nrs"], data["m1"]["nrs_missing"]) == (None, "declined")
    assert (data["m1"]["pgic"], data["m1"]["pgic_missing"]) == (3, None)
    assert data["m1"]["satisfaction_missing"] == "not_asked"
    assert data["m1"]["opioid_mme_missing"] == "unknown"
    assert data["m3"]["visit_missing"] == "lost_to_follow_up"
    header = rows(visits, "csv").splitlines()[0].split(",")
    assert {"nrs_missing", "satisfaction_missing", "pgic_missing", "opioid_mme_missing",
            "visit_missing"} <= set(header)


def read_file(visits, fmt, **kwargs):
    path = exports.export_file("visits", visits, fmt)
    try:
        reader = pyreadstat.read_sav if fmt == "sav" else pyreadstat.read_dta
        return reader(path, **kwargs)
    finally:
        os.unlink(path)


def test_spss_holds_user_missing_values_with_labels_in_the_numeric_column(visits):
    frame, meta = read_file(visits, "sav", user_missing=True)
    m1 = frame[frame.timepoint == "m1"].iloc[0]
    assert m1.nrs == -2.0 and m1.satisfaction == -1.0 and m1.opioid_mme == -3.0 and m1.pgic == 3.0
    assert meta.missing_ranges["nrs"] == [{"lo": -5.0, "hi": -1.0}]
    assert meta.variable_value_labels["nrs"][-2.0] == "Asked but declined"
    assert meta.variable_value_labels["satisfaction"][-1.0] == "Not asked"
    assert meta.readstat_variable_types["nrs"] == "double"
    # Read as most users do: user-missing values are missing.
    plain, _ = read_file(visits, "sav")
    assert plain[plain.timepoint == "m1"].nrs.isna().all()


def test_stata_holds_extended_missing_values_with_labels(visits):
    frame, meta = read_file(visits, "dta", user_missing=True)
    m1 = frame[frame.timepoint == "m1"].iloc[0]
    assert (m1.nrs, m1.satisfaction, m1.opioid_mme) == ("b", "a", "c")
    assert m1.pgic == 3.0
    assert meta.variable_value_labels["nrs"]["b"] == "Asked but declined"
    assert meta.variable_value_labels["nrs"]["e"] == "Lost to follow-up"
    assert meta.missing_user_values["nrs"] == ["b"]  # Stata lists the letters present
    plain, _ = read_file(visits, "dta")
    assert plain[plain.timepoint == "m1"].nrs.isna().all()
    baseline = frame[frame.timepoint == "baseline"].iloc[0]
    assert baseline.nrs == 8.0


def test_the_reason_table_is_complete_and_the_redcap_setting_lists_it(db):
    assert list(missing.VALUE_REASONS) == ["not_asked", "declined", "unknown", "not_applicable",
                                           "lost_to_follow_up"]
    # A whole visit has the missed-visit reasons too (one list, issue 20's merged in).
    assert list(missing.REASONS)[5:] == ["unreachable", "too_ill", "logistics", "site",
                                         "disposition", "other"]
    assert [r.stata for r in missing.REASONS.values()] == list("abcdefghijk")
    assert missing.redcap_missing_data_codes().endswith("ENDED, Follow-up had ended (withdrawn, "
                                                        "deceased, transferred) | OTH, Other")
    assert missing.redcap_missing_data_codes().startswith("NASK, Not asked | ASKU, Asked but declined")
    assert missing.fhir_data_absent_reason("declined")["coding"][0]["code"] == "asked-declined"
    assert missing.fhir_data_absent_reason("") is None


def test_xlsx_has_the_missing_columns(visits):
    from openpyxl import load_workbook

    path = exports.export_file("visits", visits, "xlsx")
    try:
        sheet = load_workbook(path, read_only=True)["data"]
        header = [c.value for c in next(sheet.iter_rows(max_row=1))]
    finally:
        os.unlink(path)
    assert "nrs_missing" in header and "visit_missing" in header


def test_the_bundle_carries_the_reasons_and_round_trips(db, tmp_path):
    import io

    from django.core.management import call_command

    from tests.commands.test_export_registry import empty_the_registry, export, files

    call_command("seed_synthetic", "--patients", "12", "--seed", "5", "--quiet", stdout=io.StringIO())
    completed = Visit.objects.filter(status=VisitStatus.COMPLETED).exclude(timepoint="baseline")
    first, second = completed.order_by("pk")[:2]
    first.nrs, first.nrs_missing, first.pgic, first.pgic_missing = None, "declined", None, "not_asked"
    second.opioid_mme, second.opioid_mme_missing = None, "unknown"
    for visit in (first, second):
        record_save(visit, actor=system_user(), reason="test: reasons", validate=False)
    key = {first.pk: (first.patient.registry_id, first.timepoint),
           second.pk: (second.patient.registry_id, second.timepoint)}
    export(tmp_path / "first")
    written = files(tmp_path / "first")
    header = written["visits.csv"].split(b"\n")[0].decode()
    assert "nrs_missing,satisfaction_missing,pgic_missing,opioid_mme_missing" in header
    empty_the_registry()
    call_command("import_registry", str(tmp_path / "first"), "--quiet", stdout=io.StringIO())
    again = {(v.patient.registry_id, v.timepoint): v for v in Visit.objects.select_related("patient")}
    back = again[key[first.pk]]
    assert (back.nrs, back.nrs_missing, back.pgic, back.pgic_missing) == (None, "declined", None,
                                                                          "not_asked")
    assert again[key[second.pk]].opioid_mme_missing == "unknown"
    export(tmp_path / "second")
    assert files(tmp_path / "second") == written

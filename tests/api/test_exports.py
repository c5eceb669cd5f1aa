"""/api/v1/exports/: roles, formats (read back), de-identification, logging, query counts."""

import csv
import datetime
import io
import json

import pytest
from simple_history.utils import bulk_create_with_history

from registry.models import AeCategory, Etiology, ExportLog, Therapy, Visit, VisitStatus
from registry.services.audit import system_user
from registry.services.exports import VISIT_COLUMNS

pytestmark = pytest.mark.django_db

DATASETS = ["visits", "adverse-events"]


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def csv_rows(response):
    return list(csv.DictReader(io.StringIO(body(response).decode())))


def read_stat(response, suffix, tmp_path):
    import pyreadstat

    path = tmp_path / f"export.{suffix}"
    path.write_bytes(body(response))
    reader = pyreadstat.read_sav if suffix == "sav" else pyreadstat.read_dta
    return reader(str(path))


@pytest.mark.parametrize("dataset", DATASETS)
def test_exports_refuse_no_token_a_wrong_token_and_an_outsider(client_for, cohort, outsider, dataset):
    url = f"/api/v1/exports/{dataset}/"
    assert client_for().get(url).status_code == 401
    assert client_for(key="F" * 32).get(url).status_code == 401
    assert client_for(outsider).get(url).status_code == 403
    assert ExportLog.objects.count() == 0


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize(("role", "sites"), [("nurse", {"AAA"}), ("nurse_b", {"BBB"}),
                                             ("investigator", {"AAA"}), ("data_manager", {"AAA", "BBB"})])
def test_each_role_exports_only_the_sites_it_sees(client_for, cohort, request, dataset, role, sites):
    response = client_for(request.getfixturevalue(role)).get(f"/api/v1/exports/{dataset}/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert {row["site"] for row in csv_rows(response)} == sites


def test_the_visit_csv_joins_patient_and_implant_and_derives_outcomes(client_for, cohort, nurse):
    response = client_for(nurse).get("/api/v1/exports/visits/?timepoint=m3,baseline&status=completed")
    rows = {(r["registry_id"], r["timepoint"]): r for r in csv_rows(response)}
    m3 = rows[("AAA-0001", "m3")]
    assert list(m3) == [c.name for c in VISIT_COLUMNS]
    assert m3 == m3 | {"site": "AAA", "sex": "F", "age_at_implant": "45", "etiology": "postamputation",
                       "diagnosis": "rlp_plp", "therapy": "PNS", "implant_ref": "AAA-0001-I1",
                       "status": "completed", "days_from_implant": "93", "nrs": "3",
                       "nrs_baseline": "8", "nrs_reduction_pct": "62.5", "responder": "yes",
                       "satisfaction": "5", "pgic": "2", "would_choose_again": "yes",
                       "opioid_mme": "12.5", "stimulation_use": "daily", "nrs_residual_limb": "4",
                       "nrs_phantom_limb": "2"}
    baseline = rows[("AAA-0001", "baseline")]
    # Baseline has no implant of its own: dated from the patient's first implant.
    assert (baseline["implant_ref"], baseline["therapy"], baseline["days_from_implant"]) == (
        "AAA-0001-I1", "PNS", "-46")
    assert baseline["nrs_reduction_pct"] == "" and baseline["responder"] == ""
    assert rows[("AAA-0002", "baseline")]["age_at_implant"] == "90+"


def test_a_non_responder_is_no(client_for, cohort, nurse):
    rows = csv_rows(client_for(nurse).get("/api/v1/exports/visits/?timepoint=m1&status=completed"))
    assert [(r["registry_id"], r["nrs_reduction_pct"], r["responder"]) for r in rows] == [
        ("AAA-0002", "16.7", "no")]


def test_exports_are_de_identified_by_default(client_for, cohort, data_manager):
    client = client_for(data_manager)
    for dataset in DATASETS:
        for fmt in ("csv", "json"):
            text = body(client.get(f"/api/v1/exports/{dataset}/?format={fmt}")).decode()
            for secret in ("SECRET-NOTE", "SECRET-DESCRIPTION", "2020-", "1975", "1929"):
                assert secret not in text, (dataset, fmt, secret)


def test_a_data_manager_may_ask_for_real_dates(client_for, cohort, data_manager):
    response = client_for(data_manager).get("/api/v1/exports/visits/?dates=iso&timepoint=m3"
                                            "&status=completed&site=AAA")
    (row,) = csv_rows(response)
    assert (row["visit_date"], row["implant_date"]) == ("2020-06-02", "2020-03-01")
    assert ExportLog.objects.get().dates == "iso"
    events = csv_rows(client_for(data_manager).get("/api/v1/exports/adverse-events/?dates=iso&site=AAA"))
    assert (events[0]["onset_date"], events[0]["resolved_on"]) == ("2020-03-20", "2020-04-10")


@pytest.mark.parametrize("role", ["nurse", "investigator"])
def test_others_asking_for_real_dates_get_403_naming_dates(client_for, cohort, request, role):
    response = client_for(request.getfixturevalue(role)).get("/api/v1/exports/visits/?dates=iso")
    assert response.status_code == 403
    assert "dates" in response.json()
    assert ExportLog.objects.count() == 0


@pytest.mark.parametrize(("query", "param"), [
    ("format=pdf", "format"), ("dates=real", "dates"), ("therapy=XYZ", "therapy"),
    ("date_done_after=2020-13-01", "date_done_after"), ("updated_since=tomorrow", "updated_since"),
    ("site=ZZZ", "site"),
])
def test_a_bad_export_parameter_is_a_400_naming_it(client_for, cohort, investigator, query, param):
    response = client_for(investigator).get(f"/api/v1/exports/visits/?{query}")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert param in response.json()


def test_the_event_export_carries_the_iso_class_and_days(client_for, cohort, data_manager):
    rows = {r["registry_id"]: r for r in csv_rows(
        client_for(data_manager).get("/api/v1/exports/adverse-events/"))}
    assert rows["AAA-0001"] | {"iso_class": "ADE", "days_from_implant": "19", "days_to_resolution": "21",
                               "serious": "no", "category": "infection_superficial"} == rows["AAA-0001"]
    assert rows["BBB-0001"]["iso_class"] == "USADE"
    assert rows["BBB-0001"]["days_to_resolution"] == ""
    filtered = csv_rows(client_for(data_manager).get("/api/v1/exports/adverse-events/?iso_class=USADE"))
    assert [r["registry_id"] for r in filtered] == ["BBB-0001"]


def test_json_is_typed(client_for, cohort, nurse):
    rows = json.loads(body(client_for(nurse).get(
        "/api/v1/exports/visits/?format=json&status=completed&timepoint=m3,baseline")))
    m3 = next(r for r in rows if r["timepoint"] == "m3")
    assert (m3["nrs"], m3["nrs_reduction_pct"], m3["responder"], m3["opioid_mme"]) == (3, 62.5, True, 12.5)
    assert next(r for r in rows if r["registry_id"] == "AAA-0002")["age_at_implant"] == "90+"


def test_every_export_is_logged_with_filters_and_rows(client_for, cohort, investigator):
    rows = csv_rows(client_for(investigator).get("/api/v1/exports/visits/?therapy=PNS&format=csv"))
    log = ExportLog.objects.get()
    assert (log.user, log.dataset, log.format, log.dates, log.channel) == (
        investigator, "visits", "csv", "relative", "api")
    assert log.filters == {"therapy": "PNS"}
    assert log.rows == len(rows) > 0
    assert log.finished_at is not None


def test_xlsx_reads_back_with_openpyxl(client_for, cohort, nurse, tmp_path):
    from openpyxl import load_workbook

    response = client_for(nurse).get("/api/v1/exports/visits/?format=xlsx&status=completed")
    assert response["Content-Disposition"].endswith('.xlsx"')
    path = tmp_path / "v.xlsx"
    path.write_bytes(body(response))
    book = load_workbook(path, read_only=True)
    data = list(book["data"].values)
    header = data[0]
    # Read-only mode drops trailing empty cells.
    rows = [dict(zip(header, list(r) + [None] * (len(header) - len(r)), strict=True)) for r in data[1:]]
    assert list(header) == [c.name for c in VISIT_COLUMNS]
    m3 = next(r for r in rows if r["timepoint"] == "m3")
    assert (m3["nrs"], m3["nrs_reduction_pct"], m3["responder"]) == (3, 62.5, True)
    labels = {r[0]: r[1] for r in list(book["variables"].values)[1:]}
    assert labels["pgic"] == "PGIC (1-7)"
    assert ExportLog.objects.get().rows == len(rows)


@pytest.mark.parametrize("suffix", ["sav", "dta"])
def test_spss_and_stata_files_carry_variable_and_value_labels(client_for, cohort, nurse, tmp_path,
                                                              suffix):
    response = client_for(nurse).get(f"/api/v1/exports/visits/?format={suffix}&status=completed")
    assert response.status_code == 200
    frame, meta = read_stat(response, suffix, tmp_path)
    assert list(frame.columns) == [c.name for c in VISIT_COLUMNS]
    labels = dict(zip(meta.column_names, meta.column_labels, strict=True))
    assert labels["nrs_reduction_pct"] == "NRS reduction from baseline (%)"
    assert meta.variable_value_labels["pgic"][2] == "2 - Much improved"
    assert meta.variable_value_labels["responder"] == {0: "no", 1: "yes"}
    assert meta.variable_value_labels["age_at_implant"] == {90: "90+"}
    m3 = frame[(frame.timepoint == "m3")].iloc[0]
    assert (m3.nrs, m3.nrs_reduction_pct, m3.responder) == (3, 62.5, 1)
    assert set(frame[frame.registry_id == "AAA-0002"].age_at_implant) == {90}
    etiology = meta.variable_value_labels["etiology"]
    if suffix == "sav":
        # SPSS keeps the import format's codes and labels them.
        assert m3.etiology == "postamputation"
        assert etiology["postamputation"] == "Post-amputation pain"
    else:
        # Stata labels only numbers: codes are numbered in the code list's order.
        assert etiology[m3.etiology] == "Post-amputation pain"
        assert etiology == {i: label for i, (_, label) in enumerate(Etiology.choices, 1)}
        assert meta.variable_value_labels["therapy"][frame.therapy.iloc[0]] in dict(Therapy.choices).values()


@pytest.mark.parametrize("suffix", ["sav", "dta"])
def test_the_event_file_reads_back(client_for, cohort, data_manager, tmp_path, suffix):
    frame, meta = read_stat(client_for(data_manager).get(
        f"/api/v1/exports/adverse-events/?format={suffix}"), suffix, tmp_path)
    if suffix == "sav":
        assert sorted(frame.iso_class) == ["ADE", "USADE"]
    else:
        assert sorted(frame.iso_class.map(meta.variable_value_labels["iso_class"])) == [
            "Adverse device effect", "Unanticipated serious adverse device effect"]
    assert meta.variable_value_labels["serious"] == {0: "no", 1: "yes"}
    if suffix == "dta":
        category = meta.variable_value_labels["category"]
        assert set(frame.category.map(category)) <= set(dict(AeCategory.choices).values())


def _visits(n):
    from registry.models import Site
    from tests.factories import make_implant, make_patient

    patient = make_patient(Site.objects.get(code="AAA"), birth_year=1960)
    implant = make_implant(patient, implant_date=datetime.date(2020, 3, 1))
    Visit.objects.filter(patient=patient).delete()  # the schedule: keep the count exact
    bulk_create_with_history(
        [Visit(patient=patient, implant=implant, timepoint="unscheduled", status=VisitStatus.COMPLETED,
               date_done=datetime.date(2021, 1, 1), nrs=i % 11) for i in range(n)],
        Visit, default_user=system_user(), default_change_reason="test", batch_size=500)
    return patient


@pytest.mark.parametrize("fmt", ["csv", "json"])
@pytest.mark.parametrize("rows", [10, 1000])
def test_streaming_exports_issue_a_constant_number_of_queries(client_for, site_a, data_manager, fmt,
                                                              rows, django_assert_max_num_queries):
    patient = _visits(rows)
    client = client_for(data_manager)
    client.get("/api/v1/sites/")  # the token's first use writes last_used_at
    with django_assert_max_num_queries(8):
        response = client.get(f"/api/v1/exports/visits/?format={fmt}&site=AAA")
        content = body(response)
    lines = content.decode().strip().splitlines()
    assert len(lines) == rows + (1 if fmt == "csv" else 2)
    assert patient.registry_id in lines[1]

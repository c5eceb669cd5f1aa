"""One definition per dataset column: a column declared once reaches every channel.

A throw-away column added to the visits dataset at run time shows up in the CSV, in
the SPSS and Stata labels, in the codebook and in REDCap's data dictionary and records;
`days_from_implant` is the same number in the REST resource, the export and REDCap.
"""

import csv
import io
import json

import pytest
from django.db.models import F

from registry.services import datasets
from registry.services.datasets import Column, Redcap

pytestmark = pytest.mark.django_db


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


@pytest.fixture
def throwaway_column(monkeypatch):
    """`nrs_doubled` (int, NRS x 2) and `therapy_again` (coded, the implant's therapy) on the
    visits dataset, on the REDCap visit form."""
    doubled = Column("nrs_doubled", "NRS doubled (test column)", "int", lambda: F("nrs") * 2,
                     redcap=Redcap("visit", note="a throw-away column"))
    coded = Column("therapy_again", "Therapy again (test column)", "code", "implant__therapy",
                   codes="therapy", redcap=Redcap("visit"))
    monkeypatch.setattr(datasets.VISITS, "columns", [*datasets.VISITS.columns, doubled, coded])
    return doubled


def test_a_column_declared_once_is_in_the_csv_with_its_values(client_for, cohort, nurse,
                                                                 throwaway_column):
    rows = list(csv.DictReader(io.StringIO(body(client_for(nurse).get(
        "/api/v1/exports/visits/?status=completed")).decode())))
    assert rows and all(r["nrs_doubled"] == str(int(r["nrs"]) * 2) for r in rows if r["nrs"])
    assert {r["therapy_again"] for r in rows if r["timepoint"] == "m3"} <= {"PNS", "SCS", "DRG", "CES"}


@pytest.mark.parametrize("suffix", ["sav", "dta"])
def test_a_column_declared_once_has_its_labels_in_spss_and_stata(client_for, cohort, nurse, tmp_path,
                                                                   suffix, throwaway_column):
    import pyreadstat

    path = tmp_path / f"visits.{suffix}"
    path.write_bytes(body(client_for(nurse).get(f"/api/v1/exports/visits/?format={suffix}")))
    frame, meta = (pyreadstat.read_sav if suffix == "sav" else pyreadstat.read_dta)(str(path))
    labels = dict(zip(meta.column_names, meta.column_labels, strict=True))
    assert labels["nrs_doubled"] == "NRS doubled (test column)"
    therapy = meta.variable_value_labels["therapy_again"]
    if suffix == "dta":  # Stata: the frozen numbers, labelled
        assert therapy == {1: "Spinal cord stimulation", 2: "Dorsal root ganglion stimulation",
                           3: "Peripheral nerve stimulation", 4: "Cauda equina stimulation"}
    else:
        assert therapy["PNS"] == "Peripheral nerve stimulation"


def test_a_column_declared_once_is_in_the_codebook_and_the_xlsx_variables(client_for, cohort, nurse,
                                                                            tmp_path, throwaway_column):
    book = client_for(nurse).get("/api/v1/exports/visits/codebook/").json()
    entry = {e["variable"]: e for e in book}["therapy_again"]
    assert entry["redcap_form"] == "visit" and entry["numbering"].startswith("1 = SCS; 2 = DRG")
    from openpyxl import load_workbook

    path = tmp_path / "visits.xlsx"
    path.write_bytes(body(client_for(nurse).get("/api/v1/exports/visits/?format=xlsx")))
    variables = [row for row in load_workbook(path)["variables"].values]
    assert ("nrs_doubled", "NRS doubled (test column)") in {(r[0], r[1]) for r in variables}


def test_a_column_declared_once_is_in_redcap_metadata_and_records(client, cohort, nurse, throwaway_column):
    from registry.services.tokens import api_token_create

    token = api_token_create(user=nurse)
    metadata = json.loads(body(client.post("/redcap/api/", {"token": token, "content": "metadata",
                                                             "format": "json"})))
    by_name = {m["field_name"]: m for m in metadata}
    assert by_name["nrs_doubled"]["form_name"] == "visit"
    assert by_name["nrs_doubled"]["field_note"] == "a throw-away column"
    assert by_name["therapy_again"]["select_choices_or_calculations"].startswith("1, Spinal cord")
    records = json.loads(body(client.post("/redcap/api/", {"token": token, "content": "record",
                                                            "format": "json"})))
    done = [r for r in records if r["nrs"] != ""]
    assert done and all(r["nrs_doubled"] == str(int(r["nrs"]) * 2) for r in done)


def test_codebook_lists_every_column_in_file_order_and_refuses_an_unknown_dates_mode(
        client_for, cohort, investigator):
    client = client_for(investigator)
    book = client.get("/api/v1/exports/adverse-events/codebook/").json()
    assert [e["variable"] for e in book] == [c.name for c in datasets.EVENTS.columns_for()]
    assert {e["variable"]: e for e in book}["category"]["redcap_field"] == "ae_category"
    refused = client.get("/api/v1/exports/visits/codebook/?dates=soon")
    assert refused.status_code == 400 and "soon" in refused.json()["dates"][0]


def test_days_from_implant_is_the_same_in_the_api_the_export_and_redcap(client, client_for, cohort, nurse):
    from registry.services.tokens import api_token_create

    api = client_for(nurse)
    resources = {(v["registry_id"], v["timepoint"]): v["days_from_implant"]
                 for v in api.get("/api/v1/visits/?page_size=100").json()["results"]}
    exported = {(r["registry_id"], r["timepoint"]): r["days_from_implant"]
                for r in csv.DictReader(io.StringIO(body(api.get("/api/v1/exports/visits/")).decode()))}
    assert resources.keys() == exported.keys()
    for key, days in resources.items():
        assert exported[key] == ("" if days is None else str(days)), key
    # A baseline has no implant of its own: it counts from the first implant (negative).
    baselines = [days for (_, timepoint), days in resources.items() if timepoint == "baseline"]
    assert baselines and all(days is not None and days < 0 for days in baselines)
    token = api_token_create(user=nurse)
    records = json.loads(body(client.post("/redcap/api/", {"token": token, "content": "record",
                                                            "format": "json"})))
    assert any(r["redcap_event_name"] == "baseline_arm_1" for r in records)
    for r in records:
        if r["redcap_event_name"] == "baseline_arm_1":
            assert r["days_from_implant"] == str(resources[(r["record_id"], "baseline")])


def test_a_column_must_name_a_known_kind_and_a_code_list():
    with pytest.raises(ValueError, match="unknown kind"):
        Column("x", "x", "text", "nrs")
    with pytest.raises(ValueError, match="needs a code list"):
        Column("x", "x", "code", "status", codes="no_such_list")
    # A name the JSON export's SQL alias would cut (PostgreSQL: 63 bytes; "é" is two).
    Column("n" * 63, "x", "int", "nrs")
    with pytest.raises(ValueError, match="at most 63 bytes"):
        Column("é" * 32, "x", "int", "nrs")

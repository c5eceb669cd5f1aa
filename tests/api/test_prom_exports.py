"""PROM scores in the visits dataset (computed on read, value set chosen per request and
stated), and the long item-level export /api/v1/exports/prom-answers/."""

import csv
import io
import json

import pytest

from registry.models import ExportLog
from registry.services.proms.answers import prom_answers_record

pytestmark = pytest.mark.django_db

EQ5D = {"mo": 2, "sc": 1, "ua": 3, "pd": 4, "ad": 2, "vas": 45}
ODI = {f"s{n}": n % 6 for n in range(1, 10)}  # 9 sections: 1+2+3+4+5+0+1+2+3 = 21 / 45


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def csv_rows(response):
    return list(csv.DictReader(io.StringIO(body(response).decode())))


@pytest.fixture
def proms(cohort, nurse, nurse_b):
    base = cohort["a1_base"]
    prom_answers_record(visit=base, instrument="eq5d5l", answers=EQ5D, actor=nurse)
    prom_answers_record(visit=base, instrument="odi", answers=ODI, actor=nurse)
    prom_answers_record(visit=base, instrument="hads", answers={f"q{n}": 2 for n in range(1, 14)},
                        actor=nurse)
    b_base = cohort["b1"].visits.get(timepoint="baseline")
    prom_answers_record(visit=b_base, instrument="eq5d5l", answers={d: 5 for d in "mo sc ua pd ad".split()},
                        actor=nurse_b)
    return cohort


def test_the_visits_export_has_the_scores_by_the_value_set_asked(client_for, proms, data_manager):
    response = client_for(data_manager).get("/api/v1/exports/visits/?value_set=US&timepoint=baseline")
    assert response.status_code == 200 and response["X-EQ5D-Value-Set"] == "US"
    rows = {r["registry_id"]: r for r in csv_rows(response)}
    a1 = rows[proms["a1"].registry_id]
    # US: 1 - 0.096 - 0.101 - 0.318 - 0.057
    assert a1["eq5d5l_value_set"] == "US" and float(a1["eq5d5l_index"]) == 0.428
    assert a1["eq5d5l_vas"] == "45" and float(a1["odi_score"]) == 46.7
    assert float(a1["hads_anxiety"]) == 14 and float(a1["hads_depression"]) == 14  # q14 prorated
    assert a1["pcs_total"] == ""
    assert float(rows[proms["b1"].registry_id]["eq5d5l_index"]) == -0.573
    assert rows[proms["a2"].registry_id]["eq5d5l_index"] == ""
    nl = csv_rows(client_for(data_manager).get("/api/v1/exports/visits/?value_set=nl&timepoint=baseline"))
    assert {r["eq5d5l_value_set"] for r in nl} == {"NL"}
    assert ExportLog.objects.filter(dataset="visits").latest("pk").filters["value_set"] == "nl"


def test_the_default_value_set_follows_the_sites_country(client_for, proms, nurse, data_manager):
    assert client_for(nurse).get("/api/v1/exports/visits/")["X-EQ5D-Value-Set"] == "NL"  # site AAA: NL
    # The data manager sees NL and US sites: England, stated.
    assert client_for(data_manager).get("/api/v1/exports/visits/")["X-EQ5D-Value-Set"] == "ENG"


def test_an_unknown_value_set_is_a_400_naming_it(client_for, proms, nurse):
    response = client_for(nurse).get("/api/v1/exports/visits/?value_set=FR")
    assert response.status_code == 400
    assert "Unknown EQ-5D-5L value set 'FR'" in response.json()["value_set"][0]
    assert client_for(nurse).get("/api/v1/exports/prom-answers/?value_set=x").status_code == 400


def test_json_types_scores_as_numbers(client_for, proms, nurse):
    rows = json.loads(body(client_for(nurse).get("/api/v1/exports/visits/?format=json&timepoint=baseline")))
    a1 = next(r for r in rows if r["registry_id"] == proms["a1"].registry_id)
    assert a1["eq5d5l_index"] == 0.401 and a1["eq5d5l_vas"] == 45 and a1["pcs_total"] is None


def test_spss_and_stata_carry_the_score_labels_and_the_value_set(client_for, proms, nurse, tmp_path):
    import pyreadstat

    for fmt, reader in (("sav", pyreadstat.read_sav), ("dta", pyreadstat.read_dta)):
        path = tmp_path / f"v.{fmt}"
        path.write_bytes(body(client_for(nurse).get(f"/api/v1/exports/visits/?format={fmt}&value_set=DE")))
        frame, meta = reader(str(path))
        labels = dict(zip(meta.column_names, meta.column_labels, strict=True))
        assert labels["odi_score"].startswith("ODI (%), ODI 2.1a")
        assert "value set" in labels["eq5d5l_value_set"]
        value_labels = meta.variable_value_labels["eq5d5l_value_set"]
        assert "Germany (Ludwig et al. 2018)" in value_labels.values()
        assert -0.5 < frame["eq5d5l_index"].dropna().min() < 0.5


def test_the_codebook_lists_the_scores_with_their_algorithm(client_for, proms, nurse):
    book = {r["variable"]: r for r in client_for(nurse).get("/api/v1/exports/visits/codebook/").json()}
    assert "algorithm registry-proms-1" in book["eq5d5l_index"]["label"]
    assert "NL = Netherlands (Versteegh et al. 2016)" in book["eq5d5l_value_set"]["values"]


def test_the_long_export_has_one_row_per_item_scoped_and_logged(client_for, proms, nurse, nurse_b):
    response = client_for(nurse).get("/api/v1/exports/prom-answers/")
    assert response.status_code == 200
    rows = csv_rows(response)
    assert list(rows[0]) == ["registry_id", "site", "timepoint", "instrument", "version", "item", "value",
                             "value_missing"]
    assert {r["site"] for r in rows} == {"AAA"} and len(rows) == 6 + 9 + 13
    mo = next(r for r in rows if r["instrument"] == "eq5d5l" and r["item"] == "mo")
    assert mo == {"registry_id": proms["a1"].registry_id, "site": "AAA", "timepoint": "baseline",
                  "instrument": "eq5d5l", "version": "EQ-5D-5L (EuroQol, 2011)", "item": "mo", "value": "2",
                  "value_missing": ""}
    assert len(csv_rows(client_for(nurse_b).get("/api/v1/exports/prom-answers/"))) == 5
    only = csv_rows(client_for(nurse).get("/api/v1/exports/prom-answers/?instrument=odi"))
    assert {r["instrument"] for r in only} == {"odi"}
    assert client_for(nurse).get("/api/v1/exports/prom-answers/?instrument=sf36").status_code == 400
    assert ExportLog.objects.filter(dataset="prom-answers").count() == 3


def test_the_long_export_has_real_dates_for_data_managers_only(client_for, proms, data_manager,
                                                               investigator):
    rows = csv_rows(client_for(data_manager).get("/api/v1/exports/prom-answers/?dates=iso"))
    assert rows[0]["visit_date"]
    assert client_for(investigator).get("/api/v1/exports/prom-answers/?dates=iso").status_code == 403
    rows = csv_rows(client_for(investigator).get("/api/v1/exports/prom-answers/?format=csv"))
    assert "visit_date" not in rows[0]

"""The EQ-5D-5L value set: by default the one of the sites' country, and stated in every
output (codebook, xlsx variables sheet, SPSS and Stata variable labels, header, rows)."""

import io

import pytest

from registry.models import Visit
from registry.services.proms.answers import prom_answers_record
from registry.services.proms.instruments import VALUE_SETS
from tests.proms.test_outcomes import client_for  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db
STATE = {"mo": 2, "sc": 1, "ua": 3, "pd": 4, "ad": 2}


@pytest.fixture
def answered(patient_a, nurse):
    from tests.factories import make_visit

    visit = make_visit(patient_a, actor=nurse)
    prom_answers_record(visit=visit, instrument="eq5d5l", answers={**STATE, "vas": 50}, actor=nurse)
    return visit


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_the_codebook_states_the_default_and_the_chosen_value_set(client_for, answered, nurse):  # noqa: F811
    book = {r["variable"]: r for r in client_for(nurse).get("/api/v1/exports/visits/codebook/").json()}
    # Site AAA is Dutch.
    assert book["eq5d5l_index"]["label"].startswith("Value set NL: ")
    label = book["eq5d5l_index"]["label"]
    assert "Versteegh" in label and "registry-proms-1" in label
    us = client_for(nurse).get("/api/v1/exports/visits/codebook/?value_set=US").json()
    us = {r["variable"]: r for r in us}
    assert us["eq5d5l_index"]["label"].startswith("Value set US: ")
    assert client_for(nurse).get("/api/v1/exports/visits/codebook/?value_set=XX").status_code == 400


def test_files_state_the_value_set_in_their_labels(client_for, answered, nurse, tmp_path):  # noqa: F811
    import pyreadstat
    from openpyxl import load_workbook

    client = client_for(nurse)
    workbook = load_workbook(io.BytesIO(body(client.get("/api/v1/exports/visits/?format=xlsx"))))
    variables = {row[0]: row[1] for row in workbook["variables"].iter_rows(values_only=True)}
    assert variables["eq5d5l_index"].startswith("Value set NL: ")
    data = list(workbook["data"].iter_rows(values_only=True))
    index = data[0].index("eq5d5l_index")
    assert data[1][index] == VALUE_SETS["NL"].index(STATE)
    for fmt, reader in (("sav", pyreadstat.read_sav), ("dta", pyreadstat.read_dta)):
        path = tmp_path / f"v.{fmt}"
        response = client.get(f"/api/v1/exports/visits/?format={fmt}&value_set=BE")
        assert response["X-EQ5D-Value-Set"] == "BE"
        path.write_bytes(body(response))
        frame, meta = reader(str(path))
        labels = dict(zip(meta.column_names, meta.column_labels, strict=True))
        assert labels["eq5d5l_index"].startswith("Value set BE: "), fmt
        assert frame["eq5d5l_index"].dropna().iloc[0] == pytest.approx(VALUE_SETS["BE"].index(STATE))


def test_the_admin_visit_shows_the_sites_value_set(client, answered, nurse):
    client.force_login(nurse)
    page = client.get(f"/admin/registry/visit/{answered.pk}/change/").content.decode()
    assert "NL" in page and str(VALUE_SETS["NL"].index(STATE)) in page
    assert Visit.objects.get(pk=answered.pk).patient.site.country == "NL"

"""Every export channel says who entered each visit's answers (`entered_by`): the REST
exports in CSV, JSON, xlsx, SPSS and Stata, REDCap records, FHIR Observations, and the
bundle (export, then import keeps it)."""

import csv
import io
import json

import pytest
from rest_framework.test import APIClient

from registry.models import EnteredBy, EproLink, Patient, Visit
from registry.services import bundles, epro, redcap
from registry.services.audit import system_user
from registry.services.imports import bundle_import
from registry.services.tokens import api_token_create
from tests.epro.conftest import answers, open_m3
from tests.factories import make_visit


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


@pytest.fixture
def answered(site_a, nurse):
    """One patient: a baseline the nurse entered, an m3 she answered through her link."""
    patient, visit = open_m3(site_a)
    make_visit(patient, actor=nurse, date_done=patient.consent_date)
    link, _ = epro.link_create(visit=visit, channel=EproLink.Channel.PRINTED, actor=nurse)
    epro.answers_submit(link=link, data=answers(visit))
    return patient


def api(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_create(user=user, label='test')}")
    return client


def by_timepoint(rows, value=lambda r: r["entered_by"]):
    return {r["timepoint"]: value(r) for r in rows if r["timepoint"] in ("baseline", "m3")}


EXPECTED = {"baseline": EnteredBy.NURSE, "m3": EnteredBy.PATIENT}


def test_csv_and_json(answered, data_manager):
    text = body(api(data_manager).get("/api/v1/exports/visits/?format=csv&status=completed")).decode()
    assert by_timepoint(csv.DictReader(io.StringIO(text))) == EXPECTED
    rows = json.loads(body(api(data_manager).get("/api/v1/exports/visits/?format=json&status=completed")))
    assert by_timepoint(rows) == EXPECTED


def test_xlsx(answered, data_manager, tmp_path):
    from openpyxl import load_workbook

    path = tmp_path / "v.xlsx"
    path.write_bytes(body(api(data_manager).get("/api/v1/exports/visits/?format=xlsx&status=completed")))
    sheet = load_workbook(path, read_only=True).worksheets[0]
    header, *rows = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert by_timepoint([dict(zip(header, r, strict=True)) for r in rows]) == EXPECTED


@pytest.mark.parametrize("suffix", ["sav", "dta"])
def test_spss_and_stata_with_value_labels(answered, data_manager, tmp_path, suffix):
    import pyreadstat

    path = tmp_path / f"v.{suffix}"
    path.write_bytes(body(api(data_manager).get(f"/api/v1/exports/visits/?format={suffix}&status=completed")))
    reader = pyreadstat.read_sav if suffix == "sav" else pyreadstat.read_dta
    frame, meta = reader(str(path))
    labels = meta.variable_value_labels["entered_by"]
    shown = {row["timepoint"]: labels.get(row["entered_by"], row["entered_by"])
             for row in frame.to_dict("records") if row["timepoint"] in ("baseline", "m3")}
    assert shown == {"baseline": EnteredBy.NURSE.label, "m3": EnteredBy.PATIENT.label}


def test_redcap_records(answered, client, nurse):
    token = api_token_create(user=nurse, label="redcap")
    response = client.post("/redcap/api/", {"token": token, "content": "record", "format": "json"})
    assert response.status_code == 200, body(response)[:500]
    rows = [r for r in json.loads(body(response)) if r.get("entered_by")]
    events = {r["redcap_event_name"]: r["entered_by"] for r in rows}
    field = redcap.FIELD_BY_NAME["entered_by"]
    assert events["baseline_arm_1"] == field.raw(EnteredBy.NURSE)
    assert events["m3_arm_1"] == field.raw(EnteredBy.PATIENT)


def test_fhir_observations(answered, client, nurse):
    token = api_token_create(user=nurse, label="fhir")
    m3 = Visit.objects.get(patient=answered, timepoint="m3")
    baseline = Visit.objects.get(patient=answered, timepoint="baseline")

    def observation(visit):
        response = client.get(f"/fhir/Observation/visit-{visit.pk}-nrs", HTTP_AUTHORIZATION=f"Bearer {token}")
        assert response.status_code == 200
        resource = json.loads(body(response))
        from fhir.resources.observation import Observation

        Observation.model_validate(resource)
        return resource

    def entered_by(resource):
        return next(e["valueCode"] for e in resource["extension"] if e["url"].endswith(":entered-by"))

    mine = observation(m3)
    assert entered_by(mine) == "patient"
    assert mine["performer"] == [{"reference": f"Patient/{answered.registry_id}"}]
    nurse_entered = observation(baseline)
    assert entered_by(nurse_entered) == "nurse" and "performer" not in nurse_entered


def test_the_bundle_writes_it_and_its_import_keeps_it(answered, tmp_path):
    bundles.bundle_export(target=tmp_path / "out", actor=system_user())
    rows = list(csv.DictReader(io.StringIO((tmp_path / "out" / "visits.csv").read_text(encoding="utf-8"))))
    assert by_timepoint(rows) == EXPECTED
    # The same bundle under another registry id: imported with its sources, not "import".
    folder = tmp_path / "in"
    folder.mkdir()
    for path in (tmp_path / "out").iterdir():
        (folder / path.name).write_text(path.read_text(encoding="utf-8").replace(
            answered.registry_id, "AAA-0900"), encoding="utf-8")
    report = bundle_import(source=folder, actor=system_user(), reason="test")
    assert not report.errors, report.errors
    copy = Patient.objects.get(registry_id="AAA-0900")
    assert dict(Visit.objects.filter(patient=copy, status="completed")
                .values_list("timepoint", "entered_by")) == EXPECTED
    # A bundle without the column (another system's) is marked as imported.
    other = tmp_path / "plain"
    other.mkdir()
    for path in folder.iterdir():
        text = path.read_text(encoding="utf-8").replace("AAA-0900", "AAA-0901")
        if path.name == "visits.csv":
            lines = list(csv.reader(io.StringIO(text)))
            keep = [i for i, name in enumerate(lines[0]) if name != "entered_by"]
            out = io.StringIO()
            csv.writer(out, lineterminator="\n").writerows([[r[i] for i in keep] for r in lines])
            text = out.getvalue()
        (other / path.name).write_text(text, encoding="utf-8")
    report = bundle_import(source=other, actor=system_user(), reason="test")
    assert not report.errors, report.errors
    assert set(Visit.objects.filter(patient__registry_id="AAA-0901", status="completed")
               .values_list("entered_by", flat=True)) == {EnteredBy.IMPORT}

"""FHIR dates: real for data managers and nurses, shifted per patient and labelled
PSEUDED for investigators, who may not search on `date`."""

import datetime
import json

import pytest

from registry.models import ExportLog
from registry.services import deid, fhir
from registry.services.tokens import api_token_create
from tests.interop.test_fhir import get, validate

pytestmark = pytest.mark.django_db

PSEUDED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "PSEUDED",
           "display": "pseudonymized"}
DATED_TYPES = ["ResearchSubject", "Procedure", "Observation", "AdverseEvent"]


@pytest.fixture
def token_inv(investigator):
    return api_token_create(user=investigator, label="fhir investigator")


def subject_of(resource) -> str:
    if resource["resourceType"] == "ResearchSubject":
        return resource["id"]
    return resource["subject"]["reference"].removeprefix("Patient/")


def dates_of(resource) -> list[str]:
    """Every calendar date a resource carries (meta.lastUpdated is a record time, not one)."""
    kind = resource["resourceType"]
    if kind == "ResearchSubject":
        return [v for v in (resource["period"].get("start"), resource["period"].get("end")) if v]
    field = {"Procedure": "performedDateTime", "Observation": "effectiveDateTime",
             "AdverseEvent": "date"}[kind]
    return [resource[field]]


def searchset(client, resource_type, token, **params):
    response = get(client, f"/fhir/{resource_type}", token, _count=1000, **params)
    assert response.status_code == 200, response.content
    bundle = json.loads(response.content)
    validate(bundle)
    return {e["resource"]["id"]: e["resource"] for e in bundle["entry"]}


@pytest.mark.parametrize("resource_type", DATED_TYPES)
def test_an_investigator_gets_each_date_shifted_by_the_patients_shift_and_labelled(
        client, cohort, token_inv, token_dm, resource_type):
    shifted = searchset(client, resource_type, token_inv)
    real = searchset(client, resource_type, token_dm)
    assert shifted and set(shifted) <= set(real)
    for id_, resource in shifted.items():
        days = deid.date_shift_days(subject_of(resource))
        expected = [(datetime.date.fromisoformat(d) - datetime.timedelta(days=days)).isoformat()
                    for d in dates_of(real[id_])]
        assert dates_of(resource) == expected, id_
        assert resource["meta"] == {"security": [PSEUDED]}  # no lastUpdated: a real record time
        assert "lastUpdated" in real[id_]["meta"]
        assert "security" not in real[id_]["meta"]
    assert any(deid.date_shift_days(subject_of(r)) for r in shifted.values())


def test_a_data_manager_gets_the_recorded_dates(client, cohort, token_dm):
    first = cohort["a"][0]
    subject = searchset(client, "ResearchSubject", token_dm)[first.registry_id]
    assert subject["period"] == {"start": first.consent_date.isoformat()}
    implant = first.implants.get()
    procedure = searchset(client, "Procedure", token_dm)[f"{implant.ref}-implant"]
    assert procedure["performedDateTime"] == implant.implant_date.isoformat()


def test_a_nurse_gets_the_recorded_dates_unlabelled(client, cohort, token_a):
    events = searchset(client, "AdverseEvent", token_a)
    assert {r["date"] for r in events.values()} == {"2020-03-20", "2020-05-02"}
    assert all("security" not in r["meta"] for r in events.values())


def test_intervals_within_a_patient_survive_the_shift(client, cohort, token_inv):
    first = cohort["a"][0]
    implant = first.implants.get()
    procedure = json.loads(get(client, f"/fhir/Procedure/{implant.ref}-implant", token_inv).content)
    observations = searchset(client, "Observation", token_inv, patient=first.registry_id)
    m3 = next(r for r in observations.values()
              if r["extension"][0]["valueCode"] == "m3" and r["id"].endswith("-nrs"))
    day = (datetime.date.fromisoformat(m3["effectiveDateTime"])
           - datetime.date.fromisoformat(procedure["performedDateTime"])).days
    assert day == (datetime.date(2020, 6, 1) - implant.implant_date).days


def test_resources_without_clinical_dates_are_the_same_for_every_role(client, cohort, token_inv,
                                                                      token_dm):
    # The same but for the record time (meta: label instead of lastUpdated) and the birth year.
    def without_meta(resource):
        return {k: v for k, v in resource.items() if k not in ("meta", "birthDate")}

    for resource_type in ("Device", "ResearchStudy", "Patient"):
        real = searchset(client, resource_type, token_dm)
        shown = searchset(client, resource_type, token_inv)
        assert shown and set(shown) <= set(real)
        for id_, resource in shown.items():
            assert without_meta(resource) == without_meta(real[id_])
            assert "lastUpdated" not in resource.get("meta", {})


def test_an_investigator_gets_no_birth_year(client, cohort, token_inv, token_dm):
    # With the API's age at consent (real dates) it would give the real consent year,
    # and so narrow the patient's secret date shift.
    younger = cohort["a"][1].registry_id
    assert searchset(client, "Patient", token_dm)[younger]["birthDate"] == "1970"
    read = json.loads(get(client, f"/fhir/Patient/{younger}", token_inv).content)
    assert "birthDate" not in read
    assert all("birthDate" not in p for p in searchset(client, "Patient", token_inv).values())
    exported = b"".join(get(client, "/fhir/$export/Patient.ndjson", token_inv).streaming_content)
    assert b"birthDate" not in exported


@pytest.mark.parametrize("resource_type", ["Procedure", "Observation", "AdverseEvent"])
def test_an_investigators_date_search_is_refused_with_an_operation_outcome(
        client, cohort, token_inv, resource_type):
    response = get(client, f"/fhir/{resource_type}", token_inv, date="ge2020-01-01")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/fhir+json"
    outcome = json.loads(response.content)
    validate(outcome)
    assert outcome["resourceType"] == "OperationOutcome"
    diagnostics = outcome["issue"][0]["diagnostics"]
    assert diagnostics.startswith("Search parameter 'date': date filters need real dates")
    assert ExportLog.objects.count() == 0


def test_a_data_managers_date_search_works(client, cohort, token_dm):
    events = searchset(client, "AdverseEvent", token_dm, date="2020-05-02")
    assert [r["date"] for r in events.values()] == ["2020-05-02"]


def test_an_investigator_may_search_on_last_updated(client, cohort, token_inv):
    found = searchset(client, "Observation", token_inv, _lastUpdated="ge2000-01-01T00:00:00Z")
    assert found and all(r["meta"]["security"] == [PSEUDED] for r in found.values())


def test_an_investigators_bulk_export_is_shifted_and_logged_as_shifted(client, cohort, token_inv,
                                                                       token_dm):
    lines = []
    for resource_type in fhir.EXPORT_TYPES:
        response = get(client, f"/fhir/$export/{resource_type}.ndjson", token_inv)
        lines += b"".join(response.streaming_content).decode().splitlines()
    resources = [json.loads(line) for line in lines]
    dated = [r for r in resources if r["resourceType"] in DATED_TYPES]
    assert dated
    for resource in resources:
        validate(resource)
    for resource in dated:
        assert resource["meta"]["security"] == [PSEUDED]
    logs = ExportLog.objects.filter(channel="fhir")
    assert set(logs.values_list("dates", flat=True)) == {"shifted"}
    assert logs.count() == len(fhir.EXPORT_TYPES)
    searchset(client, "Observation", token_dm)
    assert ExportLog.objects.filter(channel="fhir", dates="iso").count() == 1


def test_an_investigators_search_is_logged_as_shifted(client, cohort, token_inv):
    searchset(client, "Observation", token_inv)
    assert ExportLog.objects.get(channel="fhir").dates == "shifted"

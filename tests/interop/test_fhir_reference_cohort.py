"""The reference cohort (fixtures/seed_reference) as one FHIR Bundle, round-tripped
through the fhir.resources models, still tells the paper's story."""

import csv
import datetime
import json
import statistics
from pathlib import Path

import pytest
from fhir.resources.R4B.bundle import Bundle

from registry.models import Patient
from registry.services import fhir
from registry.services.audit import system_user
from registry.services.tokens import api_token_create
from tests.factories import make_event, make_implant, make_patient, make_site, make_visit
from tests.interop.test_fhir import validate_r4

BUNDLE = Path(__file__).resolve().parents[2] / "fixtures" / "seed_reference"


def _rows(name):
    with open(BUNDLE / name, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _day(text):
    return datetime.date.fromisoformat(text) if text else None


def _load_with_factories():
    """Fallback when the import service is not there: the same bundle through the factories."""
    site = make_site("RAD", name="Reference cohort")
    implants = {i["registry_id"]: i for i in _rows("implants.csv")}
    by_id = {}
    for row in _rows("patients.csv"):
        patient = make_patient(site, sex=row["sex"], birth_year=int(row["birth_year"]),
                               etiology=row["etiology"], diagnosis=row["diagnosis"],
                               consent_date=_day(row["consent_date"]), enrolment=row["enrolment"])
        assert patient.registry_id == row["registry_id"]
        i = implants[row["registry_id"]]
        by_id[row["registry_id"]] = (patient, make_implant(
            patient, therapy=i["therapy"], trial_start=_day(i["trial_start"]),
            trial_end=_day(i["trial_end"]), implant_date=_day(i["implant_date"])))
    for row in _rows("visits.csv"):
        patient, implant = by_id[row["registry_id"]]
        make_visit(patient, implant if row["implant_ref"] else None, timepoint=row["timepoint"],
                   date_done=_day(row["visit_date"]), nrs=int(row["nrs"]),
                   satisfaction=int(row["satisfaction"]) if row["satisfaction"] else None,
                   pgic=int(row["pgic"]) if row["pgic"] else None)
    for row in _rows("adverse_events.csv"):
        patient, implant = by_id[row["registry_id"]]
        make_event(patient, implant, onset_date=_day(row["onset_date"]), category=row["category"],
                   resolved_on=_day(row["resolved_on"]))


@pytest.fixture
def reference_cohort(db):
    try:
        from registry.services.imports import reference_cohort_load
    except ImportError:
        _load_with_factories()
    else:
        reference_cohort_load(actor=system_user())
    assert Patient.objects.filter(site__code="RAD").count() == 15


def test_the_reference_cohort_round_trips_as_a_fhir_bundle(client, reference_cohort, data_manager):
    token = api_token_create(user=data_manager)
    entries = []
    for resource_type in fhir.EXPORT_TYPES:
        response = client.get(f"/fhir/$export/{resource_type}.ndjson",
                              HTTP_AUTHORIZATION=f"Bearer {token}")
        for line in b"".join(response.streaming_content).decode().splitlines():
            resource = json.loads(line)
            entries.append({"fullUrl": f"urn:registry:{resource['resourceType']}/{resource['id']}",
                            "resource": resource})
    original = {"resourceType": "Bundle", "type": "collection", "entry": entries}
    validate_r4(original)  # R4 4.0.1 itself (fhirclient), then R4B's typed models
    parsed = Bundle.model_validate(original)
    round_tripped = json.loads(parsed.model_dump_json(exclude_none=True))
    assert round_tripped == original

    resources = [e["resource"] for e in round_tripped["entry"]]
    patients = [r for r in resources if r["resourceType"] == "Patient"]
    assert len(patients) == 15 and sum(p["gender"] == "male" for p in patients) == 8
    nrs = {}
    for r in resources:
        if r["resourceType"] == "Observation" and r["id"].endswith("-nrs"):
            timepoint = r["extension"][0]["valueCode"]
            nrs.setdefault(r["subject"]["reference"], []).append(
                (timepoint, r["effectiveDateTime"], r["valueQuantity"]["value"]))
    baseline = {p: next(v for t, _, v in rows if t == "baseline") for p, rows in nrs.items()}
    last = {p: max((d, v) for t, d, v in rows if t != "baseline")[1] for p, rows in nrs.items()}
    assert round(statistics.mean(baseline.values()), 1) == 8.1
    assert sum((baseline[p] - last[p]) / baseline[p] >= 0.5 for p in baseline) == 10
    [event] = [r for r in resources if r["resourceType"] == "AdverseEvent"]
    assert event["event"]["coding"][0]["code"] == "infection_superficial"
    assert event["suspectEntity"][1]["causality"][0]["assessment"]["coding"][0]["code"] == "probable"

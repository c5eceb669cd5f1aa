"""FHIR bulk Patient and AdverseEvent files written by PostgreSQL (issue 21): resource for
resource the Python builders' JSON text, for a nurse (her site), a data manager and an
investigator (shifted dates, no birth year, no death, the PSEUDED label), on the demo cohort
and on a cohort made to reach every branch of the builders; each line valid R4; a fixed
number of queries whatever the number of patients; Python on SQLite.
"""

import datetime
import json
from itertools import cycle

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from registry.models import (
    AdverseEvent,
    AeCategory,
    AeOutcome,
    Disposition,
    Patient,
    Relatedness,
    SeriousCriterion,
    Severity,
)
from registry.services import deid, fhir
from registry.services.audit import system_user
from registry.services.disposition import disposition_record
from registry.services.export_log import RowCounter
from registry.services.fhir import bulk
from registry.services.synthetic import synthetic_registry
from tests.conftest import needs_postgres
from tests.factories import copy_calls, make_event, make_implant, make_patient
from tests.interop.test_fhir import validate

pytestmark = pytest.mark.django_db

D = datetime.date
TODAY = datetime.date(2026, 12, 1)
TYPES = ("Patient", "AdverseEvent")


@pytest.fixture
def branches(site_a, site_b, nurse, nurse_b):
    """The demo cohort's generator, and patients and events reaching every branch: each sex,
    a birth year over 89, a withdrawn and a deceased patient; events of every category,
    seriousness criterion, severity, outcome and causality to device and procedure, with an
    implant, with a trial-only implant (no implant procedure), without an implant, with and
    without awareness date and IMDRF codes, anticipated yes / no / unknown."""
    synthetic_registry(patients=30, seed=2026, today=TODAY, actor=system_user())
    patients = [make_patient(site_a, actor=nurse, sex=sex, birth_year=year)
                for sex, year in (("M", 1929), ("F", 1937), ("X", 1990), ("U", 2001))]
    patients.append(make_patient(site_b, actor=nurse_b, sex="F", birth_year=1950,
                                 consent_status="withdrawn", withdrawal_date=D(2021, 3, 1)))
    dead = make_patient(site_a, actor=nurse, birth_year=1944)
    disposition_record(disposition=Disposition(
        patient=dead, status="deceased", date=D(2022, 6, 1), death_cause="cardiovascular",
        death_device_relatedness="not_related", death_procedure_relatedness="not_related"),
        actor=nurse, reason="death notified")
    patients.append(dead)
    implants = [make_implant(p, actor=nurse if p.site == site_a else nurse_b) for p in patients]
    trial_only = make_implant(patients[2], actor=nurse, implant_date=None, trial_success=False)
    suspects = cycle([*implants, trial_only, None])
    relatedness = list(Relatedness)
    outcomes = cycle(AeOutcome)
    severities = cycle(Severity)
    anticipated = cycle([True, False, None])
    serious = cycle([None, *SeriousCriterion])
    for i, category in enumerate(list(AeCategory) * 2):
        implant = next(suspects)
        patient = implant.patient if implant else patients[i % len(patients)]
        criterion = next(serious)
        outcome = next(outcomes)
        actor = nurse if patient.site == site_a else nurse_b
        make_event(patient, implant, actor=actor, category=category, onset_date=D(2021, 1, 1 + i),
                   awareness_date=D(2021, 2, 1 + i) if i % 2 else None,
                   serious=criterion is not None, serious_criterion=criterion or "",
                   severity=next(severities), outcome=outcome, anticipated=next(anticipated),
                   device_relatedness=relatedness[i % 4], procedure_relatedness=relatedness[(i // 4) % 4],
                   resolved_on=None if outcome in (AeOutcome.ONGOING, AeOutcome.UNKNOWN) else D(2021, 6, 1))
    # As older rows may hold them: no IMDRF codes (none proposed), no awareness date.
    some = AdverseEvent.objects.filter(patient__in=patients).order_by("pk").values_list("pk", flat=True)
    AdverseEvent.objects.filter(pk__in=list(some[:3])).update(
        imdrf_device_problem="", imdrf_clinical_signs="", imdrf_health_impact="", awareness_date=None)
    return patients



def _bulk(user, resource_type, sql, **params):
    found = fhir.fhir_search(user=user, resource_type=resource_type, params=params)
    counter = RowCounter()
    body = b"".join(found.ndjson(counter, sql=sql))
    return [json.loads(line) for line in body.splitlines()], counter


def _texts(resources):
    """Each resource as JSON text: tells 20 from 20.0 (== does not)."""
    return [json.dumps(r) for r in resources]


PARAMS = [{}, {"_lastUpdated": ["ge2000-01-01T00:00:00Z"]}, {"_lastUpdated": ["lt2000-01-01"]},
          {"patient": ["NOBODY"]}, {"seriousness": ["serious"]}, {"gender": ["female,other"]},
          {"_id": ["ae-1,ae-2"]}]


@needs_postgres()
@pytest.mark.parametrize("who", ["nurse", "data_manager", "investigator"])
@pytest.mark.parametrize("resource_type", TYPES)
def test_bulk_patients_and_events_are_the_python_paths_resources(branches, resource_type, who, request,
                                                                 monkeypatch):
    user = request.getfixturevalue(who)
    copies = copy_calls(monkeypatch)
    runs = 0
    for params in PARAMS:
        if ("seriousness" in params or "patient" in params) and resource_type == "Patient" or (
                "gender" in params and resource_type == "AdverseEvent"):
            continue  # not a search parameter of that type (ignored)
        slow, _ = _bulk(user, resource_type, False, **params)
        fast, counter = _bulk(user, resource_type, None, **params)
        assert _texts(fast) == _texts(slow), params
        assert counter.rows == len(fast)
        runs += 1
    assert len(copies) == runs  # the SQL path was taken each time
    everything, _ = _bulk(user, resource_type, None)
    assert len(everything) >= 5
    for resource in everything:
        validate(resource)


@needs_postgres()
def test_every_branch_is_reached_and_each_role_sees_what_it_may(branches, data_manager, investigator):
    events, _ = _bulk(data_manager, "AdverseEvent", None)
    mine = [e for e in events if e["subject"]["reference"] in {f"Patient/{p.registry_id}" for p in branches}]
    seriousness = {tuple(c["code"] for c in e["seriousness"]["coding"]) for e in mine}
    assert {("non-serious",), *(("serious", str(c)) for c in SeriousCriterion)} <= seriousness
    assert {e["outcome"]["coding"][0]["code"] for e in mine} == {
        "resolved", "resolvedWithSequelae", "ongoing", "fatal", "unknown"}
    assert {e["severity"]["coding"][0]["code"] for e in mine} == set(Severity)
    assert {e["event"]["coding"][0]["code"] for e in mine} == set(AeCategory)
    causality = {s["causality"][0]["assessment"]["coding"][0]["code"] for e in mine
                 for s in e.get("suspectEntity", [])}
    assert causality == set(Relatedness)
    assert {len(e.get("suspectEntity", [])) for e in mine} == {0, 1, 2}
    classes = {x["valueCode"] for e in mine for x in e["extension"] if x["url"].endswith("iso14155-class")}
    assert classes == {"AE", "ADE", "SAE", "SADE", "USADE"}
    assert any(len(e["extension"]) == 1 for e in mine) and any(len(e["extension"]) == 4 for e in mine)
    assert any(e["detected"] == e["date"] for e in mine) and any(e["detected"] != e["date"] for e in mine)

    shifted, _ = _bulk(investigator, "AdverseEvent", None)
    by_id = {e["id"]: e for e in shifted}
    compared = [e for e in mine if e["id"] in by_id]  # the investigator's sites' events
    assert len(compared) > 10
    for event in compared:
        seen = by_id[event["id"]]
        days = deid.date_shift_days(event["subject"]["reference"].removeprefix("Patient/"))
        assert seen["date"] == (D.fromisoformat(event["date"]) - datetime.timedelta(days=days)).isoformat()
        assert seen["meta"] == {"security": [fhir.PSEUDONYMIZED]} and "lastUpdated" in event["meta"]

    patients = {p["id"]: p for p in _bulk(data_manager, "Patient", None)[0]}
    old, female, other, unknown, withdrawn, dead = (patients[p.registry_id] for p in branches)
    assert "birthDate" not in old and female["birthDate"] == "1937"
    assert (other["gender"], unknown["gender"]) == ("other", "unknown")
    assert dead["deceasedDateTime"] == "2022-06-01" and "deceasedDateTime" not in withdrawn
    for patient in _bulk(investigator, "Patient", None)[0]:
        assert set(patient) == {"resourceType", "id", "meta", "identifier", "gender"}
        assert patient["meta"] == {"security": [fhir.PSEUDONYMIZED]}


@needs_postgres()
@pytest.mark.parametrize("who", ["data_manager", "investigator"])
@pytest.mark.parametrize("resource_type", TYPES)
def test_bulk_patients_and_events_run_a_fixed_number_of_queries(branches, resource_type, who, request,
                                                               monkeypatch):
    user = request.getfixturevalue(who)
    copies = copy_calls(monkeypatch)
    some = list(Patient.objects.order_by("registry_id").values_list("registry_id", flat=True))
    counts = []
    for patients in (some[:1], some[:1], some):
        wanted = ",".join(patients)
        params = {"_id": [wanted]} if resource_type == "Patient" else {"patient": [wanted]}
        with CaptureQueriesContext(connection) as queries:
            _bulk(user, resource_type, None, **params)
        counts.append(len(queries))
    # The user's roles and sites (cached on the user after the first search); an investigator's
    # events: their patients (for the shifts), once whatever their number.
    assert counts[1] == counts[2] <= (1 if who == "investigator" and resource_type == "AdverseEvent" else 0)
    assert counts[0] <= counts[1] + 2
    assert len(copies) == 3


def test_on_sqlite_the_bulk_files_are_built_in_python(branches, data_manager, monkeypatch):
    copies = copy_calls(monkeypatch)
    for resource_type in TYPES:
        found = fhir.fhir_search(user=data_manager, resource_type=resource_type, params={})
        assert bulk.available(found) == (connection.vendor == "postgresql")
        fast, _ = _bulk(data_manager, resource_type, None)
        slow, _ = _bulk(data_manager, resource_type, False)
        assert _texts(fast) == _texts(slow)
    assert len(copies) == (2 if connection.vendor == "postgresql" else 0)

"""FHIR R4 endpoints: every resource validates with the fhir.resources models and
with R4 (4.0.1) itself.

fhir.resources >= 7 ships R5 at the top level and R4B in `fhir.resources.R4B`
(no separate R4 package). R4B (4.3.0) equals R4 for every resource served here,
and it checks value types and formats; fhirclient's models are generated from
R4 4.0.1 and, strict, refuse unknown elements and missing required ones. Each
resource must pass both.
"""

import datetime
import json

import pytest
from fhir.resources.R4B import get_fhir_model_class
from fhirclient.models.fhirabstractbase import FHIRValidationError
from fhirclient.models.fhirelementfactory import FHIRElementFactory

from registry.models import DeviceIdentifier, ExportLog, PatientIdentifiers, Site
from registry.models.base import today_anywhere
from registry.services import fhir
from registry.services.audit import record_save, system_user
from tests.factories import make_patient

TYPES = ["Patient", "ResearchSubject", "Device", "Procedure", "Observation", "AdverseEvent",
         "ResearchStudy"]


def validate(resource: dict):
    validate_r4(resource)
    model = get_fhir_model_class(resource["resourceType"])
    return model.model_validate(resource)


def validate_r4(resource: dict):
    """Strict R4 4.0.1 (fhirclient): an unknown or missing required element raises."""
    try:
        FHIRElementFactory.instantiate(resource["resourceType"], resource)
    except FHIRValidationError as exc:
        raise AssertionError(f"not valid R4: {resource['resourceType']}/{resource.get('id')}: "
                             f"{exc}") from exc


def test_the_r4_check_refuses_what_r4_does_not_have():
    with pytest.raises(AssertionError, match="not valid R4"):
        validate_r4({"resourceType": "Patient", "id": "x", "birthYear": "1970"})
    with pytest.raises(AssertionError, match="subject"):
        validate_r4({"resourceType": "AdverseEvent", "id": "ae-1", "actuality": "actual"})


def get(client, path, token, **params):
    return client.get(path, params, HTTP_AUTHORIZATION=f"Bearer {token}")


@pytest.fixture
def identifiers(cohort):
    """Direct identifiers stored for the cohort: none may ever leave through FHIR."""
    patient = cohort["a"][0]
    record_save(PatientIdentifiers(patient=patient, record_number="MRN-778899",
                                   full_name="Johanna Vermeer", phone="+31 6 1234 5678"),
                actor=system_user(), reason="test")
    implant = patient.implants.first()
    record_save(DeviceIdentifier(implant=implant, component="IPG", serial_number="SN-4455667",
                                 udi="(01)00643169007222(17)250101"), actor=system_user(), reason="test")
    # Free text, which may hold anything typed: it must not leave either.
    patient.affected_region, patient.amputation_cause = "SECRET-REGION", "SECRET-CAUSE"
    record_save(patient, actor=system_user(), reason="test")
    explanted = cohort["a"][1].implants.get()
    explanted.explant_reason = "SECRET-EXPLANT-REASON"
    record_save(explanted, actor=system_user(), reason="test")
    return ["MRN-778899", "Johanna", "Vermeer", "1234 5678", "SN-4455667", "00643169007222",
            "SECRET-REGION", "SECRET-CAUSE", "SECRET-EXPLANT-REASON"]


@pytest.mark.parametrize("resource_type", TYPES)
def test_every_resource_in_a_searchset_validates_as_fhir(client, cohort, token_dm, resource_type):
    response = get(client, f"/fhir/{resource_type}", token_dm, _count=1000)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/fhir+json"
    bundle = validate(json.loads(response.content))
    assert bundle.type == "searchset" and bundle.entry
    for entry in bundle.entry:
        assert entry.resource.get_resource_type() == resource_type


def test_resources_carry_the_agreed_codes(client, cohort, token_dm):
    patient = cohort["a"][0]
    body = json.loads(get(client, f"/fhir/Patient/{patient.registry_id}", token_dm).content)
    assert "birthDate" not in body  # born 1931: over 89
    assert body["identifier"] == [{"system": fhir.registry_id_system(), "value": patient.registry_id}]
    younger = cohort["a"][1]
    body = json.loads(get(client, f"/fhir/Patient/{younger.registry_id}", token_dm).content)
    assert body["birthDate"] == "1970" == str(younger.birth_year)
    nrs = json.loads(get(client, "/fhir/Observation", token_dm, code="http://loinc.org|72514-3",
                         patient=patient.registry_id).content)
    codes = {e["resource"]["code"]["coding"][0]["code"] for e in nrs["entry"]}
    assert codes == {"72514-3"}
    assert {e["resource"]["valueQuantity"]["value"] for e in nrs["entry"]} == {8, 3}
    assert nrs["entry"][0]["resource"]["code"]["coding"][0]["display"] == (
        "Pain severity - 0-10 verbal numeric rating [Score] - Reported")
    events = json.loads(get(client, "/fhir/AdverseEvent", token_dm, seriousness="serious").content)
    [serious] = [e["resource"] for e in events["entry"]]
    assert serious["severity"]["coding"][0]["code"] == "severe"
    assert serious["outcome"]["coding"][0]["code"] == "ongoing"
    device, procedure = serious["suspectEntity"]
    assert device["instance"]["reference"] == f"Device/{patient.implants.first().ref}"
    assert device["causality"][0]["assessment"]["coding"][1]["code"] == "Possible"
    assert procedure["instance"]["reference"].endswith("-implant")
    explanted = cohort["a"][1].implants.first()
    proc = json.loads(get(client, f"/fhir/Procedure/{explanted.ref}-explant", token_dm).content)
    assert proc["focalDevice"][0]["action"]["coding"][0]["code"] == "explanted"
    assert proc["focalDevice"][0]["manipulated"] == {"reference": f"Device/{explanted.ref}"}
    validate(proc)


def test_identifiers_and_free_text_never_appear(client, cohort, token_dm, identifiers):
    manifest = json.loads(get(client, "/fhir/$export", token_dm).content)
    text = ""
    for output in manifest["output"]:
        path = output["url"].split("testserver", 1)[1]
        response = get(client, path, token_dm)
        text += b"".join(response.streaming_content).decode()
    assert text.count("\n") > 10
    for resource in map(json.loads, text.splitlines()):
        validate(resource)
        assert "serialNumber" not in resource and "udiCarrier" not in resource
        assert "name" not in resource or resource["resourceType"] != "Patient"
        assert "reasonCode" not in resource
    assert '"id":"AAA-0002-I1-explant"' in text
    for resource_type in TYPES:
        text += get(client, f"/fhir/{resource_type}", token_dm, _count=1000).content.decode()
    explanted = cohort["a"][1].implants.get()
    text += get(client, f"/fhir/Procedure/{explanted.ref}-explant", token_dm).content.decode()
    for secret in identifiers:
        assert secret not in text


def test_a_token_sees_only_its_sites_patients(client, cohort, token_b, token_a):
    own = json.loads(get(client, "/fhir/Patient", token_b).content)
    assert [e["resource"]["id"] for e in own["entry"]] == [p.registry_id for p in cohort["b"]]
    assert own["total"] == 1
    other = cohort["a"][0].registry_id
    assert get(client, f"/fhir/Patient/{other}", token_b).status_code == 404
    observations = json.loads(get(client, "/fhir/Observation", token_b, _count=1000).content)
    assert {e["resource"]["subject"]["reference"] for e in observations["entry"]} == {
        f"Patient/{cohort['b'][0].registry_id}"}


def test_search_pages_with_next_and_previous_links(client, cohort, token_dm):
    first = json.loads(get(client, "/fhir/Observation", token_dm, _count=2).content)
    assert len(first["entry"]) == 2
    links = {link["relation"]: link["url"] for link in first["link"]}
    assert "previous" not in links
    second = json.loads(client.get(links["next"].split("testserver", 1)[1],
                                   HTTP_AUTHORIZATION=f"Bearer {token_dm}").content)
    assert {link["relation"] for link in second["link"]} >= {"self", "previous"}
    assert not {e["resource"]["id"] for e in first["entry"]} & {e["resource"]["id"] for e in second["entry"]}
    assert ExportLog.objects.filter(channel="fhir", dataset="Observation").count() == 2


def test_bad_requests_get_an_operation_outcome(client, cohort, token_dm):
    unauthorised = client.get("/fhir/Patient")
    assert unauthorised.status_code == 401
    validate(json.loads(unauthorised.content))
    bad_date = get(client, "/fhir/Observation", token_dm, date="yesterday")
    assert bad_date.status_code == 400
    assert "date" in json.loads(bad_date.content)["issue"][0]["diagnostics"]
    assert get(client, "/fhir/Medication", token_dm).status_code == 404
    assert get(client, "/fhir/Patient", token_dm, _count="many").status_code == 400
    assert get(client, "/fhir/$export", token_dm, _type="Medication").status_code == 400


def test_bulk_export_writes_ndjson_per_type(client, cohort, token_dm):
    kickoff = get(client, "/fhir/$export", token_dm, _type="Patient,Observation")
    manifest = json.loads(kickoff.content)
    assert [o["type"] for o in manifest["output"]] == ["Patient", "Observation"]
    assert manifest["requiresAccessToken"] is True
    response = get(client, "/fhir/$export/Patient.ndjson", token_dm)
    assert response["Content-Type"] == "application/fhir+ndjson"
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert len(lines) == 3 and all(validate(json.loads(line)) for line in lines)
    log = ExportLog.objects.get(channel="fhir", format="ndjson")
    assert log.rows == 3
    async_kickoff = client.get("/fhir/$export", HTTP_AUTHORIZATION=f"Bearer {token_dm}",
                               HTTP_PREFER="respond-async")
    assert async_kickoff.status_code == 202
    status = client.get(async_kickoff["Content-Location"].split("testserver", 1)[1],
                        HTTP_AUTHORIZATION=f"Bearer {token_dm}")
    assert json.loads(status.content)["output"]


def test_capability_statement_validates(client):
    validate(json.loads(client.get("/fhir/metadata").content))


def outcome_of(response, status=400) -> str:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/fhir+json"
    body = json.loads(response.content)
    validate(body)
    assert body["resourceType"] == "OperationOutcome"
    return body["issue"][0]["diagnostics"]


@pytest.mark.parametrize("resource_type", ["Procedure", "Observation", "AdverseEvent"])
@pytest.mark.parametrize("value", ["ge2020-13-01", "2020-02-30", "0000", "2020-00", "2021-02-29",
                                   "le2020-06-00"])
def test_a_date_search_on_a_day_the_calendar_lacks_is_a_400_naming_it(client, cohort, token_dm,
                                                                      resource_type, value):
    diagnostics = outcome_of(get(client, f"/fhir/{resource_type}", token_dm, date=value))
    assert "'date'" in diagnostics and f"'{value}'" in diagnostics
    assert ExportLog.objects.count() == 0


def test_the_last_day_of_year_9999_is_still_a_date(client, cohort, token_dm):
    for value in ("9999", "9999-12", "le9999-12-31"):
        assert get(client, "/fhir/Observation", token_dm, date=value).status_code == 200


@pytest.mark.parametrize(("path", "param", "value"), [
    ("/fhir/Patient", "_lastUpdated", "ge9999-12-31T23:59:59-01:00"),
    ("/fhir/Observation", "_lastUpdated", "lt0001-01-01T00:00:00+01:00"),
    ("/fhir/$export", "_since", "9999-12-31T23:59:59-01:00"),
    ("/fhir/$export/Patient.ndjson", "_since", "9999-12-31T23:59:59-01:00"),
])
def test_an_instant_that_has_no_utc_time_is_a_400_naming_it(client, cohort, token_dm, path, param,
                                                            value):
    diagnostics = outcome_of(get(client, path, token_dm, **{param: value}))
    assert f"'{param}'" in diagnostics and f"'{value}'" in diagnostics


@pytest.mark.parametrize("resource_id", ["ae-99999999999999999999999", "ae-9223372036854775808"])
def test_reading_an_id_beyond_any_key_is_a_404(client, cohort, token_dm, resource_id):
    outcome_of(get(client, f"/fhir/AdverseEvent/{resource_id}", token_dm), status=404)


@pytest.mark.parametrize("resource_id", ["painscore-99999999999999999999999",
                                         "visit-99999999999999999999999-nrs"])
def test_searching_for_an_observation_id_beyond_any_key_finds_nothing(client, cohort, token_dm,
                                                                     resource_id):
    outcome_of(get(client, f"/fhir/Observation/{resource_id}", token_dm), status=404)
    found = get(client, "/fhir/Observation", token_dm, _id=resource_id)
    bundle = json.loads(found.content)
    assert found.status_code == 200 and bundle["type"] == "searchset" and "entry" not in bundle
    validate(bundle)


def test_a_search_value_with_a_nul_character_is_a_400_naming_it(client, cohort, token_dm):
    # SQLite finds nothing; PostgreSQL refuses NUL in text, which was a 500.
    diagnostics = outcome_of(get(client, "/fhir/ResearchSubject", token_dm, patient="AAA-0001\x00"))
    assert "'patient'" in diagnostics and "NUL" in diagnostics


@pytest.mark.parametrize("resource_type", TYPES)
def test_count_zero_gives_the_total_without_entries_or_paging_links(client, cohort, token_dm,
                                                                    resource_type):
    every = json.loads(get(client, f"/fhir/{resource_type}", token_dm, _count=1000).content)
    response = get(client, f"/fhir/{resource_type}", token_dm, _count=0)
    assert response.status_code == 200
    bundle = json.loads(response.content)
    validate(bundle)
    assert bundle["total"] == len(every["entry"]) > 0
    assert "entry" not in bundle
    assert [link["relation"] for link in bundle["link"]] == ["self"]
    log = ExportLog.objects.filter(channel="fhir").latest("pk")
    assert log.rows == 0 and log.filters["_count"] == 0


@pytest.mark.parametrize("params", [{"code": "pgic"}, {"code": "http://loinc.org|72514-3"},
                                    {"patient": "AAA-0002"}, {"_id": "two real ids"}])
def test_count_zero_counts_observations_as_the_search_returns_them(client, cohort, token_dm, params):
    if "_id" in params:  # ids differ per database (sequences are not reset between tests)
        found = json.loads(get(client, "/fhir/Observation", token_dm, _count=1000).content)
        params = {"_id": ",".join(e["resource"]["id"] for e in found["entry"][:2])}
    every = json.loads(get(client, "/fhir/Observation", token_dm, _count=1000, **params).content)
    counted = json.loads(get(client, "/fhir/Observation", token_dm, _count=0, **params).content)
    assert counted["total"] == len(every["entry"]) > 0


def test_a_95_year_old_has_no_birth_date_in_a_read_a_search_or_the_bulk_export(client, cohort,
                                                                              token_dm):
    patient = make_patient(Site.objects.get(code="AAA"), birth_year=today_anywhere().year - 95,
                           consent_date=datetime.date(2020, 1, 1))
    read = json.loads(get(client, f"/fhir/Patient/{patient.registry_id}", token_dm).content)
    validate(read)
    assert read["id"] == patient.registry_id and "birthDate" not in read
    found = json.loads(get(client, "/fhir/Patient", token_dm, _id=patient.registry_id).content)
    assert [e["resource"] for e in found["entry"]] == [read]
    exported = b"".join(get(client, "/fhir/$export/Patient.ndjson", token_dm).streaming_content)
    [line] = [json.loads(line) for line in exported.decode().splitlines()
              if json.loads(line)["id"] == patient.registry_id]
    assert "birthDate" not in line
    assert str(patient.birth_year) not in json.dumps(read) + exported.decode()


@pytest.mark.parametrize(("age", "shown"), [(89, True), (90, False)])
def test_the_birth_year_is_shown_up_to_age_89_like_the_exports_90_plus(client, cohort, token_dm,
                                                                       age, shown):
    year = today_anywhere().year - age
    patient = make_patient(Site.objects.get(code="AAA"), birth_year=year)
    body = json.loads(get(client, f"/fhir/Patient/{patient.registry_id}", token_dm).content)
    assert body.get("birthDate") == (str(year) if shown else None)


def test_a_missing_value_with_its_reason_is_an_observation_with_data_absent_reason(client, cohort,
                                                                                    token_dm):
    """Issue 18: the reason beside the value becomes FHIR's dataAbsentReason (no value[x])."""
    from registry.models import Visit

    visit = Visit.objects.get(patient=cohort["a"][0], timepoint="m3")
    visit.nrs, visit.nrs_missing, visit.pgic, visit.pgic_missing = None, "declined", None, "not_applicable"
    visit.satisfaction = None
    record_save(visit, actor=system_user(), reason="test: reasons")
    body = json.loads(get(client, f"/fhir/Observation/visit-{visit.pk}-nrs", token_dm).content)
    validate(body)
    assert "valueQuantity" not in body
    assert body["dataAbsentReason"] == {"coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/data-absent-reason", "code": "asked-declined"}],
        "text": "Asked but declined"}
    pgic = json.loads(get(client, f"/fhir/Observation/visit-{visit.pk}-pgic", token_dm).content)
    validate(pgic)
    assert pgic["dataAbsentReason"]["coding"][0]["code"] == "not-applicable"
    # A blank without a reason is still no Observation at all.
    assert get(client, f"/fhir/Observation/visit-{visit.pk}-satisfaction", token_dm).status_code == 404


@pytest.mark.parametrize("sql", [False, None], ids=["python", "database-where-it-can"])
def test_a_missed_visits_observations_say_why_with_data_absent_reason(client, cohort, token_dm,
                                                                     data_manager, sql):
    """Issue 18: a whole visit not done, with its reason, is an NRS, satisfaction and PGIC
    Observation each, cancelled, without a value or a date, the visit's reason as
    dataAbsentReason (a value's own reason, where given, says more); without a reason, none."""
    from registry.models import Visit
    from registry.services import fhir
    from registry.services.export_log import RowCounter

    visit = Visit.objects.get(patient=cohort["a"][0], timepoint="m6")
    visit.status, visit.date_done, visit.visit_missing = "missed", None, "too_ill"
    visit.nrs = visit.satisfaction = visit.pgic = visit.opioid_mme = None
    record_save(visit, actor=system_user(), reason="test: missed")
    other = Visit.objects.get(patient=cohort["a"][0], timepoint="m12")
    other.status, other.date_done, other.visit_missing = "missed", None, ""
    other.nrs = other.satisfaction = other.pgic = other.opioid_mme = None
    record_save(other, actor=system_user(), reason="test: missed, no reason")
    search = fhir.fhir_search(user=data_manager, resource_type="Observation",
                              params={"patient": [cohort["a"][0].registry_id]})
    lines = [json.loads(line) for line in b"".join(search.ndjson(RowCounter(), sql=sql)).splitlines()]
    mine = {r["id"]: r for r in lines if r["id"].startswith(f"visit-{visit.pk}-")}
    assert set(mine) == {f"visit-{visit.pk}-{k}" for k in ("nrs", "satisfaction", "pgic")}
    for resource in mine.values():
        validate(resource)
        assert resource["status"] == "cancelled" and "effectiveDateTime" not in resource
        assert not any(key.startswith("value") for key in resource)
        assert resource["dataAbsentReason"] == {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/data-absent-reason",
            "code": "not-performed"}], "text": "Too ill to attend"}
    assert not any(r["id"].startswith(f"visit-{other.pk}-") for r in lines)
    assert search.total() == len(lines)
    body = json.loads(get(client, f"/fhir/Observation/visit-{visit.pk}-nrs", token_dm).content)
    assert body == mine[f"visit-{visit.pk}-nrs"]

"""FHIR and the clinical data of issue 20: Device with the UDI-DI only (never the UDI-PI or
serial), AdverseEvent with its IMDRF codes and awareness date (shifted for investigators),
Patient.deceased for those who see real dates and never for investigators. Valid R4."""

import datetime
import json

import pytest

from registry.models import DeviceComponent, DeviceIdentifier, Disposition
from registry.services import deid
from registry.services.audit import record_save
from registry.services.components import component_save
from registry.services.disposition import disposition_record
from registry.services.tokens import api_token_create
from tests.factories import make_event
from tests.interop.test_fhir import get, validate

pytestmark = pytest.mark.django_db
D = datetime.date


@pytest.fixture
def clinical(patient_a, implant_a, nurse):
    ipg = component_save(component=DeviceComponent(implant=implant_a, kind="ipg", manufacturer="Acme",
                                                   model="X1", udi_di="00643169123456"), actor=nurse)
    record_save(DeviceIdentifier(implant=implant_a, component="IPG", device_component=ipg,
                                 serial_number="NKV123456", udi_pi="(21)NKV123456(17)270101"),
                actor=nurse)
    event = make_event(patient_a, implant_a, serious=True, serious_criterion="hospitalisation",
                       device_relatedness="probable", onset_date=D(2020, 4, 1),
                       awareness_date=D(2020, 4, 3), imdrf_device_problem="A0705",
                       outcome="ongoing", resolved_on=None)
    disposition_record(disposition=Disposition(
        patient=patient_a, status="deceased", date=D(2020, 6, 1), death_cause="cardiovascular",
        death_device_relatedness="not_related", death_procedure_relatedness="not_related"),
        actor=nurse, reason="death notified")
    return event


def bundle(client, token, kind):
    response = get(client, f"/fhir/{kind}", token)
    assert response.status_code == 200
    body = b"".join(response.streaming_content) if response.streaming else response.content
    resources = [e["resource"] for e in json.loads(body)["entry"]]
    for resource in resources:
        validate(resource)
    return resources


def test_the_device_carries_the_udi_di_and_never_the_udi_pi_or_serial(client, clinical, nurse):
    token = api_token_create(user=nurse, label="fhir")
    (device,) = bundle(client, token, "Device")
    assert device["udiCarrier"] == [{"deviceIdentifier": "00643169123456"}]
    text = json.dumps(device)
    assert "NKV123456" not in text and "(21)" not in text


def test_the_adverse_event_has_imdrf_codes_and_awareness_shifted_per_role(client, clinical, nurse,
                                                                          investigator):
    (mine,) = bundle(client, api_token_create(user=nurse, label="n"), "AdverseEvent")
    codes = {e["url"].rsplit(":", 1)[-1]: e["valueCode"] for e in mine["extension"]}
    assert codes["imdrf-annex-a"] == "A0705" and codes["iso14155-class"] == "SADE"
    assert "imdrf-annex-e" in codes and mine["detected"] == "2020-04-03"
    (theirs,) = bundle(client, api_token_create(user=investigator, label="i"), "AdverseEvent")
    days = deid.date_shift_days(clinical.patient.registry_id)
    assert theirs["detected"] == deid.shifted(D(2020, 4, 3), days).isoformat() != "2020-04-03"


def test_the_deceased_flag_is_withheld_from_investigators(client, clinical, nurse, investigator):
    (patient,) = bundle(client, api_token_create(user=nurse, label="n"), "Patient")
    assert patient["deceasedDateTime"] == "2020-06-01"
    (patient,) = bundle(client, api_token_create(user=investigator, label="i"), "Patient")
    assert not any(key.startswith("deceased") for key in patient)

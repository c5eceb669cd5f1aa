"""REDCap's `device_component` repeating instrument (issue 20): one instance per IPG, lead or
extension of a patient's implants, in its own event; manufacturer, model and UDI-DI, the
implanted and removed days relative to the implant (REDCap gets no calendar dates), the coded
removal reason with its choices in the data dictionary; never a serial number, UDI-PI or the
free-text removal detail. PyCap reads it back."""

import csv
import datetime
import io
import json

import pytest
from redcap import Project

from registry.models import DeviceComponent, DeviceIdentifier, Role, choices
from registry.services import redcap
from registry.services.audit import record_save
from registry.services.components import component_save
from registry.services.implants import implant_save
from registry.services.tokens import api_token_create
from tests.conftest import _user
from tests.factories import make_implant, make_patient
from tests.interop.test_redcap_api import body, post, records
from tests.interop.test_redcap_pycap import decode

D = datetime.date
SERIAL, UDI_PI = "NKV7781234", "(21)NKV7781234(17)291231"


def components_of(implant, nurse):
    """An IPG replaced for battery depletion (removed day 400, detail in free text), its
    successor, two leads; the serial and UDI-PI kept as identifiers."""
    ipg = component_save(component=DeviceComponent(
        implant=implant, kind="ipg", manufacturer="Medtronic", model="Intellis 97715",
        udi_di="00643169912345", rechargeable=True,
        removed_on=implant.implant_date + datetime.timedelta(days=400),
        removal_reason="other", removal_detail="swapped at the patient's request in Leiden"),
        actor=nurse)
    component_save(component=DeviceComponent(
        implant=implant, kind="ipg", manufacturer="Medtronic", model="Intellis 97715",
        udi_di="00643169912345", rechargeable=True,
        implanted_on=implant.implant_date + datetime.timedelta(days=400)), actor=nurse)
    for _ in range(2):
        component_save(component=DeviceComponent(implant=implant, kind="lead",
                                                 manufacturer="Medtronic", model="977A2"),
                       actor=nurse)
    record_save(DeviceIdentifier(implant=implant, component="IPG", device_component=ipg,
                                 serial_number=SERIAL, udi_pi=UDI_PI), actor=nurse)
    return ipg


@pytest.fixture
def fitted(site_a, nurse):
    patient = make_patient(site_a, actor=nurse)
    implant = make_implant(patient, actor=nurse)
    components_of(implant, nurse)
    return patient, implant


@pytest.mark.django_db
def test_the_project_has_the_repeating_component_instrument_with_coded_choices(client, token_a):
    meta = {m["field_name"]: m for m in json.loads(body(post(client, token_a, content="metadata",
                                                            format="json")))}
    form = [name for name, m in meta.items() if m["form_name"] == "device_component"]
    assert form == ["comp_implant_ref", "comp_kind", "comp_manufacturer", "comp_model",
                    "comp_udi_di", "comp_rechargeable", "comp_implanted_day", "comp_removed_day",
                    "comp_removal_reason", "comp_removed_at_explant"]
    reason = meta["comp_removal_reason"]
    assert reason["field_type"] == "dropdown"
    numbered = choices.numbered("removal_reason")
    assert reason["select_choices_or_calculations"] == " | ".join(
        f"{n}, {label}" for n, _code, label in numbered)
    assert "battery_depletion" in reason["field_annotation"]
    assert meta["comp_kind"]["field_type"] == "radio"
    assert meta["comp_implanted_day"]["text_validation_type_or_show_slider_number"] == "integer"
    assert not [n for n in meta if "serial" in n or "udi_pi" in n or "detail" in n]
    repeating = json.loads(body(post(client, token_a, content="repeatingFormsEvents", format="json")))
    assert {"event_name": "device_components_arm_1", "form_name": "device_component",
            "custom_form_label": "[comp_kind] [comp_implant_ref]"} in repeating
    assert "device_components_arm_1" not in [r["event_name"] for r in repeating
                                             if r["form_name"] == ""]  # not a repeating event
    mapping = json.loads(body(post(client, token_a, content="formEventMapping", format="json")))
    assert [m["form"] for m in mapping if m["unique_event_name"] == "device_components_arm_1"] == [
        "device_component"]


@pytest.mark.django_db
def test_component_records_carry_days_and_codes_never_a_serial_or_free_text(client, fitted, nurse,
                                                                            token_a):
    patient, implant = fitted
    rows = [r for r in records(client, token_a) if r["redcap_repeat_instrument"] == "device_component"]
    assert [(r["record_id"], r["redcap_event_name"], r["redcap_repeat_instance"]) for r in rows] == [
        (patient.registry_id, "device_components_arm_1", str(n)) for n in (1, 2, 3, 4)]
    first, second = rows[0], rows[1]
    field = redcap.FIELD_BY_NAME
    assert (first["comp_implant_ref"], first["comp_kind"], first["comp_model"], first["comp_udi_di"]) == (
        implant.ref, field["comp_kind"].raw("ipg"), "Intellis 97715", "00643169912345")
    assert (first["comp_implanted_day"], first["comp_removed_day"]) == ("0", "400")
    assert first["comp_removal_reason"] == field["comp_removal_reason"].raw("other")
    assert (first["comp_rechargeable"], first["comp_removed_at_explant"]) == ("1", "0")
    assert (second["comp_implanted_day"], second["comp_removed_day"], second["comp_removal_reason"]) == (
        "400", "", "")
    assert all(r["device_component_complete"] == "2" for r in rows)
    # Only the component form's cells on its rows; the other forms' are empty.
    assert first["nrs"] == "" and first["ae_category"] == ""
    labelled = [r for r in records(client, token_a, rawOrLabel="label")
                if r["redcap_repeat_instrument"] == "Device component"]
    assert (labelled[0]["comp_kind"], labelled[0]["comp_removal_reason"]) == (
        "IPG (implantable pulse generator)", "Other")
    for options in ({"format": "json"}, {"format": "csv"}, {"format": "csv", "type": "eav"},
                    {"format": "json", "type": "eav"}, {"format": "csv", "rawOrLabel": "label"}):
        text = body(post(client, token_a, content="record", **options)).decode()
        assert "00643169912345" in text, options
        for withheld in (SERIAL, "NKV778", "Leiden", "patient's request"):
            assert withheld not in text, (options, withheld)
    # An investigator's token (no identifiers anywhere) gets the model's UDI-DI, no serial.
    investigator = _user("inv_components", Role.INVESTIGATOR, [patient.site.code])
    text = body(post(client, api_token_create(user=investigator, label="inv"), content="record",
                     format="csv")).decode()
    assert "00643169912345" in text and SERIAL not in text


@pytest.mark.django_db
def test_component_records_narrow_by_form_event_and_site(client, fitted, token_a, token_b):
    patient, _ = fitted
    only = records(client, token_a, **{"forms[0]": "device_component"})
    assert {r["redcap_event_name"] for r in only} == {"device_components_arm_1"}
    # As for the other forms: the record id is a field of the enrolment form, asked by name.
    assert set(only[0]) == {"redcap_event_name", "redcap_repeat_instrument",
                            "redcap_repeat_instance", *[f.name for f in redcap.all_fields()
                                                        if f.form == "device_component"],
                            "device_component_complete"}
    by_event = records(client, token_a, **{"events[0]": "device_components_arm_1",
                                           "fields[0]": "record_id", "fields[1]": "comp_kind"})
    assert len(by_event) == 4 and set(by_event[0]) >= {"record_id", "comp_kind"}
    none = records(client, token_a, **{"events[0]": "baseline_arm_1"})
    assert not [r for r in none if r["redcap_repeat_instrument"] == "device_component"]
    assert records(client, token_b, **{"forms[0]": "device_component"}) == []  # another site


@pytest.mark.django_db
def test_a_component_changed_in_the_date_range_brings_its_record(client, fitted, nurse, token_a):
    from django.utils import timezone

    from registry.models import Implant, Patient, Visit

    patient, implant = fitted
    other = make_patient(patient.site, actor=nurse)
    make_implant(other, actor=nurse)
    long_ago = timezone.now() - datetime.timedelta(days=9)
    for model in (Patient, Visit, Implant, DeviceComponent):  # nothing changed for 9 days
        model.objects.update(updated_at=long_ago)
    lead = DeviceComponent.objects.filter(implant=implant, kind="lead").first()
    lead.model = "977A260"
    component_save(component=lead, actor=nurse, reason="model corrected")
    since = (timezone.localtime() - datetime.timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S")
    found = records(client, token_a, dateRangeBegin=since)
    assert {r["record_id"] for r in found} == {patient.registry_id}


@pytest.mark.django_db(transaction=True)
def test_pycap_reads_the_components_back(live_server, site_a, nurse, token_a):
    patient = make_patient(site_a, actor=nurse)
    implant = make_implant(patient, actor=nurse)
    components_of(implant, nurse)
    implant.explant_date, implant.explant_reason_code = D(2022, 5, 1), "infection"
    implant_save(implant=implant, actor=nurse, reason="explanted for a pocket infection")
    project = Project(f"{live_server.url}/redcap/api/", token_a)
    metadata = {m["field_name"]: m for m in project.export_metadata()}
    rows = project.export_records(forms=["device_component"])  # PyCap adds the record id
    decoded = [decode(r, metadata) for r in rows if r["redcap_repeat_instrument"] == "device_component"]
    assert {r["record_id"] for r in rows} == {patient.registry_id}
    assert [r["redcap_repeat_instance"] for r in decoded] == ["1", "2", "3", "4"]
    expected = []
    for c in DeviceComponent.objects.filter(implant=implant).order_by("pk"):
        removed = (c.removed_on - implant.implant_date).days if c.removed_on else None
        expected.append((implant.ref, c.get_kind_display(), c.model, c.udi_di or None,
                         (c.start - implant.implant_date).days, removed,
                         c.get_removal_reason_display() or None, c.removed_at_explant))
    assert [(r["comp_implant_ref"], r["comp_kind"], r["comp_model"], r["comp_udi_di"],
             r["comp_implanted_day"], r["comp_removed_day"], r["comp_removal_reason"],
             r["comp_removed_at_explant"]) for r in decoded] == expected
    # The explant removed what was still in (coded from the implant's explant reason).
    assert [r["comp_removal_reason"] for r in decoded] == ["Other", "Infection", "Infection",
                                                          "Infection"]
    frame = project.export_records(format_type="df", forms=["device_component"])
    assert len(frame.dropna(subset=["comp_kind"])) == 4
    assert frame["comp_removed_day"].max() == (D(2022, 5, 1) - implant.implant_date).days
    flat = project.export_records(format_type="csv", forms=["device_component"])
    assert SERIAL not in flat and next(csv.reader(io.StringIO(flat)))[0] == "record_id"

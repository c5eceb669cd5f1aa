"""Device components: rows of an implant; revisions and the explant touch them."""

import datetime

import pytest
from django.core.exceptions import ValidationError

from registry.models import DeviceComponent, DeviceIdentifier, Implant, Revision, RevisionComponent
from registry.services import deid
from registry.services.audit import record_save
from registry.services.components import component_save, revision_record
from registry.services.implants import implant_save

D = datetime.date


@pytest.fixture
def system(implant_a, nurse):
    ipg = component_save(component=DeviceComponent(
        implant=implant_a, kind="ipg", manufacturer="Medtronic", model="Intellis",
        udi_di="00643169123456", rechargeable=True), actor=nurse)
    leads = [component_save(component=DeviceComponent(implant=implant_a, kind="lead",
                                                      manufacturer="Medtronic", model="977A2"),
                            actor=nurse) for _ in range(2)]
    return ipg, leads


def test_a_revision_removes_the_components_it_replaced(system, implant_a, nurse):
    ipg, (lead1, lead2) = system
    revision = Revision(implant=implant_a, date=D(2021, 6, 1), reason_code="lead_migration")
    revision_record(revision=revision, touched=[(lead1, "replaced"), (lead2, "repositioned")],
                    actor=nurse, reason="Lead 1 migrated")
    lead1.refresh_from_db()
    lead2.refresh_from_db()
    assert (lead1.removed_on, lead1.removal_reason) == (D(2021, 6, 1), "lead_migration")
    assert lead2.removed_on is None
    assert set(revision.touched.values_list("component_id", "action")) == {
        (lead1.pk, "replaced"), (lead2.pk, "repositioned")}
    assert lead1.history.first().history_user == nurse


def test_the_explant_removes_what_is_still_in_place_and_undoing_it_puts_it_back(
        system, implant_a, nurse):
    ipg, (lead1, lead2) = system
    revision_record(revision=Revision(implant=implant_a, date=D(2021, 6, 1),
                                      reason_code="lead_fracture"),
                    touched=[(lead1, "removed")], actor=nurse)
    implant_a.explant_date, implant_a.explant_reason_code = D(2022, 2, 1), "infection"
    implant_save(implant=implant_a, actor=nurse, reason="Deep infection")
    rows = {c.pk: c for c in DeviceComponent.objects.all()}
    assert (rows[ipg.pk].removed_on, rows[ipg.pk].removal_reason,
            rows[ipg.pk].removed_at_explant) == (D(2022, 2, 1), "infection", True)
    assert (rows[lead1.pk].removed_on, rows[lead1.pk].removal_reason) == (D(2021, 6, 1),
                                                                          "lead_fracture")
    assert rows[lead2.pk].removed_at_explant
    implant_a.explant_date, implant_a.explant_reason_code = None, ""
    implant_save(implant=implant_a, actor=nurse, reason="explant entered for the wrong patient")
    rows = {c.pk: c for c in DeviceComponent.objects.all()}
    assert rows[ipg.pk].removed_on is None and not rows[ipg.pk].removed_at_explant
    assert rows[lead1.pk].removed_on == D(2021, 6, 1)


def test_an_explant_reason_typed_as_text_is_kept_as_the_detail_of_other(implant_a, nurse):
    implant_a.explant_date, implant_a.explant_reason = D(2022, 2, 1), "patient moved abroad"
    implant_save(implant=implant_a, actor=nurse, reason="explant")
    implant_a.refresh_from_db()
    assert (implant_a.explant_reason_code, implant_a.explant_reason) == ("other",
                                                                         "patient moved abroad")


@pytest.mark.parametrize(("fields", "field", "message"), [
    ({"removed_on": D(2021, 1, 1)}, "removal_reason", "reason for the removal"),
    ({"removal_reason": "mri"}, "removed_on", "give the date"),
    ({"removed_on": D(2021, 1, 1), "removal_reason": "other"}, "removal_detail", "other reason"),
    ({"implanted_on": D(2020, 1, 1)}, "implanted_on", "before the implant date"),
    ({"implanted_on": D(2021, 1, 1), "removed_on": D(2020, 12, 1), "removal_reason": "mri"},
     "removed_on", "before it was implanted"),
])
def test_a_component_names_what_is_wrong(implant_a, nurse, fields, field, message):
    with pytest.raises(ValidationError) as caught:
        component_save(component=DeviceComponent(implant=implant_a, kind="ipg", **fields),
                       actor=nurse)
    assert message in " ".join(caught.value.message_dict[field])


def test_a_revision_cannot_touch_another_implants_component(system, patient_a, nurse):
    other = implant_save(implant=Implant(patient=patient_a, therapy="DRG",
                                         implant_date=D(2020, 6, 1)), actor=nurse)
    ipg, _ = system
    with pytest.raises(ValidationError, match="another implant"):
        revision_record(revision=Revision(implant=other, date=D(2021, 6, 1),
                                          reason_code="battery_depletion"),
                        touched=[(ipg, "replaced")], actor=nurse)


def test_the_udi_di_leaves_and_the_udi_pi_and_serial_stay_restricted(system, implant_a, nurse):
    ipg, _ = system
    record_save(DeviceIdentifier(implant=implant_a, component="IPG", device_component=ipg,
                                 serial_number="NKV123456", udi_pi="(21)NKV123456(17)270101"),
                actor=nurse)
    assert deid.released(DeviceComponent, "udi_di")
    assert not deid.released(DeviceIdentifier, "udi_pi")
    assert not deid.released(DeviceIdentifier, "serial_number")
    assert not deid.released(DeviceComponent, "removal_detail")
    assert deid.released(RevisionComponent, "action")

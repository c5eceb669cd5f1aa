"""programming_sessions.csv and the safety columns of adverse_events.csv: written by
export_registry, validated on import, round-tripped byte for byte; the electrode
configuration (free text) never written."""

import csv
import datetime
from decimal import Decimal
from pathlib import Path

import pytest

from registry.models import AdverseEvent, ProgrammingSession
from registry.services.bundles import bundle_export
from registry.services.imports import bundle_import
from registry.services.programming import programming_session_save
from tests.commands.test_export_registry import empty_the_registry, files
from tests.factories import make_event, make_implant, make_patient

D = datetime.date


@pytest.fixture
def programmed(site_a, nurse):
    patient = make_patient(site_a)
    implant = make_implant(patient, ipg_rechargeable=True)
    programming_session_save(session=ProgrammingSession(
        implant=implant, date=D(2020, 3, 5), paradigm="tonic", frequency_hz=Decimal("60"),
        pulse_width_us=300, amplitude_min_ma=Decimal("1.5"), amplitude_max_ma=Decimal("4.2"),
        contacts="+3 -4 (lead 1)"), actor=nurse)
    programming_session_save(session=ProgrammingSession(
        implant=implant, date=D(2020, 6, 1), paradigm="ecap", closed_loop_target_uv=30,
        recharge_interval_days=7), actor=nurse)
    make_event(patient, implant, serious=True, serious_criterion="hospitalisation",
               device_relatedness="probable", awareness_date=D(2020, 3, 22),
               reported_on=D(2020, 3, 30), imdrf_device_problem="A0705")
    return implant


def test_export_import_export_keeps_sessions_and_safety_fields(programmed, data_manager, tmp_path):
    counts = bundle_export(target=tmp_path / "first", actor=data_manager)
    assert counts["programming_sessions"] == 2
    text = (tmp_path / "first" / "programming_sessions.csv").read_text()
    first = next(csv.DictReader(text.splitlines()))
    assert (first["implant_ref"], first["date"], first["paradigm"], Decimal(first["frequency_hz"]),
            first["pulse_width_us"], Decimal(first["amplitude_max_ma"]), first["contacts"]) == (
        programmed.ref, "2020-03-05", "tonic", Decimal("60"), "300", Decimal("4.2"), "")
    assert "+3 -4" not in text
    with open(tmp_path / "first" / "adverse_events.csv") as fh:
        (event_row,) = list(csv.DictReader(fh))
    assert (event_row["awareness_date"], event_row["reported_on"],
            event_row["imdrf_device_problem"]) == ("2020-03-22", "2020-03-30", "A0705")
    before = sorted(ProgrammingSession.objects.values_list(
        "date", "paradigm", "frequency_hz", "pulse_width_us", "amplitude_min_ma", "amplitude_max_ma",
        "closed_loop_target_uv", "recharge_interval_days"))
    empty_the_registry()
    assert not ProgrammingSession.objects.exists()
    report = bundle_import(source=tmp_path / "first", actor=data_manager, reason="round trip")
    assert report.ok, report.errors
    assert sorted(ProgrammingSession.objects.values_list(
        "date", "paradigm", "frequency_hz", "pulse_width_us", "amplitude_min_ma", "amplitude_max_ma",
        "closed_loop_target_uv", "recharge_interval_days")) == before
    event = AdverseEvent.objects.get()
    assert (event.awareness_date, event.reported_on) == (D(2020, 3, 22), D(2020, 3, 30))
    assert ProgrammingSession.history.filter(history_change_reason="round trip").count() == 2
    bundle_export(target=tmp_path / "second", actor=data_manager)
    assert files(tmp_path / "second") == files(tmp_path / "first")
    again = bundle_import(source=tmp_path / "first", actor=data_manager, reason="again")
    assert again.ok and again.count("programming_sessions", "unchanged") == 2


def test_bad_sessions_are_reported_by_line_and_column_and_nothing_is_written(programmed, data_manager,
                                                                             tmp_path):
    folder: Path = tmp_path / "bad"
    folder.mkdir()
    header = ["implant_ref", "date", "paradigm", "frequency_hz", "pulse_width_us", "amplitude_min_ma",
              "amplitude_max_ma", "closed_loop_target_uv", "recharge_interval_days", "contacts"]
    ref = programmed.ref
    rows = [[ref, "2020-07-01", "tonic", "20000", "", "", "", "", "", ""],
            [ref, "2020-07-02", "waves", "", "", "", "", "", "", ""],
            ["NOPE-1-I1", "2020-07-03", "tonic", "", "", "", "", "", "", ""],
            [ref, "2020-07-04", "tonic", "", "", "5", "2", "", "", ""],
            [ref, "2020-07-05", "burst", "", "", "", "", "", "", ""],
            [ref, "2020-07-05", "burst", "", "", "", "", "", "", ""]]
    with open(folder / "programming_sessions.csv", "w", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows([header, *rows])
    held = ProgrammingSession.objects.count()
    report = bundle_import(source=folder, actor=data_manager, reason="bad", dry_run=False)
    assert not report.ok
    said = {(e.line, e.column): e.message for e in report.errors}
    assert "10000" in said[(2, "frequency_hz")]
    assert (3, "paradigm") in said and (4, "implant_ref") in said
    assert "below the amplitude from" in said[(5, "amplitude_max_ma")]
    assert "second session" in said[(7, "date")]
    assert ProgrammingSession.objects.count() == held


def test_components_round_trip_without_serials_or_free_text(programmed, nurse, data_manager,
                                                            tmp_path):
    from registry.models import DeviceComponent, DeviceIdentifier
    from registry.services.audit import record_save
    from registry.services.components import component_save

    ipg = component_save(component=DeviceComponent(
        implant=programmed, kind="ipg", manufacturer="Acme", model="X1", udi_di="00643169123456",
        rechargeable=True, removed_on=D(2021, 1, 5), removal_reason="other",
        removal_detail="patient asked for a smaller one"), actor=nurse)
    for _ in range(2):
        component_save(component=DeviceComponent(implant=programmed, kind="lead",
                                                 manufacturer="Acme", model="L8"), actor=nurse)
    record_save(DeviceIdentifier(implant=programmed, component="IPG", device_component=ipg,
                                 serial_number="NKV123456", udi_pi="(21)NKV123456"), actor=nurse)
    bundle_export(target=tmp_path / "first", actor=data_manager)
    text = (tmp_path / "first" / "components.csv").read_text()
    assert "NKV123456" not in text and "smaller" not in text
    rows = list(csv.DictReader(text.splitlines()))
    assert [(r["kind"], r["position"]) for r in rows] == [("ipg", "1"), ("lead", "1"), ("lead", "2")]
    assert rows[0]["udi_di"] == "00643169123456"
    same = bundle_import(source=tmp_path / "first", actor=data_manager, reason="same registry")
    assert same.ok, same.errors  # the withheld detail is not a difference
    assert same.count("components", "unchanged") == 3
    empty_the_registry()
    report = bundle_import(source=tmp_path / "first", actor=data_manager, reason="round trip")
    assert report.ok, report.errors
    assert sorted(DeviceComponent.objects.values_list("kind", "model", "removal_reason")) == [
        ("ipg", "X1", "other"), ("lead", "L8", ""), ("lead", "L8", "")]
    bundle_export(target=tmp_path / "second", actor=data_manager)
    assert files(tmp_path / "second") == files(tmp_path / "first")

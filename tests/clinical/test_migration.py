"""Migration 0015 turns each withdrawn consent into a withdrawn disposition."""

import datetime

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from tests.mailserver import restore_reference_data

pytestmark = pytest.mark.django_db(transaction=True)
BEFORE = [("registry", "0011_export_log_prune_beat_schedule")]
AFTER = [("registry", "0015_clinical")]


def test_withdrawn_patients_get_their_disposition():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    Site, Patient = old.get_model("registry", "Site"), old.get_model("registry", "Patient")
    site = Site.objects.create(code="MIG", name="Migration", country="NL")
    common = {"site": site, "sex": "F", "birth_year": 1970, "consent_date": datetime.date(2020, 1, 1),
              "etiology": "traumatic", "diagnosis": "pn"}
    Patient.objects.create(registry_id="MIG-0001", consent_status="withdrawn",
                           withdrawal_date=datetime.date(2021, 5, 1), **common)
    other = Patient.objects.create(registry_id="MIG-0002", **common)
    Implant = old.get_model("registry", "Implant")
    Implant.objects.create(ref="MIG-0002-I1", patient=other, therapy="SCS",
                           implant_date=datetime.date(2020, 2, 1),
                           explant_date=datetime.date(2021, 2, 1), explant_reason="MRI needed")
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(AFTER)
    new = executor.loader.project_state(AFTER).apps
    rows = list(new.get_model("registry", "Disposition").objects.values_list(
        "patient__registry_id", "status", "date", "withdrawal_level"))
    assert rows == [("MIG-0001", "withdrawn", datetime.date(2021, 5, 1), "no_contact")]
    history = new.get_model("registry", "HistoricalDisposition").objects.get()
    assert "consent status" in history.history_change_reason
    implant = new.get_model("registry", "Implant").objects.get()
    assert (implant.explant_reason_code, implant.explant_reason) == ("other", "MRI needed")
    assert new.get_model("registry", "HistoricalImplant").objects.get(
        history_type="~").history_change_reason.startswith("Free-text reason kept")
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.fixture(autouse=True)
def reference_data():
    yield
    restore_reference_data()  # the flush after a transactional test takes it away


def test_the_one_alert_of_an_event_becomes_the_alert_of_its_class():
    before, after = [("registry", "0017_reminderlog_kinds")], [("registry", "0022_clinical_more")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    Site, Patient = old.get_model("registry", "Site"), old.get_model("registry", "Patient")
    Event, Log = old.get_model("registry", "AdverseEvent"), old.get_model("registry", "ReminderLog")
    site = Site.objects.create(code="MIH", name="Migration", country="NL")
    patient = Patient.objects.create(registry_id="MIH-0001", site=site, sex="F", birth_year=1970,
                                     consent_date=datetime.date(2020, 1, 1), etiology="traumatic",
                                     diagnosis="pn")
    day = datetime.date(2021, 1, 1)
    kinds = {}
    for name, related, anticipated in (("sae", "not_related", True), ("sade", "probable", True),
                                       ("usade", "probable", False)):
        event = Event.objects.create(patient=patient, onset_date=day, awareness_date=day,
                                     category="infection_deep", serious=True,
                                     serious_criterion="hospitalisation", severity="severe",
                                     device_relatedness=related, procedure_relatedness="not_related",
                                     anticipated=anticipated)
        Log.objects.create(adverse_event=event, site=site, kind="safety_alert", window_start=day,
                           window_end=day, status="sent", digest_date=day)
        kinds[event.pk] = name
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(after)
    new = executor.loader.project_state(after).apps
    got = dict(new.get_model("registry", "ReminderLog").objects.values_list("adverse_event_id", "kind"))
    assert {kinds[pk]: kind for pk, kind in got.items()} == {
        "sae": "safety_alert", "sade": "safety_sade", "usade": "safety_usade"}
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())

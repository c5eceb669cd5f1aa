"""Migration 0020 makes the missed-visit reason (issue 20) and the visit-not-done reason
(issue 18) one field: missed_reason's value moves into visit_missing, a given
visit_missing stands, and the way back restores missed_reason."""

import datetime

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from tests.mailserver import restore_reference_data

pytestmark = pytest.mark.django_db(transaction=True)
BEFORE = [("registry", "0017_reminderlog_kinds")]
AFTER = [("registry", "0020_dm_more")]


def migrate(target):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(target)
    return executor.loader.project_state(target).apps


def test_missed_reason_moves_into_visit_missing_and_back():
    old = migrate(BEFORE)
    Site, Patient = old.get_model("registry", "Site"), old.get_model("registry", "Patient")
    site = Site.objects.create(code="MIG", name="Migration", country="NL")
    patient = Patient.objects.create(registry_id="MIG-0001", site=site, sex="F", birth_year=1970,
                                     consent_date=datetime.date(2020, 1, 1), etiology="traumatic",
                                     diagnosis="pn")
    Visit = old.get_model("registry", "Visit")
    for timepoint, missed, missing in (("m1", "unreachable", ""), ("m3", "declined", ""),
                                       ("m6", "too_ill", "lost_to_follow_up"), ("m12", "", "")):
        Visit.objects.create(patient=patient, timepoint=timepoint, status="missed",
                             missed_reason=missed, visit_missing=missing)
    new = migrate(AFTER)
    rows = dict(new.get_model("registry", "Visit").objects.values_list("timepoint", "visit_missing"))
    assert rows == {"m1": "unreachable", "m3": "declined", "m6": "lost_to_follow_up", "m12": ""}
    assert "missed_reason" not in {f.name for f in new.get_model("registry", "Visit")._meta.fields}
    back = migrate(BEFORE)
    rows = {t: (r, m) for t, r, m in back.get_model("registry", "Visit").objects.values_list(
        "timepoint", "missed_reason", "visit_missing")}
    assert rows == {"m1": ("unreachable", ""), "m3": ("declined", "declined"),
                    "m6": ("", "lost_to_follow_up"), "m12": ("", "")}
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.fixture(autouse=True)
def reference_data():
    yield
    restore_reference_data()

"""Byte-for-byte guard of the fast paths (issue 21): on PostgreSQL the REDCap record export,
the REST JSON export and the FHIR bulk files are written by the database; they must be
exactly what the Python paths (the reference, and the SQLite path) write.

The cohort is the demo cohort's generator (a few dozen synthetic patients over the demo
sites) plus the channels' hand-made cohort (pain scores, an explant, an unscheduled visit,
events), a patient without visits, two unscheduled visits on one day and an implant ref holding
CSV and JSON metacharacters.
"""

import datetime
import json
from functools import partial

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from registry.interop import redcap as redcap_view
from registry.models import Patient, Visit
from registry.models.instruments import SCORES, VALUE_SETS
from registry.services import exports, missing, redcap
from registry.services.access import visible
from registry.services.audit import system_user
from registry.services.export_log import RowCounter
from registry.services.fhir.proms import fhir_id
from registry.services.fhir.resources import code_system
from registry.services.proms.answers import prom_answers_record
from registry.services.synthetic import synthetic_registry
from tests.conftest import needs_postgres
from tests.factories import copy_calls, make_implant, make_patient, make_visit

pytestmark = [pytest.mark.django_db, needs_postgres()]

TODAY = datetime.date(2026, 12, 1)


@pytest.fixture
def registry(cohort, site_a, nurse):
    synthetic_registry(patients=40, seed=2026, today=TODAY, actor=system_user())
    lonely = make_patient(site_a, actor=nurse, sex="F", birth_year=1929)  # no visit at all
    odd = make_patient(site_a, actor=nurse, etiology="postamputation", diagnosis="rlp_plp")
    implant = make_implant(odd, actor=nurse, ref='Q,"x\\y\'ü\tz', therapy="PNS")
    make_visit(odd, actor=nurse, nrs=6)
    for unscheduled in (None, implant):  # two instances of one repeating event
        make_visit(odd, unscheduled, actor=nurse, timepoint="unscheduled",
                   date_done=datetime.date(2020, 2, 20), nrs=7)
    m3 = make_visit(odd, implant, actor=nurse, timepoint="m3", date_done=datetime.date(2020, 6, 1), nrs=7,
                    opioid_mme=30, satisfaction=2)
    # Every missing-data reason, in each field that has one (REDCap writes its code in the field).
    m6 = make_visit(odd, implant, actor=nurse, timepoint="m6", date_done=datetime.date(2020, 9, 1), nrs=None,
                    nrs_missing="declined", satisfaction_missing="not_asked", pgic_missing="unknown",
                    opioid_mme_missing="not_applicable")
    make_visit(odd, implant, actor=nurse, timepoint="m12", status="missed", date_done=None, nrs=None,
               visit_missing="lost_to_follow_up")
    m24 = make_visit(odd, implant, actor=nurse, timepoint="m24", date_done=datetime.date(2022, 6, 1),
                     nrs=None, nrs_missing="lost_to_follow_up", pgic=3)
    # PROMs at the edges of their missing-item rules: scored with items missing (ODI 8 of 10,
    # BPI interference 4 of 7, HADS 6 of 7 each), not scored (BPI severity 3 of 4, PCS 12 of
    # 13, an EQ-5D-5L state without one dimension), and an index that is 0 or below.
    record = partial(prom_answers_record, actor=nurse)
    record(visit=m3, instrument="eq5d5l", answers={"mo": 2, "sc": 5, "ua": 1, "pd": 4, "ad": 3, "vas": 55})
    record(visit=m3, instrument="odi", answers={f"s{n}": n % 6 for n in range(1, 9)})
    record(visit=m3, instrument="bpi_sf", answers={"worst": 8, "least": 2, "average": 5,
                                                   "general_activity": 7, "mood": 3, "walking": 6,
                                                   "sleep": 9})
    record(visit=m3, instrument="hads", answers={f"q{n}": n % 4 for n in range(1, 13)})
    record(visit=m3, instrument="pcs", answers={f"q{n}": n % 5 for n in range(1, 13)})
    record(visit=m3, instrument="pseq", answers={f"q{n}": 6 - n % 7 for n in range(1, 11)})
    record(visit=m6, instrument="eq5d5l", answers={"mo": 3, "sc": 2, "ua": 3, "pd": 5, "ad": 4})
    record(visit=m24, instrument="eq5d5l", answers={"mo": 5, "sc": 5, "ua": 5, "pd": 5, "vas": 0})
    record(visit=m24, instrument="pcs", answers={f"q{n}": 4 for n in range(1, 14)})
    # Answers the patient entered herself (the performer of her Observations).
    Visit.objects.filter(pk=m24.pk).update(entered_by="patient")
    # Device components (the REDCap repeating instrument): a removed IPG with a coded reason,
    # its successor, a lead whose model holds CSV and JSON metacharacters, and the
    # components of another patient's implant.
    from registry.models import DeviceComponent
    from registry.services.components import component_save

    for component in (
            DeviceComponent(implant=implant, kind="ipg", manufacturer="Abbott", model="Proclaim XR",
                            udi_di="05415067031853", rechargeable=False,
                            removed_on=datetime.date(2021, 3, 1), removal_reason="battery_depletion"),
            DeviceComponent(implant=implant, kind="ipg", manufacturer="Abbott", model="Proclaim XR",
                            implanted_on=datetime.date(2021, 3, 1)),
            DeviceComponent(implant=implant, kind="lead", model='Octrode, "8"\\ \'ü\'\t',
                            removed_on=datetime.date(2020, 9, 1), removal_reason="other",
                            removal_detail="fractured in a fall"),
            DeviceComponent(implant=make_implant(make_patient(site_a, actor=nurse), actor=nurse),
                            kind="extension"),
            # Control characters and backslashes in a device's texts (JSON's \u00XX escapes).
            DeviceComponent(implant=implant, kind="extension", manufacturer="Ac\x01me\x0b\x1f\x7f",
                            model="E\\v\x0b\\\x0b")):
        component_save(component=component, actor=nurse)
    return {"lonely": lonely, "odd": odd}


def _export(user, **options):
    return redcap.RecordExport(user=user, **options)


def _both(export_factory, record_type, fmt, label_headers=False):
    slow = b"".join(redcap_view.record_stream(export_factory(), record_type, fmt, RowCounter(),
                                              label_headers=label_headers, fast=False))
    counter = RowCounter()
    fast = b"".join(redcap_view.record_stream(export_factory(), record_type, fmt, counter,
                                              label_headers=label_headers, fast=True))
    return slow, fast, counter


def test_redcap_flat_json_escapes_control_characters_as_the_python_path(registry, data_manager):
    """A device text holding control characters, a backslash and a quote: the database's
    JSON escapes (to_json) are the Python path's (json.dumps), \\u00XX included."""
    slow, fast_bytes, counter = _both(lambda: _export(data_manager), "flat", "json")
    assert fast_bytes == slow
    for escaped in (rb'"Ac\u0001me\u000b\u001f' + b'\x7f"', rb'"E\\v\u000b\\\u000b"', rb'Q,\"x\\y'):
        assert escaped in slow, escaped
    assert counter.rows == len(json.loads(slow))


@pytest.mark.parametrize("record_type", ["flat", "eav"])
@pytest.mark.parametrize("fmt", ["csv", "json"])
@pytest.mark.parametrize("labels", [False, True])
def test_redcap_records_are_the_python_paths_bytes(registry, data_manager, record_type, fmt, labels,
                                                   monkeypatch):
    copies = copy_calls(monkeypatch)
    slow, fast, counter = _both(lambda: _export(data_manager, labels=labels), record_type, fmt)
    assert len(slow) > 10_000 and len(copies) == 1
    # The PROM forms: items, scores (a decimal one, a whole one), the value set, completeness.
    for text in (b"eq5d5l_mo", b"odi_score", b"hads_anxiety", b"pseq_total", b"eq5d5l_value_set",
                 b"bpi_sf_complete", b"comp_removal_reason", b"05415067031853", b"device_component_complete"):
        assert text in slow
    for reason in missing.VALUE_REASONS.values():  # every code is in the answer, as REDCap writes it
        assert (reason.label if labels else reason.redcap).encode() in slow
    assert fast == slow
    rows = slow.count(b"\n") - 1 if fmt == "csv" else len(json.loads(slow))
    assert counter.rows == rows


@pytest.mark.parametrize("options", [
    {"fields": ["record_id", "nrs", "ae_category", "sex"]},
    {"fields": ["nrs"]},  # no record_id column at all
    {"forms": ["visit"]},
    {"forms": ["enrolment"], "labels": True},
    {"forms": ["adverse_event"]},
    {"events": ["m3_arm_1", "adverse_events_arm_1"]},
    {"events": ["baseline_arm_1"], "fields": ["record_id", "visit_complete", "enrolment_complete"]},
    {"events": ["unscheduled_arm_1"], "labels": True},
    {"forms": ["eq5d5l", "bpi_sf"]},  # PROM forms only
    {"fields": ["record_id", "odi_score", "eq5d5l_value_set", "hads_complete"], "labels": True},
    {"forms": ["device_component"]},  # the components' repeating instrument
    {"forms": ["device_component", "adverse_event"], "labels": True},
    {"events": ["device_components_arm_1", "m3_arm_1"]},
    {"fields": ["record_id", "comp_udi_di", "comp_removed_day", "device_component_complete"]},
], ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
@pytest.mark.parametrize("record_type", ["flat", "eav"])
def test_redcap_record_options_are_the_python_paths_bytes(registry, data_manager, options, record_type):
    for fmt in ("csv", "json"):
        slow, fast, _ = _both(lambda: _export(data_manager, **options), record_type, fmt)
        assert fast == slow, (fmt, options)


def test_redcap_records_for_some_records_a_date_range_and_label_headers(registry, data_manager):
    ids = list(Patient.objects.order_by("-registry_id").values_list("registry_id", flat=True)[:5])
    ids.append(registry["odd"].registry_id)
    slow, fast, _ = _both(lambda: _export(data_manager, records=ids), "flat", "csv")
    assert fast == slow and registry["odd"].registry_id.encode() in fast
    begin = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1)
    slow, fast, _ = _both(lambda: _export(data_manager, date_begin=begin), "flat", "json")
    assert fast == slow
    slow, fast, _ = _both(lambda: _export(data_manager, labels=True), "flat", "csv", label_headers=True)
    assert fast == slow and fast.startswith(b"Registry id")
    slow, fast, _ = _both(lambda: _export(data_manager, records=["NOPE-0000"]), "flat", "json")
    assert fast == slow == b"[]"
    slow, fast, _ = _both(lambda: _export(data_manager, records=["NOPE-0000"]), "eav", "csv")
    assert fast == slow


@pytest.mark.parametrize("who", ["nurse", "investigator", "nurse_b"])
def test_redcap_records_are_scoped_as_the_python_path(registry, who, request):
    user = request.getfixturevalue(who)
    for record_type in ("flat", "eav"):
        slow, fast, _ = _both(lambda u=user: _export(u), record_type, "csv")
        assert fast == slow


def test_redcap_http_record_export_is_the_python_paths_bytes(registry, client, data_manager):
    from registry.services.tokens import api_token_create

    token = api_token_create(user=data_manager, label="guard")
    response = client.post("/redcap/api/", {"token": token, "content": "record", "format": "csv",
                                            "type": "flat", "rawOrLabel": "label"})
    assert response.status_code == 200
    # Read the answer first: its COPY started before the status line and holds the connection.
    body = b"".join(response.streaming_content)
    # The default answer holds the PROM forms, written by PostgreSQL too: the Python path's bytes.
    slow = b"".join(redcap_view.record_stream(redcap.RecordExport(user=data_manager, labels=True), "flat",
                                              "csv", RowCounter(), fast=False))
    assert body == slow and b"eq5d5l_mo" in body



def test_redcap_record_export_runs_a_fixed_number_of_queries(registry, data_manager, monkeypatch):
    # Batches of 2 patients: the Python path would grow with the registry, the SQL path must not.
    monkeypatch.setattr(redcap.records, "BATCH", 2)
    copies = copy_calls(monkeypatch)
    some = list(Patient.objects.order_by("registry_id").values_list("registry_id", flat=True)[:3])
    counts = []
    for records in (some, [], some):
        with CaptureQueriesContext(connection) as queries:
            body = b"".join(redcap_view.record_stream(_export(data_manager, records=records), "flat",
                                                      "csv", RowCounter(), fast=True))
        assert body.count(b"\n") > 3
        counts.append(len(queries))
    # The user's roles (cached on the user after the first), the event list; then one COPY each.
    assert counts[1] == counts[2] <= 4 and counts[0] <= counts[1] + 1
    assert len(copies) == 3


@pytest.mark.parametrize("dataset", ["visits", "adverse-events"])
@pytest.mark.parametrize("dates", ["relative", "iso"])
def test_rest_json_export_is_the_python_paths_bytes(registry, data_manager, dataset, dates):
    model = Visit if dataset == "visits" else exports.datasets.get(dataset).model
    queryset = visible(model.objects.all(), data_manager)
    slow = b"".join(exports.export_json_stream(dataset, queryset, dates=dates, sql=False))
    counter = RowCounter()
    fast = b"".join(exports.export_json_stream(dataset, queryset, dates=dates, sql=True, counter=counter))
    assert len(slow) > 1000
    assert fast == slow
    assert counter.rows == model.objects.count()
    empty = queryset.filter(pk__lt=0)
    assert (b"".join(exports.export_json_stream(dataset, empty, dates=dates, sql=True))
            == b"".join(exports.export_json_stream(dataset, empty, dates=dates, sql=False)))


def test_rest_json_export_runs_one_query(registry, data_manager, monkeypatch):
    copies = copy_calls(monkeypatch)
    for limit in (3, 1000):
        queryset = visible(Visit.objects.all(), data_manager).filter(
            pk__in=Visit.objects.order_by("pk").values("pk")[:limit])
        with CaptureQueriesContext(connection) as queries:
            b"".join(exports.export_json_stream("visits", queryset))
        assert len(queries) <= 1  # the user's roles, once
    assert len(copies) == 2


def _observations(user, sql, **params):
    from registry.services import fhir

    found = fhir.fhir_search(user=user, resource_type="Observation", params=params)
    counter = RowCounter()
    body = b"".join(found.ndjson(counter, sql=sql))
    return [json.loads(line) for line in body.splitlines()], counter


@pytest.mark.parametrize("params", [{}, {"code": ["pgic"]}, {"code": ["http://loinc.org|72514-3"]},
                                    {"date": ["ge2021-01-01"]}, {"code": ["nothing"]}],
                         ids=lambda p: ",".join(f"{k}={v[0]}" for k, v in p.items()) or "all")
def test_fhir_bulk_observations_are_the_python_paths_resources(registry, data_manager, params, monkeypatch):
    from fhir.resources.observation import Observation

    copies = copy_calls(monkeypatch)
    slow, _ = _observations(data_manager, False, **params)
    fast, counter = _observations(data_manager, None, **params)
    assert _texts(fast) == _texts(slow)
    assert counter.rows == len(fast) and len(copies) == 1
    if not params:
        assert len(slow) > 500
        kinds = {r["id"].split("-", 2)[-1] if r["id"].startswith("visit") else "painscore" for r in fast}
        assert kinds == {"nrs", "satisfaction", "pgic", "painscore", *(fhir_id(c) for c in SCORES)}
        assert any("performer" in r for r in fast) and any("performer" not in r for r in fast)
        absent = {r["dataAbsentReason"]["coding"][0]["code"] for r in fast if "dataAbsentReason" in r}
        assert {"asked-declined", "not-asked", "unknown", "not-performed"} <= absent
        assert any("focus" in r for r in fast) and any("focus" not in r for r in fast)
        assert any(r.get("focus", [{}])[0].get("reference", "").endswith('\\y\'ü\tz') for r in fast)
    for resource in fast[:50] + fast[-50:]:
        Observation.model_validate(resource)


def _texts(resources):
    """Each resource as JSON text: tells 20 from 20.0 and 0.0 from -0.0 (== does not)."""
    return [json.dumps(r, sort_keys=False) for r in resources]


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_fhir_bulk_prom_scores_are_the_python_paths_resources(registry, data_manager, value_set, monkeypatch):
    from registry.services import fhir

    copies = copy_calls(monkeypatch)
    odd = registry["odd"].registry_id

    def run(sql, **params):
        found = fhir.fhir_search(user=data_manager, resource_type="Observation", params=params)
        found.value_set = value_set  # as for a user of that country's sites
        counter = RowCounter()
        body = b"".join(found.ndjson(counter, sql=sql))
        return [json.loads(line) for line in body.splitlines()], counter

    prom = code_system("prom-score")
    for params in ({"patient": [odd]}, {"code": ["eq5d5l_index,odi_score"]},
                   {"code": [f"{prom}|hads_anxiety", "pgic"]},
                   {"code": [f"{prom}|pcs_total"], "patient": [odd]}, {}):
        slow, _ = run(False, **params)
        fast, counter = run(None, **params)
        assert _texts(fast) == _texts(slow) and counter.rows == len(fast), params
    assert len(copies) == 5
    scored = {r["id"].split("-", 2)[-1]: r for r in fast if r["subject"]["reference"] == f"Patient/{odd}"
              and r["id"].split("-", 2)[-1] in {fhir_id(c) for c in SCORES}}
    # Scored with items missing; not scored below the rule (BPI severity, the m3 PCS).
    assert {"odi-score", "bpi-interference", "hads-anxiety", "hads-depression", "pseq-total"} <= set(scored)
    assert "bpi-severity" not in scored
    indexes = [r for r in fast if r["id"].endswith("-eq5d5l-index")]
    assert len({r["method"]["text"] for r in indexes}) == 1
    assert f"value set {value_set} " in indexes[0]["method"]["text"]
    assert len(slow) > 500


@pytest.mark.parametrize("params", [{}, {"code": ["pgic"]}, {"code": ["eq5d5l_index,odi_score"]}],
                         ids=lambda p: ",".join(f"{k}={v[0]}" for k, v in p.items()) or "all")
def test_fhir_bulk_observations_with_shifted_dates_are_the_python_paths_resources(
        registry, investigator, data_manager, params, monkeypatch):
    copies = copy_calls(monkeypatch)
    slow, _ = _observations(investigator, False, **params)
    fast, counter = _observations(investigator, None, **params)
    assert _texts(fast) == _texts(slow) and counter.rows == len(fast) and len(copies) == 1
    assert slow and all("lastUpdated" not in r["meta"] for r in fast)
    # The days are the patient's shift back from the real ones, and not the real ones.
    real = {r["id"]: r for r in _observations(data_manager, False, **params)[0]}
    moved = [(datetime.date.fromisoformat(real[r["id"]]["effectiveDateTime"])
              - datetime.date.fromisoformat(r["effectiveDateTime"])).days
             for r in fast if "effectiveDateTime" in r]
    assert moved and all(0 <= days < 365 for days in moved) and any(moved)


def test_fhir_bulk_observations_by_id_take_the_python_path(registry, data_manager, monkeypatch):
    copies = copy_calls(monkeypatch)
    some, _ = _observations(data_manager, False)
    by_id, _ = _observations(data_manager, None, _id=[some[0]["id"]])
    assert len(by_id) == 1 and not copies


@pytest.mark.parametrize("who", ["data_manager", "investigator"])
def test_fhir_bulk_observations_run_one_query(registry, who, request, monkeypatch):
    user = request.getfixturevalue(who)
    copies = copy_calls(monkeypatch)
    some = list(visible(Patient.objects.all(), user).order_by("registry_id")
                .values_list("registry_id", flat=True))
    for patients in (some[:1], some):
        with CaptureQueriesContext(connection) as queries:
            found, _ = _observations(user, None, patient=[",".join(patients)])
        assert found
        # The user's roles, once; her sites' countries (the EQ-5D-5L value set of the PROM
        # scores); for shifted dates the patients' registry ids (their shifts).
        assert len(queries) <= (2 if who == "data_manager" else 3)
    assert len(copies) == 2

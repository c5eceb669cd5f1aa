"""The REDCap-compatible endpoint: contents, record options, error shapes, logging."""

import csv
import datetime
import io
import json
from urllib.parse import urlencode

import pytest
from django.conf import settings
from django.test import override_settings
from django.utils import timezone

from registry.models import ExportLog, Patient, Visit, choices
from registry.services import redcap
from registry.services.audit import record_save

URL = "/redcap/api/"


def post(client, token, **data):
    return client.post(URL, {"token": token, **data})


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def records(client, token, **data):
    response = post(client, token, content="record", format="json", **data)
    assert response.status_code == 200, body(response)
    return json.loads(body(response))


def test_every_registry_code_has_a_stable_redcap_raw_value():
    # REDCap's raw values are the registry's one frozen numbering (models.choices).
    for name, codes in choices.NUMBERING.items():
        assert sorted(codes) == sorted(choices.CODE_LISTS[name].values), name
    # Raw values are positions: these pins catch a reordering.
    assert redcap.FIELD_BY_NAME["sex"].raw("M") == "1"
    assert redcap.FIELD_BY_NAME["sex"].metadata()["select_choices_or_calculations"] == (
        "1, Male | 2, Female | 3, Other / non-binary | 4, Unknown")
    assert redcap.FIELD_BY_NAME["ae_outcome"].raw("unknown") == "5"


def test_the_project_answers_the_structure_contents(client, cohort, token_a):
    assert body(post(client, token_a, content="version")) == redcap.REDCAP_VERSION.encode()
    project = json.loads(body(post(client, token_a, content="project", format="json")))
    assert project["is_longitudinal"] == 1 and project["has_repeating_instruments_or_events"] == 1
    events = json.loads(body(post(client, token_a, content="event", format="json")))
    names = [e["unique_event_name"] for e in events]
    assert names[:2] == ["baseline_arm_1", "trial_end_arm_1"]
    assert names.index("m3_arm_1") < names.index("m12_arm_1") < names.index("unscheduled_arm_1")
    mapping = json.loads(body(post(client, token_a, content="formEventMapping", format="json")))
    assert {"arm_num": 1, "unique_event_name": "baseline_arm_1", "form": "enrolment"} in mapping
    assert {m["unique_event_name"] for m in mapping} == set(names)
    repeating = json.loads(body(post(client, token_a, content="repeatingFormsEvents", format="json")))
    assert {"event_name": "adverse_events_arm_1", "form_name": "adverse_event",
            "custom_form_label": "[ae_category]"} in repeating
    instruments = json.loads(body(post(client, token_a, content="instrument", format="json")))
    assert [i["instrument_name"] for i in instruments] == [
        "enrolment", "visit", "eq5d5l", "odi", "bpi_sf", "hads", "pcs", "pseq", "adverse_event",
        "device_component"]
    arms = json.loads(body(post(client, token_a, content="arm", format="json")))
    assert arms == [{"arm_num": 1, "name": "Arm 1"}]


def test_metadata_csv_has_redcaps_eighteen_columns(client, token_a):
    response = post(client, token_a, content="metadata", format="csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert tuple(rows[0]) == redcap.METADATA_COLUMNS
    assert rows[1][:4] == ["record_id", "enrolment", "", "text"]
    narrowed = json.loads(post(client, token_a, content="metadata", format="json",
                               **{"forms[0]": "adverse_event"}).content)
    assert {m["form_name"] for m in narrowed} == {"adverse_event"}


@pytest.mark.parametrize("data, message", [
    ({"content": "user"}, "content"),
    ({"content": "record", "action": "import", "data": "[]"}, "read-only"),
    ({"content": "record", "action": "delete", "records[0]": "AAA-0001"}, "read-only"),
    ({"content": "record", "fields[0]": "nope"}, '"fields" are not valid'),
    ({"content": "record", "events[]": "m7_arm_1"}, '"events" are not valid'),
    ({"content": "record", "dateRangeBegin": "yesterday"}, "dateRangeBegin"),
    ({"content": "record", "type": "wide"}, "type"),
])
def test_refusals_come_in_redcaps_error_shape_with_status_400(client, cohort, token_a, data,
                                                              message):
    response = post(client, token_a, format="json", **data)
    assert response.status_code == 400
    assert message in json.loads(response.content)["error"]


def test_errors_follow_return_format(client, token_a):
    as_csv = post(client, token_a, content="survey", format="json", returnFormat="csv")
    assert as_csv.status_code == 400 and as_csv.content.startswith(b"ERROR: ")
    as_xml = post(client, token_a, content="survey", returnFormat="xml")
    assert b"<error>" in as_xml.content
    xml_records = post(client, token_a, content="record", format="xml", returnFormat="json")
    assert xml_records.status_code == 400 and "xml" in json.loads(xml_records.content)["error"]


def test_a_bad_token_is_refused_like_redcap_does(client, cohort):
    response = client.post(URL, {"token": "0" * 32, "content": "record", "format": "json"})
    assert response.status_code == 403
    assert "permissions" in json.loads(response.content)["error"]
    assert client.get(URL).status_code == 405


def test_record_options_narrow_the_export(client, cohort, token_a):
    first, second = (p.registry_id for p in cohort["a"])
    only_second = records(client, token_a, **{"records[0]": second})
    assert {r["record_id"] for r in only_second} == {second}
    nrs_only = records(client, token_a, **{"fields[0]": "record_id", "fields[1]": "nrs",
                                           "events[0]": "m12_arm_1"})
    assert set(nrs_only[0]) == {"record_id", "redcap_event_name", "redcap_repeat_instrument",
                                "redcap_repeat_instance", "nrs"}
    assert {r["redcap_event_name"] for r in nrs_only} == {"m12_arm_1"}
    assert [r["nrs"] for r in nrs_only if r["record_id"] == second] == ["4"]
    enrolment = records(client, token_a, **{"forms[]": "enrolment"})
    # REDCap leaves the record id out unless its field or form is asked for; here it is.
    assert {r["redcap_event_name"] for r in enrolment} == {"baseline_arm_1"}
    assert [r["enrolment_complete"] for r in enrolment] == ["2", "2"]
    no_id = records(client, token_a, **{"fields[]": "sex"})
    assert "record_id" not in no_id[0]


def test_labels_and_label_headers(client, cohort, token_a):
    rows = records(client, token_a, rawOrLabel="label", **{"forms[]": "enrolment"})
    assert rows[0]["sex"] == "Male" and rows[0]["enrolment_complete"] == "Complete"
    assert rows[0]["redcap_event_name"] == "Baseline (Arm 1: Arm 1)"
    response = post(client, token_a, content="record", format="csv", rawOrLabelHeaders="label",
                    exportCheckboxLabel="true", **{"forms[]": "enrolment"})
    header = next(csv.reader(io.StringIO(body(response).decode())))
    assert header[:3] == ["Registry id (pseudonym)", "Event Name", "Repeat Instrument"]


def test_eav_gives_one_row_per_value(client, cohort, token_a):
    flat = records(client, token_a)
    eav = records(client, token_a, type="eav")
    values = sum(1 for r in flat for k, v in r.items() if v != "" and k not in (
        "record_id", "redcap_event_name", "redcap_repeat_instrument", "redcap_repeat_instance"))
    assert len(eav) == values
    assert set(eav[0]) == {"record", "redcap_event_name", "redcap_repeat_instrument",
                           "redcap_repeat_instance", "field_name", "value"}
    response = post(client, token_a, content="record", format="csv", type="eav")
    assert body(response).decode().splitlines()[0] == (
        "record,redcap_event_name,redcap_repeat_instrument,redcap_repeat_instance,field_name,value")


def test_date_range_returns_whole_records_changed_in_the_window(client, cohort, token_a, nurse):
    second = cohort["a"][1]
    Patient.objects.filter(site__code="AAA").update(updated_at=timezone.now() - datetime.timedelta(days=9))
    Visit.objects.filter(patient__site__code="AAA").update(
        updated_at=timezone.now() - datetime.timedelta(days=9))
    from registry.models import AdverseEvent, Implant, PainScore

    AdverseEvent.objects.update(updated_at=timezone.now() - datetime.timedelta(days=9))
    Implant.objects.update(updated_at=timezone.now() - datetime.timedelta(days=9))
    PainScore.objects.update(updated_at=timezone.now() - datetime.timedelta(days=9))
    visit = Visit.objects.get(patient=second, timepoint="m12")
    visit.opioid_mme = 30
    record_save(visit, actor=nurse, reason="late entry")
    since = (timezone.localtime() - datetime.timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S")
    changed = records(client, token_a, dateRangeBegin=since)
    assert {r["record_id"] for r in changed} == {second.registry_id}
    assert len(changed) == len(records(client, token_a, **{"records[]": second.registry_id}))
    # Both records had changes before `since`; nothing was changed 20 days ago.
    before = records(client, token_a, dateRangeEnd=since)
    assert {r["record_id"] for r in before} == {p.registry_id for p in cohort["a"]}
    long_ago = (timezone.localtime() - datetime.timedelta(days=20)).strftime("%Y-%m-%d %H:%M:%S")
    assert records(client, token_a, dateRangeEnd=long_ago) == []


def test_record_exports_stream_and_are_logged(client, cohort, token_a, nurse):
    response = post(client, token_a, content="record", format="csv", **{"records[]": "AAA-0002"})
    assert response.streaming
    lines = body(response).decode().splitlines()
    log = ExportLog.objects.get(channel="redcap")
    assert (log.user, log.dataset, log.format, log.rows) == (nurse, "record", "flat-csv", len(lines) - 1)
    assert log.filters == {"records": ["AAA-0002"]} and log.finished_at is not None


def test_the_record_export_runs_a_bounded_number_of_queries(client, cohort, token_dm,
                                                            django_assert_max_num_queries):
    with django_assert_max_num_queries(16):
        rows = records(client, token_dm)
    assert len({r["record_id"] for r in rows}) == 3


def _urlencoded(client, pairs, **headers):
    return client.post(URL, urlencode(pairs), content_type="application/x-www-form-urlencoded",
                       **headers)


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
@pytest.mark.parametrize("key", ["records[]", "records[{i}]"])  # raw REDCap, PyCap
def test_a_selection_of_1500_records_is_exported(client, cohort, token_a, encoding, key):
    wanted = [p.registry_id for p in cohort["a"]]
    selection = [f"AAA-{9000 + i}" for i in range(1498)] + wanted
    pairs = [("token", token_a), ("content", "record"), ("format", "json")]
    pairs += [(key.format(i=i), value) for i, value in enumerate(selection)]
    if encoding == "urlencoded":
        response = _urlencoded(client, pairs)
    else:
        data = {}
        for name, value in pairs:
            data.setdefault(name, []).append(value)
        response = client.post(URL, data)
    assert response.status_code == 200, body(response)
    assert {r["record_id"] for r in json.loads(body(response))} == set(wanted)
    assert len(ExportLog.objects.get(channel="redcap").filters["records"]) == 1500


@pytest.mark.parametrize(("headers", "parse"), [
    ({"HTTP_ACCEPT": "application/json"}, lambda content: json.loads(content)["error"]),
    ({}, lambda content: content.decode().split("<error>")[1]),  # REDCap's default: xml
], ids=["accept-json", "default-xml"])
def test_more_form_fields_than_the_limit_get_redcaps_error_shape(client, cohort, token_a, headers,
                                                                 parse):
    limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
    assert 1500 < limit <= 50_000  # raised for REDCap selections, still bounded
    pairs = [("token", token_a), ("content", "record"), ("returnFormat", "json")]
    pairs += [("records[]", f"AAA-{i}") for i in range(limit)]
    response = _urlencoded(client, pairs, **headers)
    assert response.status_code == 400
    assert f"more than {limit} form fields" in parse(response.content)
    assert not ExportLog.objects.exists()


def test_an_oversized_or_broken_body_gets_redcaps_error_shape(client, cohort, token_a):
    with override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000):
        response = _urlencoded(client, [("token", token_a), ("records[]", "A" * 2000)],
                               HTTP_ACCEPT="application/json")
    assert response.status_code == 400
    assert "larger than 1000 bytes" in json.loads(response.content)["error"]
    broken = client.post(URL, b"--x\r\nnot a part", content_type="multipart/form-data",
                         HTTP_ACCEPT="application/json")
    assert broken.status_code == 400
    assert "could not be read as a form" in json.loads(broken.content)["error"]

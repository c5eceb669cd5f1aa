"""The attack of issue 15: a nurse records a visit done today; the investigator reads its
shifted `date_done` and any real record time next to it, subtracts, and has the shift.
Every channel she can use is tried: the REST resources and exports, REDCap, FHIR
searches, reads and bulk files. Incremental pulls must still work without echoing
a real time back."""

import datetime
import json

import pytest
from django.test import Client
from rest_framework.test import APIClient

from registry.services import deid

from .conftest import leaked

pytestmark = pytest.mark.django_db

RESOURCES = ["patients", "implants", "visits", "adverse-events"]


def api(token):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def headers_text(response) -> str:
    return "\n".join(f"{k}: {v}" for k, v in response.headers.items())


def test_the_attack_works_on_what_a_nurse_sees(entered_today, nurse_token):
    # The control: the day is there for a nurse (real dates), so the probe can find it.
    response = api(nurse_token).get("/api/v1/visits/")
    assert leaked(response.content.decode(), entered_today)


@pytest.mark.parametrize("resource", RESOURCES)
def test_no_rest_resource_gives_an_investigator_a_real_record_time(entered_today, investigator_token,
                                                                   resource):
    response = api(investigator_token).get(f"/api/v1/{resource}/?page_size=1000")
    assert response.status_code == 200, response.content
    rows = response.json()["results"]
    assert rows
    assert all(row["updated_at"] is None for row in rows)
    assert not leaked(response.content.decode(), entered_today)
    assert not leaked(headers_text(response), entered_today)


def test_the_shifted_visit_date_and_the_interval_are_still_there(entered_today, investigator_token):
    rows = api(investigator_token).get("/api/v1/visits/?timepoint=unscheduled").json()["results"]
    shift = deid.date_shift_days(entered_today["patient"].registry_id)
    assert rows[0]["date_done"] == (entered_today["today"] - datetime.timedelta(days=shift)).isoformat()
    assert rows[0]["days_from_implant"] == (entered_today["today"] - datetime.date(2020, 3, 1)).days


@pytest.mark.parametrize("resource", RESOURCES)
def test_updated_since_still_pulls_changes_on_the_real_clock(entered_today, investigator_token,
                                                             resource):
    client = api(investigator_token)
    since = (entered_today["before"] - datetime.timedelta(seconds=1)).isoformat()
    later = (entered_today["after"] + datetime.timedelta(minutes=5)).isoformat()
    changed = client.get(f"/api/v1/{resource}/", {"updated_since": since})
    assert changed.status_code == 200, changed.content
    nothing = client.get(f"/api/v1/{resource}/", {"updated_since": later})
    assert nothing.status_code == 200, nothing.content
    assert changed.json()["results"]
    if resource == "visits":
        assert entered_today["visit"].pk in {row["id"] for row in changed.json()["results"]}
    assert nothing.json()["results"] == []
    assert not leaked(changed.content.decode(), entered_today)


@pytest.mark.parametrize("fmt", ["csv", "json", "xlsx"])
@pytest.mark.parametrize("dataset", ["visits", "adverse-events"])
def test_no_export_file_gives_an_investigator_the_real_day(entered_today, investigator_token,
                                                           dataset, fmt):
    response = api(investigator_token).get(f"/api/v1/exports/{dataset}/?format={fmt}")
    assert response.status_code == 200
    content = body(response)
    if fmt == "xlsx":
        import io

        import openpyxl

        book = openpyxl.load_workbook(io.BytesIO(content), read_only=True)
        content = "\n".join(str(cell) for sheet in book for row in sheet.iter_rows(values_only=True)
                            for cell in row).encode()
    assert not leaked(content.decode(), entered_today)
    # Investigators get intervals (no calendar dates): today's row is there, as days.
    assert str((entered_today["today"] - datetime.date(2020, 3, 1)).days) in content.decode()


def redcap(token, **data):
    response = Client().post("/redcap/api/", {"token": token, "content": "record", **data})
    assert response.status_code == 200, body(response)
    return body(response).decode()


@pytest.mark.parametrize("kind", ["flat", "eav"])
def test_no_redcap_record_export_gives_an_investigator_the_real_day(entered_today, investigator_token,
                                                                    kind):
    text = redcap(investigator_token, format="json", type=kind)
    assert json.loads(text)
    assert not leaked(text, entered_today)


def test_redcap_date_range_pulls_on_the_real_clock_without_echoing_it(entered_today, investigator_token):
    def stamp(moment):
        from django.utils import timezone

        return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S")

    rid = entered_today["patient"].registry_id
    begin = stamp(entered_today["before"] - datetime.timedelta(seconds=1))
    changed = redcap(investigator_token, format="json", dateRangeBegin=begin)
    assert {row["record_id"] for row in json.loads(changed)} == {rid}
    later = stamp(entered_today["after"] + datetime.timedelta(minutes=5))
    assert json.loads(redcap(investigator_token, format="json", dateRangeBegin=later)) == []
    assert begin not in changed and not leaked(changed, entered_today)


def fhir(token, path, **params):
    response = Client().get(path, params, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200, body(response)
    return response


FHIR_TYPES = ["Patient", "ResearchSubject", "Device", "Procedure", "Observation", "AdverseEvent"]


@pytest.mark.parametrize("resource_type", FHIR_TYPES)
def test_no_fhir_resource_gives_an_investigator_meta_last_updated(entered_today, investigator_token,
                                                                  resource_type):
    bundle = json.loads(fhir(investigator_token, f"/fhir/{resource_type}", _count=1000).content)
    resources = [entry["resource"] for entry in bundle["entry"]]
    assert resources
    for resource in resources:
        assert "lastUpdated" not in resource.get("meta", {}), resource["id"]
        # The bundle's own timestamp is when it was answered, which the client knows; the
        # resources carry nothing of the patient's real clock.
        assert not leaked(json.dumps(resource), entered_today), resource["id"]
    read = json.loads(fhir(investigator_token, f"/fhir/{resource_type}/{resources[0]['id']}").content)
    assert "lastUpdated" not in read.get("meta", {})


def test_fhir_last_updated_and_since_still_select_on_the_real_clock(entered_today, investigator_token):
    before = (entered_today["before"] - datetime.timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    later = (entered_today["after"] + datetime.timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    # Only the visit and the event were saved after `before`... and the patient, implant
    # and the baseline were saved within the same test, so look for the event only.
    changed = json.loads(fhir(investigator_token, "/fhir/AdverseEvent", _lastUpdated=f"ge{before}").content)
    assert [e["resource"]["id"] for e in changed["entry"]] == [f"ae-{entered_today['event'].pk}"]
    nothing = json.loads(fhir(investigator_token, "/fhir/AdverseEvent", _lastUpdated=f"ge{later}").content)
    assert not nothing.get("entry")
    kickoff = fhir(investigator_token, "/fhir/$export", _type="Observation", _since=before)
    manifest = json.loads(kickoff.content)
    for item in manifest["output"]:
        path = item["url"].split("://", 1)[-1].split("/", 1)[1]
        ndjson = body(Client().get(f"/{path}", HTTP_AUTHORIZATION=f"Bearer {investigator_token}")).decode()
        assert ndjson and "lastUpdated" not in ndjson
        assert not leaked(ndjson, entered_today)

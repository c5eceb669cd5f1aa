"""The safety tabulation: serious and related events with IMDRF codes, class, reporting rule
and deadline (the SQL equals services.safety.reportability), reported on time; CSV and
xlsx through the REST export framework and the admin action, logged, dates per role."""

import csv
import datetime
import io
import itertools
import json
import pathlib
import tempfile

import pytest

from registry.models import AdverseEvent, ExportLog
from registry.services import datasets
from registry.services.safety import event_reportability
from tests.api.conftest import client_for  # noqa: F401
from tests.factories import make_event

D = datetime.date
TODAY = datetime.date.today()


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def rows_of(response):
    return list(csv.DictReader(io.StringIO(body(response).decode())))


def serious(patient, implant, **kwargs):
    fields = {"onset_date": D(2021, 3, 1), "awareness_date": D(2021, 3, 4), "category": "infection_deep",
              "serious": True, "serious_criterion": "hospitalisation", "severity": "severe",
              "device_relatedness": "probable", "procedure_relatedness": "possible",
              "anticipated": True, "action": "explant", "outcome": "resolved",
              "resolved_on": D(2021, 4, 1), **kwargs}
    return make_event(patient, implant, **fields)


@pytest.mark.django_db
def test_the_sql_rule_and_deadline_equal_the_service(patient_a, implant_a, settings):
    settings.REGISTRY_SAFETY_DAYS_SERIOUS_INCIDENT = 15
    grid = itertools.product((True, False), ("not_related", "probable"), (True, False, None),
                             (False, True), ("resolved", "fatal"))
    for is_serious, related, anticipated, threat, outcome in grid:
        if outcome == "fatal" and not is_serious:
            continue  # a fatal event is serious (the model says so)
        serious(patient_a, implant_a, serious=is_serious,
                serious_criterion=("death" if outcome == "fatal" else "hospitalisation")
                if is_serious else "",
                device_relatedness=related, procedure_relatedness="not_related",
                anticipated=anticipated, public_health_threat=threat, outcome=outcome)
    events = AdverseEvent.objects.order_by("pk")
    table = datasets.EXPORTED["safety"]
    select = table.select(events, dates="iso")
    names = [c.name for c in table.columns_for(dates="iso")]
    got = {row[names.index("event_id")]: row for row in select}
    for event in events:
        report = event_reportability(event)
        row = got[event.pk]
        assert row[names.index("reporting_rule")] == report.rule, event
        assert row[names.index("deadline_days")] == report.days
        deadline = row[names.index("deadline")]
        assert (str(deadline) if deadline else None) == (report.deadline.isoformat()
                                                         if report.deadline else None)


@pytest.mark.django_db
def test_the_rest_tabulation_lists_serious_and_related_events_with_dates_per_role(
        client_for, patient_a, implant_a, investigator, data_manager):  # noqa: F811
    on_time = serious(patient_a, implant_a, reported_on=D(2021, 3, 10))  # SADE, 15 days
    late = serious(patient_a, implant_a, anticipated=False, reported_on=D(2021, 3, 30))  # USADE, 10
    unreported = serious(patient_a, implant_a, imdrf_device_problem="A0705")
    make_event(patient_a, implant_a, device_relatedness="not_related",
               procedure_relatedness="not_related")  # AE: not tabulated
    response = client_for(investigator).get("/api/v1/exports/safety/")
    assert response.status_code == 200
    rows = {int(r["event_id"]): r for r in rows_of(response)}
    assert set(rows) == {on_time.pk, late.pk, unreported.pk}
    assert (rows[on_time.pk]["reported_on_time"], rows[late.pk]["reported_on_time"],
            rows[unreported.pk]["reported_on_time"]) == ("yes", "no", "")
    assert (rows[late.pk]["reporting_rule"], rows[late.pk]["deadline_days"],
            rows[late.pk]["reported_days_after_awareness"]) == ("death_or_deterioration", "10", "26")
    assert rows[unreported.pk]["imdrf_device_problem"] == "A0705"
    assert rows[on_time.pk]["awareness_days_after_onset"] == "3"
    assert "deadline" not in rows[on_time.pk] and "2021-" not in body(response).decode()
    assert client_for(investigator).get("/api/v1/exports/safety/?dates=iso").status_code == 403
    iso = {int(r["event_id"]): r for r in rows_of(client_for(data_manager).get(
        "/api/v1/exports/safety/?dates=iso"))}
    assert (iso[on_time.pk]["deadline"], iso[late.pk]["deadline"]) == ("2021-03-19", "2021-03-14")
    assert ExportLog.objects.filter(dataset="safety").count() == 2  # the 403 is not an export


@pytest.mark.django_db
def test_the_tabulation_reads_back_as_xlsx(client_for, patient_a, implant_a, nurse, tmp_path):  # noqa: F811
    from openpyxl import load_workbook

    serious(patient_a, implant_a)
    path = tmp_path / "s.xlsx"
    path.write_bytes(body(client_for(nurse).get("/api/v1/exports/safety/?format=xlsx")))
    sheet = load_workbook(path).worksheets[0]
    header = [c.value for c in sheet[1]]
    row = dict(zip(header, [c.value for c in sheet[2]], strict=True))
    assert (row["iso_class"], row["reporting_rule"], row["deadline_days"]) == (
        "SADE", "serious_incident", 15)


@pytest.mark.django_db
def test_the_admin_action_downloads_the_tabulation_with_dates_per_role(
        client, patient_a, implant_a, nurse, investigator):
    event = serious(patient_a, implant_a)
    make_event(patient_a, implant_a, device_relatedness="not_related",
               procedure_relatedness="not_related")
    selected = [str(pk) for pk in AdverseEvent.objects.values_list("pk", flat=True)]
    client.force_login(nurse)
    response = client.post("/admin/registry/adverseevent/",
                           {"action": "safety_tabulation_csv", "_selected_action": selected})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = rows_of(response)
    assert [int(r["event_id"]) for r in rows] == [event.pk]
    assert rows[0]["deadline"] == "2021-03-19"  # the nurse sees real dates
    client.force_login(investigator)
    response = client.post("/admin/registry/adverseevent/",
                           {"action": "safety_tabulation_xlsx", "_selected_action": selected})
    assert response.status_code == 200 and response["Content-Disposition"].endswith('.xlsx"')
    log = ExportLog.objects.filter(dataset="safety").order_by("pk")
    assert [(e.channel, e.format, e.dates) for e in log] == [
        ("admin", "csv", "iso"), ("admin", "xlsx", "relative")]


def deficiency(patient, implant, actor, **kwargs):
    from registry.models.safety import DeviceDeficiency
    from registry.services.safety import device_deficiency_record

    fields = {"observed_on": D(2021, 5, 1), "awareness_date": D(2021, 5, 3), "kind": "malfunction",
              "might_have_led_to_serious": True, "imdrf_device_problem": "A0705", **kwargs}
    return device_deficiency_record(deficiency=DeviceDeficiency(patient=patient, implant=implant, **fields),
                                    actor=actor)


@pytest.mark.django_db
def test_a_deficiency_without_an_event_has_its_own_row_in_every_format(
        client_for, patient_a, implant_a, patient_b, nurse, nurse_b, investigator, data_manager):  # noqa: F811
    from openpyxl import load_workbook

    from tests.factories import make_implant

    event = serious(patient_a, implant_a)
    deficiency(patient_a, implant_a, nurse, adverse_event=event)  # counted on the event's row
    alone = deficiency(patient_a, implant_a, nurse, reported_on=D(2021, 5, 30))  # 27 days: late
    harmless = deficiency(patient_a, implant_a, nurse, might_have_led_to_serious=False,
                          kind="labelling", imdrf_device_problem="")
    other_site = deficiency(patient_b, make_implant(patient_b, actor=nurse_b), nurse_b)

    rows = rows_of(client_for(nurse).get("/api/v1/exports/safety/"))
    assert [(r["event_id"], r["deficiency_id"]) for r in rows] == [
        (str(event.pk), ""), ("", str(alone.pk)), ("", str(harmless.pk))]
    mine = {r["deficiency_id"]: r for r in rows}
    row = mine[str(alone.pk)]
    assert row["device_deficiencies"] == "" and rows[0]["device_deficiencies"] == "1"
    assert (row["registry_id"], row["site"], row["implant_ref"]) == (
        patient_a.registry_id, patient_a.site.code, implant_a.ref)
    assert (row["category"], row["iso_class"], row["serious"], row["outcome"]) == ("", "", "", "")
    assert (row["days_from_implant"], row["awareness_days_after_onset"]) == ("426", "2")
    assert (row["imdrf_device_problem"], row["reporting_rule"], row["deadline_days"],
            row["reported_days_after_awareness"], row["reported_on_time"]) == (
        "A0705", "serious_incident", "15", "27", "no")
    iso = {r["deficiency_id"]: r for r in rows_of(client_for(data_manager).get(
        "/api/v1/exports/safety/?dates=iso"))}[str(alone.pk)]
    assert (iso["onset_date"], iso["awareness_date"], iso["deadline"], iso["reported_on"]) == (
        "2021-05-01", "2021-05-03", "2021-05-18", "2021-05-30")
    assert (mine[str(harmless.pk)]["reporting_rule"], mine[str(harmless.pk)]["deadline_days"]) == (
        "not_reportable", "")

    # Investigators: their site only, no dates; the same rows as JSON.
    rows = rows_of(client_for(investigator).get("/api/v1/exports/safety/"))
    assert {r["deficiency_id"] for r in rows} == {"", str(alone.pk), str(harmless.pk)}
    assert "onset_date" not in rows[0] and "2021-" not in str(rows)
    listed = json.loads(body(client_for(investigator).get("/api/v1/exports/safety/?format=json")))
    assert [r["deficiency_id"] for r in listed] == [None, alone.pk, harmless.pk]
    everyone = rows_of(client_for(data_manager).get("/api/v1/exports/safety/"))
    assert str(other_site.pk) in {r["deficiency_id"] for r in everyone}
    # A filter on the event's own fields leaves the deficiencies out; a site filter keeps them.
    only = rows_of(client_for(data_manager).get("/api/v1/exports/safety/?category=infection_deep"))
    assert [r["event_id"] for r in only] == [str(event.pk)]
    site_b_rows = rows_of(client_for(data_manager).get(f"/api/v1/exports/safety/?site={patient_b.site.code}"))
    assert [r["deficiency_id"] for r in site_b_rows] == [str(other_site.pk)]

    # xlsx, and the admin action (the selected events' patients).
    path = pathlib.Path(tempfile.mkdtemp()) / "s.xlsx"
    path.write_bytes(body(client_for(nurse).get("/api/v1/exports/safety/?format=xlsx")))
    sheet = load_workbook(path).worksheets[0]
    header = [c.value for c in sheet[1]]
    xlsx = [dict(zip(header, [c.value for c in r], strict=True)) for r in sheet.iter_rows(min_row=2)]
    assert [r["deficiency_id"] for r in xlsx] == [None, alone.pk, harmless.pk]
    from django.test import Client

    admin = Client()
    admin.force_login(nurse)
    response = admin.post("/admin/registry/adverseevent/",
                          {"action": "safety_tabulation_csv", "_selected_action": [str(event.pk)]})
    assert [r["deficiency_id"] for r in rows_of(response)] == ["", str(alone.pk), str(harmless.pk)]

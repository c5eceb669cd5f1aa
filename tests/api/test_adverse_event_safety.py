"""The REST adverse-event resource carries the safety workflow: awareness date and
reported_on (shifted for investigators like every date), IMDRF codes, and the derived
reporting rule, deadline days and deadline (services.safety.reportability), read-only."""

import datetime

import pytest

from registry.services import deid
from registry.services.safety import event_reportability
from tests.factories import make_event

D = datetime.date
pytestmark = pytest.mark.django_db


@pytest.fixture
def usade(patient_a, implant_a):
    return make_event(patient_a, implant_a, onset_date=D(2021, 3, 1), awareness_date=D(2021, 3, 4),
                      category="infection_deep", serious=True, serious_criterion="hospitalisation",
                      severity="severe", device_relatedness="probable", procedure_relatedness="possible",
                      anticipated=False, action="explant", outcome="resolved", resolved_on=D(2021, 4, 1),
                      reported_on=D(2021, 3, 10), imdrf_device_problem="A0705",
                      imdrf_clinical_signs="E0101", imdrf_health_impact="F1905")


def one(client, event):
    response = client.get(f"/api/v1/adverse-events/{event.pk}/")
    assert response.status_code == 200, response.content
    return response.json()


@pytest.mark.parametrize("role", ["nurse", "data_manager"])
def test_users_who_see_real_dates_get_the_safety_fields_real(client_for, usade, request, role):
    body = one(client_for(request.getfixturevalue(role)), usade)
    report = event_reportability(usade)
    assert report.rule == "death_or_deterioration"
    assert (body["awareness_date"], body["reported_on"], body["reporting_deadline"]) == (
        "2021-03-04", "2021-03-10", report.deadline.isoformat())
    assert (body["reporting_rule"], body["deadline_days"]) == (report.rule, report.days)
    assert (body["imdrf_device_problem"], body["imdrf_clinical_signs"], body["imdrf_health_impact"]) == (
        "A0705", "E0101", "F1905")
    listed = client_for(request.getfixturevalue(role)).get("/api/v1/adverse-events/").json()["results"]
    assert listed[0]["reporting_rule"] == report.rule


def test_an_investigator_gets_them_shifted_by_the_patients_shift(client_for, usade, investigator):
    body = one(client_for(investigator), usade)
    days = deid.date_shift_days(usade.patient.registry_id)
    assert days  # else the test would prove nothing
    report = event_reportability(usade)

    def moved(value):
        return (value - datetime.timedelta(days=days)).isoformat()

    assert (body["awareness_date"], body["reported_on"], body["reporting_deadline"]) == (
        moved(D(2021, 3, 4)), moved(D(2021, 3, 10)), moved(report.deadline))
    assert (body["reporting_rule"], body["deadline_days"], body["imdrf_device_problem"]) == (
        report.rule, report.days, "A0705")
    assert "2021-03-04" not in str(body)


def test_the_safety_fields_are_read_only_and_in_the_schema(client_for, usade, nurse):
    from drf_spectacular.generators import SchemaGenerator

    response = client_for(nurse).patch(f"/api/v1/adverse-events/{usade.pk}/",
                                       {"reported_on": "2021-03-05"}, format="json")
    assert response.status_code in (403, 405)
    usade.refresh_from_db()
    assert usade.reported_on == D(2021, 3, 10)
    schema = SchemaGenerator().get_schema(request=None, public=True)
    props = schema["components"]["schemas"]["AdverseEvent"]["properties"]
    for name in ("awareness_date", "reported_on", "reporting_rule", "deadline_days", "reporting_deadline",
                 "imdrf_device_problem", "imdrf_clinical_signs", "imdrf_health_impact"):
        assert props[name].get("readOnly"), name

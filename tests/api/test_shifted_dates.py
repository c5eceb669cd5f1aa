"""Calendar dates in the REST resources and exports: real for nurses and data
managers, shifted per patient for investigators, and no date filters for them."""

import datetime

import pytest
from django.db import models

from registry.models import AdverseEvent, Implant, Patient, Visit
from registry.services import deid
from tests.factories import make_event, make_implant, make_patient

pytestmark = pytest.mark.django_db

MODELS = {"patients": Patient, "implants": Implant, "visits": Visit, "adverse-events": AdverseEvent}
# Every clinical calendar date each resource shows (all of them DateFields of the model).
DATES = {
    "patients": {"consent_date", "withdrawal_date"},
    "implants": {"trial_start", "trial_end", "implant_date", "explant_date"},
    "visits": {"target_date", "window_start", "window_end", "date_done"},
    "adverse-events": {"onset_date", "resolved_on", "awareness_date", "reported_on"},
}


@pytest.fixture
def dated(cohort, site_a, nurse):
    """The cohort plus a withdrawn patient with an explanted implant (every date filled somewhere)."""
    withdrawn = make_patient(site_a, actor=nurse, consent_date=datetime.date(2019, 5, 6),
                             consent_status="withdrawn", withdrawal_date=datetime.date(2021, 2, 3))
    make_implant(withdrawn, actor=nurse, trial_start=datetime.date(2019, 8, 1),
                 trial_end=datetime.date(2019, 8, 10), implant_date=datetime.date(2019, 9, 1),
                 explant_date=datetime.date(2020, 11, 30), explant_reason="infection")
    # The safety workflow's dates (awareness, report to the authority) filled on one event.
    make_event(withdrawn, onset_date=datetime.date(2020, 10, 1), awareness_date=datetime.date(2020, 10, 3),
               reported_on=datetime.date(2020, 10, 9), resolved_on=datetime.date(2020, 10, 20))
    return cohort


def rows(client, resource, query=""):
    response = client.get(f"/api/v1/{resource}/?page_size=1000{query}")
    assert response.status_code == 200, response.content
    return response.json()["results"]


def key_of(resource, row):
    return {"patients": "registry_id", "implants": "ref"}.get(resource, "id")


def db_row(resource, row):
    key = key_of(resource, row)
    return MODELS[resource].objects.get(**{key: row[key]})


def registry_id_of(obj):
    return obj.registry_id if isinstance(obj, Patient) else obj.patient.registry_id


def test_the_resources_show_every_model_date_field_we_shift(client_for, dated, data_manager):
    client = client_for(data_manager)
    for resource, model in MODELS.items():
        date_fields = {f.name for f in model._meta.get_fields() if isinstance(f, models.DateField)
                       and not isinstance(f, models.DateTimeField)}
        shown = set(rows(client, resource)[0])
        assert shown & date_fields == DATES[resource], resource


@pytest.mark.parametrize("resource", list(MODELS))
def test_an_investigator_sees_each_date_shifted_by_the_patients_shift(
        client_for, dated, investigator, resource):
    seen = {field: 0 for field in DATES[resource]}
    for row in rows(client_for(investigator), resource):
        obj = db_row(resource, row)
        days = deid.date_shift_days(registry_id_of(obj))
        for field in DATES[resource]:
            real = getattr(obj, field)
            expected = None if real is None else (real - datetime.timedelta(days=days)).isoformat()
            assert row[field] == expected, (resource, row[key_of(resource, row)], field)
            seen[field] += real is not None
    assert all(seen.values()), seen  # every date field was checked on a real value
    # The cohort's shifts are not all 0 (else this test would prove nothing).
    assert any(deid.date_shift_days(p.registry_id) for p in Patient.objects.all())


@pytest.mark.parametrize("role", ["data_manager", "nurse"])
@pytest.mark.parametrize("resource", list(MODELS))
def test_data_managers_and_nurses_see_real_dates(client_for, dated, request, role, resource):
    for row in rows(client_for(request.getfixturevalue(role)), resource):
        obj = db_row(resource, row)
        for field in DATES[resource]:
            real = getattr(obj, field)
            assert row[field] == (real.isoformat() if real else None)


def test_one_item_is_shifted_like_the_list(client_for, dated, investigator):
    client = client_for(investigator)
    visit = dated["a1_m3"]
    body = client.get(f"/api/v1/visits/{visit.pk}/").json()
    days = deid.date_shift_days(visit.patient.registry_id)
    assert body["date_done"] == (datetime.date(2020, 6, 2) - datetime.timedelta(days=days)).isoformat()
    patient = client.get(f"/api/v1/patients/{visit.patient.registry_id}/").json()
    assert patient["consent_date"] == (dated["a1"].consent_date
                                       - datetime.timedelta(days=days)).isoformat()


def test_days_from_implant_is_the_same_for_every_role_and_updated_at_only_for_real_dates(
        client_for, dated, investigator, data_manager):
    def by_id(user):
        return {r["id"]: r for r in rows(client_for(user), "visits", "&site=AAA")}

    shifted, real = by_id(investigator), by_id(data_manager)
    assert shifted.keys() == real.keys()
    assert any(r["days_from_implant"] is not None for r in real.values())
    for pk, row in real.items():
        assert shifted[pk]["days_from_implant"] == row["days_from_implant"]
        assert row["updated_at"] is not None
        assert shifted[pk]["updated_at"] is None  # a real record time would give the shift away
    # The interval is there in the shifted dates too.
    m3 = shifted[dated["a1_m3"].pk]
    implant = next(r for r in rows(client_for(investigator), "implants")
                   if r["ref"] == m3["implant_ref"])
    assert (datetime.date.fromisoformat(m3["date_done"])
            - datetime.date.fromisoformat(implant["implant_date"])).days == m3["days_from_implant"]


DATE_FILTERS = [
    ("patients", "consent_date_after"), ("patients", "consent_date_before"),
    ("implants", "implant_date_after"), ("implants", "implant_date_before"),
    ("visits", "date_done_after"), ("visits", "date_done_before"),
    ("visits", "target_date_after"), ("visits", "target_date_before"),
    ("adverse-events", "onset_date_after"), ("adverse-events", "onset_date_before"),
]


@pytest.mark.parametrize(("resource", "param"), DATE_FILTERS)
def test_an_investigators_date_filter_is_a_400_naming_it(client_for, dated, investigator, resource,
                                                        param):
    response = client_for(investigator).get(f"/api/v1/{resource}/?{param}=2020-03-01&therapy=SCS")
    assert response.status_code == 400
    body = response.json()
    assert list(body) == [param]
    assert body[param][0].startswith(f"'{param}': date filters need real dates")
    assert "shifted per patient" in body[param][0]


@pytest.mark.parametrize(("dataset", "param"), [
    ("visits", "date_done_after"), ("visits", "target_date_before"),
    ("adverse-events", "onset_date_after"),
])
def test_an_investigators_date_filter_on_an_export_is_a_400_and_not_logged(
        client_for, dated, investigator, dataset, param):
    from registry.models import ExportLog

    response = client_for(investigator).get(f"/api/v1/exports/{dataset}/?{param}=2020-03-01")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert list(response.json()) == [param]
    assert ExportLog.objects.count() == 0


def test_a_refused_date_filter_and_a_bad_value_are_both_named(client_for, dated, investigator):
    response = client_for(investigator).get("/api/v1/visits/?date_done_after=2020-01-01&therapy=XYZ")
    assert response.status_code == 400
    assert set(response.json()) == {"date_done_after", "therapy"}


@pytest.mark.parametrize("role", ["data_manager", "nurse"])
def test_data_managers_and_nurses_filter_on_dates(client_for, dated, request, role):
    client = client_for(request.getfixturevalue(role))
    listed = rows(client, "visits", "&date_done_after=2020-06-02&date_done_before=2020-06-02")
    assert [r["id"] for r in listed] == [dated["a1_m3"].pk]
    events = rows(client, "adverse-events",
                  "&site=AAA&onset_date_after=2020-03-20&onset_date_before=2020-03-20")
    assert [r["registry_id"] for r in events] == ["AAA-0001"]
    export = client.get("/api/v1/exports/visits/?date_done_after=2020-06-02&date_done_before=2020-06-02")
    assert export.status_code == 200
    lines = b"".join(export.streaming_content).decode().splitlines()
    assert len(lines) == 2 and lines[1].startswith("AAA-0001,")


def test_an_investigator_may_use_updated_since(client_for, dated, investigator):
    later = Visit.objects.filter(pk=dated["a1_m3"].pk).values_list("updated_at", flat=True).get()
    stamp = later.isoformat().replace("+00:00", "Z")
    client = client_for(investigator)
    listed = client.get("/api/v1/visits/", {"updated_since": stamp})
    assert listed.status_code == 200
    ids = {r["id"] for r in listed.json()["results"]}
    assert dated["a1_m3"].pk in ids and dated["a1_base"].pk not in ids
    export = client.get("/api/v1/exports/visits/", {"updated_since": stamp, "format": "json"})
    assert export.status_code == 200


def test_real_dates_in_exports_stay_for_data_managers_only(client_for, dated, investigator, nurse,
                                                            data_manager):
    assert client_for(investigator).get("/api/v1/exports/visits/?dates=iso").status_code == 403
    assert client_for(nurse).get("/api/v1/exports/visits/?dates=iso").status_code == 403
    assert client_for(data_manager).get("/api/v1/exports/visits/?dates=iso").status_code == 200

"""The read-only resources: who sees what, filters, errors, paging, query counts."""

import base64
import datetime
import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from simple_history.utils import bulk_create_with_history

from registry.models import ExportLog, PatientIdentifiers, Visit, VisitStatus
from registry.services.audit import record_save, system_user
from tests.factories import make_implant, make_patient, make_visit

pytestmark = pytest.mark.django_db

RESOURCES = ["sites", "patients", "implants", "visits", "adverse-events"]


def site_codes(payload):
    return {row["site"] if "site" in row else row["code"] for row in payload["results"]}


@pytest.mark.parametrize("resource", RESOURCES)
def test_it_refuses_a_request_without_a_token(client_for, cohort, resource):
    response = client_for().get(f"/api/v1/{resource}/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"


@pytest.mark.parametrize("resource", RESOURCES)
def test_it_refuses_a_wrong_token(client_for, cohort, resource):
    response = client_for(key="0" * 32).get(f"/api/v1/{resource}/")
    assert response.status_code == 401
    assert "token" in response.json()["detail"].lower()


@pytest.mark.parametrize("resource", RESOURCES)
def test_it_refuses_a_user_without_a_registry_role(client_for, cohort, outsider, resource):
    response = client_for(outsider).get(f"/api/v1/{resource}/")
    assert response.status_code == 403


@pytest.mark.parametrize("resource", RESOURCES)
@pytest.mark.parametrize("role", ["nurse", "investigator"])
def test_a_site_member_sees_only_their_site(client_for, cohort, request, resource, role):
    user = request.getfixturevalue(role)
    response = client_for(user).get(f"/api/v1/{resource}/")
    assert response.status_code == 200
    assert site_codes(response.json()) == {"AAA"}


@pytest.mark.parametrize("resource", RESOURCES)
def test_a_data_manager_sees_every_site(client_for, cohort, data_manager, resource):
    response = client_for(data_manager).get(f"/api/v1/{resource}/")
    assert response.status_code == 200
    assert site_codes(response.json()) == {"AAA", "BBB"}


def test_the_other_sites_nurse_gets_404_for_a_patient_of_site_a(client_for, cohort, nurse_b):
    client = client_for(nurse_b)
    assert client.get(f"/api/v1/patients/{cohort['a1'].registry_id}/").status_code == 404
    assert client.get(f"/api/v1/implants/{cohort['a1_implant'].ref}/").status_code == 404
    assert client.get(f"/api/v1/visits/{cohort['a1_m3'].pk}/").status_code == 404
    assert client.get(f"/api/v1/adverse-events/{cohort['event'].pk}/").status_code == 404


def test_asking_for_another_sites_code_is_a_400_naming_site(client_for, cohort, nurse_b):
    response = client_for(nurse_b).get("/api/v1/visits/?site=AAA")
    assert response.status_code == 400
    assert "AAA" in response.json()["site"][0]


FREE_TEXT = ("SECRET-REGION", "SECRET-CAUSE", "SECRET-EXPLANT-REASON")


def seed_free_text(patient, implant):
    """Distinctive strings in the patient's and the implant's free-text fields."""
    patient.affected_region, patient.amputation_cause = FREE_TEXT[:2]
    record_save(patient, actor=system_user(), reason="test")
    implant.explant_date, implant.explant_reason = datetime.date(2021, 1, 5), FREE_TEXT[2]
    record_save(implant, actor=system_user(), reason="test")


@pytest.mark.parametrize("role", ["data_manager", "nurse", "investigator"])
def test_identifiers_and_free_text_never_appear(client_for, cohort, request, role):
    record_save(PatientIdentifiers(patient=cohort["a1"], record_number="MRN-778899",
                                   full_name="Jane SECRET-NAME", phone="+31 6 1234"),
                actor=system_user(), reason="test")
    seed_free_text(cohort["a1"], cohort["a1_implant"])
    client = client_for(request.getfixturevalue(role))
    text = "".join(json.dumps(client.get(f"/api/v1/{r}/?page_size=1000").json()) for r in RESOURCES)
    for path in (f"patients/{cohort['a1'].registry_id}", f"implants/{cohort['a1_implant'].ref}",
                 f"visits/{cohort['a1_m3'].pk}", f"adverse-events/{cohort['event'].pk}"):
        response = client.get(f"/api/v1/{path}/")
        assert response.status_code == 200
        text += json.dumps(response.json())
    assert f'"ref": "{cohort["a1_implant"].ref}"' in text  # the seeded rows were in the output
    for secret in ("MRN-778899", "SECRET-NAME", "SECRET-NOTE", "SECRET-DESCRIPTION", "birth_year",
                   *FREE_TEXT, "affected_region", "amputation_cause", "explant_reason"):
        assert secret not in text


def test_the_schema_names_no_free_text_field(client_for, data_manager):
    schema = json.dumps(client_for(data_manager).get("/api/schema/?format=json").json())
    for name in ("affected_region", "amputation_cause", "explant_reason"):
        assert name not in schema


def test_a_visit_carries_its_pain_scores_and_day_from_implant(client_for, cohort, nurse):
    body = client_for(nurse).get(f"/api/v1/visits/{cohort['a1_m3'].pk}/").json()
    assert body["implant_ref"] == cohort["a1_implant"].ref
    assert body["days_from_implant"] == (datetime.date(2020, 6, 2) - datetime.date(2020, 3, 1)).days
    assert body["opioid_mme"] == 12.5
    assert {(s["pain_site"], s["score"]) for s in body["pain_scores"]} == {
        ("residual_limb", 4), ("phantom_limb", 2)}


def test_an_event_carries_its_derived_iso_class(client_for, cohort, data_manager):
    rows = client_for(data_manager).get("/api/v1/adverse-events/").json()["results"]
    assert {r["registry_id"]: r["iso_class"] for r in rows} == {"AAA-0001": "ADE", "BBB-0001": "USADE"}


def test_patients_show_age_not_birth_year_and_cap_it_at_90(client_for, cohort, nurse):
    body = client_for(nurse).get(f"/api/v1/patients/{cohort['a2'].registry_id}/").json()
    assert body["age_at_consent"] == 90  # born 1929, consent 2019: 90 = 90 or older
    assert body["implants"] == [f"{cohort['a2'].registry_id}-I1"]


@pytest.mark.parametrize(("query", "expected"), [
    ("therapy=PNS", {"AAA-0001"}),
    ("therapy=SCS,DRG", {"AAA-0002", "BBB-0001"}),
    ("etiology=postamputation", {"AAA-0001"}),
    ("diagnosis=pn&site=BBB", {"BBB-0001"}),
    ("timepoint=m3&status=completed", {"AAA-0001"}),
    ("date_done_after=2020-04-02&date_done_before=2020-04-02", {"BBB-0001"}),
])
def test_visit_filters_narrow_the_list(client_for, cohort, data_manager, query, expected):
    response = client_for(data_manager).get(f"/api/v1/visits/?{query}&page_size=1000")
    assert response.status_code == 200
    assert {r["registry_id"] for r in response.json()["results"]} == expected


def test_the_therapy_filter_keeps_baseline_visits_of_patients_with_that_therapy(
        client_for, cohort, data_manager):
    rows = client_for(data_manager).get("/api/v1/visits/?therapy=PNS&timepoint=baseline").json()
    assert [r["registry_id"] for r in rows["results"]] == ["AAA-0001"]


def test_updated_since_returns_only_rows_changed_after(client_for, cohort, data_manager):
    later = Visit.objects.filter(pk=cohort["a1_m3"].pk).values_list("updated_at", flat=True).get()
    stamp = later.isoformat().replace("+00:00", "Z")
    rows = client_for(data_manager).get("/api/v1/visits/", {"updated_since": stamp}).json()["results"]
    ids = {r["id"] for r in rows}
    assert cohort["a1_m3"].pk in ids and cohort["a1_base"].pk not in ids


@pytest.mark.parametrize(("resource", "query", "param"), [
    ("visits", "therapy=XYZ", "therapy"),
    ("visits", "timepoint=month3", "timepoint"),
    ("visits", "status=done", "status"),
    ("visits", "date_done_after=2020-02-30", "date_done_after"),
    ("visits", "target_date_before=yesterday", "target_date_before"),
    ("visits", "updated_since=notadate", "updated_since"),
    ("patients", "etiology=cancer", "etiology"),
    ("implants", "therapy=TENS", "therapy"),
    ("adverse-events", "category=headache", "category"),
    ("adverse-events", "iso_class=XYZ", "iso_class"),
    ("adverse-events", "onset_date_after=01/02/2020", "onset_date_after"),
    ("sites", "updated_since=2020-99-01", "updated_since"),
])
def test_a_bad_filter_value_is_a_400_naming_the_parameter(client_for, cohort, nurse, resource, query,
                                                          param):
    response = client_for(nurse).get(f"/api/v1/{resource}/?{query}")
    assert response.status_code == 400
    body = response.json()
    assert list(body) == [param]
    assert query.split("=", 1)[1] in body[param][0]


@pytest.mark.parametrize("path", ["visits/", "patients/", "sites/", "implants/AAA-0001-I1/"])
def test_an_unknown_format_is_a_400_naming_the_parameter(client_for, cohort, nurse, path):
    response = client_for(nurse).get(f"/api/v1/{path}?format=xyz")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert list(body) == ["format"] and "'xyz'" in body["format"][0] and "json" in body["format"][0]
    assert client_for(nurse).get(f"/api/v1/{path}?format=json").status_code == 200


def _cursor(text):
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize("cursor", ["garbage", _cursor("o=-1"), _cursor("p=abc"), _cursor("p=1.5"),
                                    _cursor("r=1&p=\x00")])
def test_a_malformed_cursor_is_a_400_naming_the_parameter(client_for, cohort, nurse, cursor):
    response = client_for(nurse).get("/api/v1/visits/", {"cursor": cursor})
    assert response.status_code == 400
    body = response.json()
    assert list(body) == ["cursor"] and f"'{cursor}'" in body["cursor"][0]


def test_the_iso_class_filter_uses_the_derived_class(client_for, cohort, data_manager):
    rows = client_for(data_manager).get("/api/v1/adverse-events/?iso_class=USADE").json()["results"]
    assert [r["registry_id"] for r in rows] == ["BBB-0001"]


def test_cursor_paging_walks_every_row_once_in_id_order(client_for, cohort, data_manager):
    client = client_for(data_manager)
    url, seen = "/api/v1/visits/?page_size=7", []
    while url:
        body = client.get(url).json()
        seen += [r["id"] for r in body["results"]]
        url = body["next"]
    assert seen == sorted(Visit.objects.values_list("id", flat=True))


def _many_rows(n):
    """n more patients of site AAA, each with an implant, a visit with a further
    pain score and an adverse event, and n more visits of one patient: every list
    grows by n or more rows."""
    from registry.models import AdverseEvent, Implant, PainScore, Patient, Site

    site = Site.objects.get(code="AAA")
    Site.objects.filter(pk=site.pk).update(patient_sequence=9000)
    kw = {"default_user": system_user(), "default_change_reason": "test"}
    bulk_create_with_history([Patient(
        registry_id=f"AAA-{9001 + i}", site=site, sex="F", birth_year=1960, etiology="traumatic",
        diagnosis="pn", consent_date=datetime.date(2019, 1, 1)) for i in range(n)], Patient, **kw)
    patients = list(Patient.objects.filter(registry_id__startswith="AAA-9").order_by("pk"))
    bulk_create_with_history([Implant(
        ref=f"{p.registry_id}-I1", patient=p, therapy="SCS", implant_date=datetime.date(2020, 1, 1))
        for p in patients], Implant, **kw)
    implants = {i.patient_id: i for i in Implant.objects.filter(patient__in=patients)}
    bulk_create_with_history([Visit(
        patient=p, implant=implants[p.pk], timepoint="m12", status=VisitStatus.COMPLETED,
        date_done=datetime.date(2021, 1, 1), nrs=i % 11) for i, p in enumerate(patients)], Visit, **kw)
    bulk_create_with_history([PainScore(visit=v, pain_site="phantom_limb", score=4)
                              for v in Visit.objects.filter(patient__in=patients)], PainScore, **kw)
    bulk_create_with_history([AdverseEvent(
        patient=p, implant=implants[p.pk], onset_date=datetime.date(2020, 6, 1),
        category="lead_migration", severity="mild", device_relatedness="probable",
        procedure_relatedness="not_related", action="reprogramming", outcome="resolved",
        resolved_on=datetime.date(2020, 7, 1)) for p in patients], AdverseEvent, **kw)
    site_patient = make_patient(site, birth_year=1960)
    implant = make_implant(site_patient)
    bulk_create_with_history([Visit(
        patient=site_patient, implant=implant, timepoint="unscheduled", status=VisitStatus.COMPLETED,
        date_done=datetime.date(2021, 1, 1), nrs=i % 11) for i in range(n)], Visit, **kw)
    make_visit(site_patient, None, timepoint="baseline", nrs=9)


@pytest.mark.parametrize("role", ["data_manager", "investigator"])  # investigators: shifted dates
@pytest.mark.parametrize("resource", RESOURCES)
def test_a_page_costs_the_same_queries_for_5_or_100_rows(client_for, cohort, request, role,
                                                        django_assert_max_num_queries, resource):
    client = client_for(request.getfixturevalue(role))
    client.get(f"/api/v1/{resource}/?page_size=5")  # token last_used_at write happens once
    with django_assert_max_num_queries(8) as small:
        assert client.get(f"/api/v1/{resource}/?page_size=5").status_code == 200
    _many_rows(110)
    with django_assert_max_num_queries(len(small.captured_queries)):
        big = client.get(f"/api/v1/{resource}/?page_size=100")
    assert big.status_code == 200
    if resource != "sites":  # every other list now has a full page of 100
        assert len(big.json()["results"]) == 100


def test_an_investigators_list_page_writes_one_export_log_row_with_its_row_count(
        client_for, cohort, investigator):
    client = client_for(investigator)
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/api/v1/visits/", {"page_size": 2, "therapy": ["PNS", "SCS"]})
    assert response.status_code == 200
    log_writes = [q["sql"] for q in queries.captured_queries if "registry_exportlog" in q["sql"]]
    assert len(log_writes) == 1 and log_writes[0].startswith("INSERT")  # one INSERT, no UPDATE
    assert ExportLog.objects.count() == 1
    log = ExportLog.objects.latest("pk")
    assert (log.user, log.channel, log.dataset, log.format, log.dates) == (
        investigator, "api", "/api/v1/visits/", "json", "shifted")
    assert log.rows == len(response.json()["results"]) == 2 and log.finished_at
    assert log.filters == {"page_size": "2", "therapy": ["PNS", "SCS"]}
    client.get(response.json()["next"])
    assert ExportLog.objects.latest("pk").rows == 2  # the next page: its own row


@pytest.mark.parametrize("resource", ["patients", "implants", "visits", "adverse-events"])
def test_every_list_of_clinical_rows_is_logged_with_real_or_shifted_dates(client_for, cohort,
                                                                         data_manager, resource):
    body = client_for(data_manager).get(f"/api/v1/{resource}/").json()
    log = ExportLog.objects.get(dataset=f"/api/v1/{resource}/")
    assert log.rows == len(body["results"]) > 0 and log.dates == "iso"


def test_sites_details_and_refused_lists_are_not_logged(client_for, cohort, nurse):
    client = client_for(nurse)
    client.get("/api/v1/sites/")
    client.get(f"/api/v1/visits/{cohort['a1_m3'].pk}/")
    assert client.get("/api/v1/visits/?status=done").status_code == 400
    assert not ExportLog.objects.exists()

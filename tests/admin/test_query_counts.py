"""The nurses' pages issue a bounded number of queries whatever the number of rows;
so do the investigators' (their dates are shifted in Python, from the registry id)."""

import datetime

import pytest
from django.urls import reverse
from simple_history.utils import bulk_create_with_history

from registry.models import AdverseEvent, Implant, PainScore, Patient, PatientIdentifiers, Visit
from registry.services.audit import system_user

# The same bound for 10 and for 500 rows: no query per row.
MAX_QUERIES = 16
ROLES = pytest.mark.parametrize("role", ["nurse", "investigator"])


def fill(site, rows: int):
    """`rows` patients, each with an implant, a completed and a scheduled visit, a
    pain score, identifiers and an adverse event (in bulk, with history)."""
    actor = system_user()
    kw = {"default_user": actor, "default_change_reason": "query-count test"}
    patients = bulk_create_with_history([
        Patient(registry_id=f"{site.code}-{9000 + i}", site=site, sex="F", birth_year=1960,
                consent_date=datetime.date(2020, 1, 1), etiology="traumatic", diagnosis="pn")
        for i in range(rows)], Patient, **kw)
    patients = list(Patient.objects.filter(registry_id__startswith=f"{site.code}-9"))
    implants = bulk_create_with_history([
        Implant(ref=f"{p.registry_id}-I1", patient=p, therapy="SCS",
                implant_date=datetime.date(2020, 3, 1)) for p in patients], Implant, **kw)
    implants = {i.patient_id: i for i in Implant.objects.filter(patient__in=patients)}
    bulk_create_with_history([
        v for p in patients for v in (
            Visit(patient=p, implant=implants[p.pk], timepoint="m3", status="completed",
                  target_date=datetime.date(2020, 6, 1), window_start=datetime.date(2020, 5, 18),
                  window_end=datetime.date(2020, 6, 15), date_done=datetime.date(2020, 7, 1), nrs=4),
            Visit(patient=p, implant=implants[p.pk], timepoint="m6", status="scheduled",
                  target_date=datetime.date(2020, 9, 1), window_start=datetime.date(2020, 8, 2),
                  window_end=datetime.date(2020, 10, 1)),
        )], Visit, **kw)
    visits = Visit.objects.filter(patient__in=patients, timepoint="m3")
    bulk_create_with_history([PainScore(visit=v, pain_site="phantom_limb", recall="avg_7d", score=5)
                              for v in visits], PainScore, **kw)
    bulk_create_with_history([PatientIdentifiers(patient=p, record_number=f"R{p.pk}")
                              for p in patients], PatientIdentifiers, **kw)
    bulk_create_with_history([
        AdverseEvent(patient=p, implant=implants[p.pk], onset_date=datetime.date(2020, 4, 1),
                     category="infection_deep", serious=True, serious_criterion="hospitalisation",
                     severity="severe", device_relatedness="possible", procedure_relatedness="probable",
                     outcome="ongoing") for p in patients], AdverseEvent, **kw)
    return patients


def one_patient_with_many_rows(patient, rows: int):
    """One patient with `rows` visits and `rows` adverse events (the hub lists them all)."""
    actor = system_user()
    kw = {"default_user": actor, "default_change_reason": "query-count test"}
    implant = Implant.objects.create(ref=f"{patient.registry_id}-I9", patient=patient, therapy="DRG",
                                     implant_date=datetime.date(2010, 1, 1))
    bulk_create_with_history([
        Visit(patient=patient, implant=implant, timepoint=f"m{i + 1}", status="completed",
              target_date=datetime.date(2010, 1, 1) + datetime.timedelta(days=30 * (i + 1)),
              date_done=datetime.date(2010, 1, 1) + datetime.timedelta(days=30 * (i + 1)), nrs=3)
        for i in range(rows)], Visit, **kw)
    bulk_create_with_history([
        AdverseEvent(patient=patient, implant=implant, onset_date=datetime.date(2011, 1, 1),
                     category="lead_migration", severity="mild", device_relatedness="possible",
                     procedure_relatedness="not_related", outcome="ongoing")
        for _ in range(rows)], AdverseEvent, **kw)


PAGES = [
    ("patient list", "admin:registry_patient_changelist", ""),
    ("patient list, overdue", "admin:registry_patient_changelist", "?follow_up=overdue"),
    ("patient list, record number search", "admin:registry_patient_changelist", "?q=R1"),
    ("visit list", "admin:registry_visit_changelist", ""),
    ("visit list, missing NRS", "admin:registry_visit_changelist", "?follow_up=missing_nrs"),
    ("visit list, due this week", "admin:registry_visit_changelist", "?follow_up=due_week&therapy=SCS"),
    ("visit list, window open now", "admin:registry_visit_changelist", "?follow_up=open_now"),
    ("adverse-event list", "admin:registry_adverseevent_changelist", ""),
    ("adverse-event list, SADE", "admin:registry_adverseevent_changelist", "?iso_class=SADE"),
]


@ROLES
@pytest.mark.parametrize("rows", [10, 500])
@pytest.mark.parametrize(("name", "url_name", "query"), PAGES, ids=[p[0] for p in PAGES])
def test_a_change_list_issues_a_bounded_number_of_queries(request, login, site_a, rows, name, url_name,
                                                          query, role, django_assert_max_num_queries):
    fill(site_a, rows)
    client = login(request.getfixturevalue(role))
    url = reverse(url_name) + query
    client.get(url)  # session and caches warm, as for a nurse who is working
    with django_assert_max_num_queries(MAX_QUERIES):
        response = client.get(url)
    assert response.status_code == 200
    if role == "investigator":  # every row of the page, shifted without a query per row
        assert all(row._dates_shifted for row in response.context["cl"].result_list)
    if not query:
        assert response.context["cl"].result_count == (rows * 2 if "visit" in url_name else rows)


@ROLES
@pytest.mark.parametrize("rows", [10, 500])
def test_the_patient_hub_issues_a_bounded_number_of_queries(request, login, site_a, rows, role,
                                                            django_assert_max_num_queries):
    patients = fill(site_a, rows)
    patient = patients[0]
    one_patient_with_many_rows(patient, rows)
    client = login(request.getfixturevalue(role))
    url = reverse("admin:registry_patient_change", args=[patient.pk])
    client.get(url)
    with django_assert_max_num_queries(MAX_QUERIES):
        response = client.get(url)
    assert response.status_code == 200
    hub = response.context["hub"]
    if role == "investigator":
        assert all(row._dates_shifted for row in (*hub["visits"], *hub["events"], *hub["implants"]))
    assert len(hub["visits"]) == rows + 2 and len(hub["events"]) == rows + 1
    # Her site: the nurse sees the identifiers inline; an investigator never does.
    assert (f"R{patient.pk}" in response.content.decode()) == (role == "nurse")

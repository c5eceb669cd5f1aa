"""The patient page is the nurse's hub; enrolment goes through the service."""

import datetime

from django.urls import reverse

from registry.models import Patient, Visit
from tests.admin.conftest import post_form
from tests.factories import make_event, make_implant, make_patient, make_visit


def test_the_hub_shows_registry_id_site_therapy_next_due_and_counts(login, nurse, patient_a, implant_a):
    today = datetime.date.today()
    make_visit(patient_a, implant_a, timepoint="m1", status="completed",
               date_done=datetime.date(2020, 4, 1), nrs=5)
    Visit.objects.filter(patient=patient_a, status="scheduled").delete()
    due = make_visit(patient_a, implant_a, timepoint="m6", status="scheduled", date_done=None, nrs=None,
                     target_date=today - datetime.timedelta(days=40),
                     window_start=today - datetime.timedelta(days=70),
                     window_end=today - datetime.timedelta(days=10))
    make_event(patient_a, implant_a, serious=True, serious_criterion="hospitalisation",
               category="infection_deep", severity="severe", device_relatedness="probable")
    page = login(nurse).get(reverse("admin:registry_patient_change", args=[patient_a.pk]))
    html = page.content.decode()
    hub = page.context["hub"]
    assert hub["next_due"] == due and hub["next_due_overdue"]
    assert f'<td id="hub-registry-id">{patient_a.registry_id}</td>' in html
    assert "Spinal cord stimulation (SCS)" in html
    assert "Implants (1)" in html and f"Visits ({len(hub['visits'])})" in html
    assert "Adverse events (1)" in html and "SADE" in html
    assert f"?patient={patient_a.pk}" in html  # record implant / visit / event links


def test_an_investigator_sees_the_hub_without_entry_links(login, investigator, patient_a, implant_a):
    page = login(investigator).get(reverse("admin:registry_patient_change", args=[patient_a.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert patient_a.registry_id in html and "hub-add-visit" not in html


def test_a_nurse_enrols_a_patient_and_gets_the_next_registry_id(login, nurse, site_a):
    make_patient(site_a)
    response = post_form(login(nurse), reverse("admin:registry_patient_add"), sex="F",
                         birth_year="1980", consent_date="2021-05-01", etiology="iatrogenic",
                         diagnosis="pn", prior_treatments=["medication", "rfa"])
    assert response.status_code == 302, response.context["adminform"].form.errors
    patient = Patient.objects.latest("pk")
    assert patient.registry_id == "AAA-0002" and patient.site == site_a
    assert patient.prior_treatments == ["medication", "rfa"]
    assert patient.history.latest().history_user == nurse


def test_a_new_implant_from_the_hub_returns_to_the_hub(login, nurse, patient_a):
    client = login(nurse)
    url = reverse("admin:registry_implant_add") + f"?patient={patient_a.pk}"
    response = post_form(client, url, therapy="DRG", implant_date="2021-01-10")
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:registry_patient_change", args=[patient_a.pk])
    assert patient_a.implants.get().therapy == "DRG"


def test_a_nurse_cannot_move_her_patient_to_another_site(login, nurse, patient_a, site_b):
    response = post_form(login(nurse), reverse("admin:registry_patient_change", args=[patient_a.pk]),
                         site=site_b.pk, change_reason="move")
    assert response.status_code in (200, 302)
    patient_a.refresh_from_db()
    assert patient_a.site.code == "AAA"


def test_the_patient_list_flags_overdue_and_filters_by_therapy(login, nurse, site_a, patient_a):
    other = make_patient(site_a)
    make_implant(other, therapy="PNS")
    client = login(nurse)
    listing = client.get(reverse("admin:registry_patient_changelist") + "?therapy=PNS")
    assert list(listing.context["cl"].result_list) == [other]

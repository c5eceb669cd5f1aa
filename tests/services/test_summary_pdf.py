"""The patient summary PDF: one or two A4 pages, no identifiers, dates shifted for
investigators, another site's patient a 404."""

import datetime
import io

import pytest
from django.urls import reverse
from pypdf import PdfReader

from registry.models import DeviceIdentifier, PatientIdentifiers, VisitStatus
from registry.services import deid, summary_pdf
from registry.services.audit import record_save, system_user
from registry.services.proms.answers import prom_answers_record
from tests.conftest import PASSWORD
from tests.factories import make_event, make_implant, make_patient, make_visit

D = datetime.date
NAME, RECORD, SERIAL, EMAIL = "Maria Jansen", "RN-7788990", "SN-4455-XQ", "maria@example.org"
IMPLANT = D(2020, 3, 1)


def a_typical_patient(site):
    """Baseline, six follow-ups done (one with PROMs), one missed, two events, identifiers."""
    patient = make_patient(site, consent_date=D(2019, 12, 1))
    record_save(PatientIdentifiers(patient=patient, full_name=NAME, record_number=RECORD, email=EMAIL),
                actor=system_user(), reason="test")
    implant = make_implant(patient, trial_start=D(2020, 1, 20), trial_end=D(2020, 2, 1),
                           implant_date=IMPLANT, manufacturer="Abbott", model="Proclaim XR")
    record_save(DeviceIdentifier(implant=implant, component="IPG", serial_number=SERIAL),
                actor=system_user(), reason="test")
    make_visit(patient, None, timepoint="baseline", date_done=D(2020, 1, 10), nrs=8)
    for timepoint, done, nrs in (("m1", D(2020, 4, 2), 4), ("m3", D(2020, 6, 1), 3),
                                 ("m6", D(2020, 9, 1), 3), ("m12", D(2021, 3, 2), 2),
                                 ("m24", D(2022, 3, 1), 3), ("m36", D(2023, 3, 1), 4)):
        visit = make_visit(patient, implant, timepoint=timepoint, date_done=done, nrs=nrs,
                           satisfaction=4, pgic=6, opioid_mme=10)
    prom_answers_record(visit=visit, instrument="eq5d5l",
                        answers={"mo": 2, "sc": 1, "ua": 2, "pd": 3, "ad": 1, "vas": 70},
                        actor=system_user(), reason="test")
    make_visit(patient, implant, timepoint="m48", status=VisitStatus.MISSED, date_done=None, nrs=None,
               missed_reason="declined")
    make_event(patient, implant)
    make_event(patient, implant, category="lead_migration", onset_date=D(2021, 5, 1),
               resolved_on=D(2021, 6, 1), action="reprogramming", procedure_relatedness="not_related",
               device_relatedness="probable")
    return patient


def text_of(pdf: bytes) -> tuple[int, str]:
    reader = PdfReader(io.BytesIO(pdf))
    return len(reader.pages), "\n".join(page.extract_text() for page in reader.pages)


def test_a_typical_patient_fits_one_or_two_pages_without_identifiers(site_a, nurse):
    patient = a_typical_patient(site_a)
    pages, text = text_of(summary_pdf.patient_summary_pdf(patient=patient, user=nurse))
    assert 1 <= pages <= 2
    for identifier in (NAME, "Jansen", RECORD, SERIAL, EMAIL):
        assert identifier not in text
    # What it is for: the implant, the visits with scores, PROMs, the events.
    assert patient.registry_id in text and "Abbott Proclaim XR" in text
    assert IMPLANT.isoformat() in text  # the nurse of the site sees real dates
    assert "50 %" in text  # the NRS reduction from baseline (8 -> 4 at m1)
    assert "EQ-5D-5L" in text and "Lead migration" in text and "Missed" in text
    assert "shifted" not in text


def test_an_investigator_gets_every_date_shifted(site_a, investigator):
    patient = a_typical_patient(site_a)
    days = deid.date_shift_days(patient.registry_id)
    _, text = text_of(summary_pdf.patient_summary_pdf(patient=patient, user=investigator))
    assert IMPLANT.isoformat() not in text and "2020-04-02" not in text
    assert (IMPLANT - datetime.timedelta(days=days)).isoformat() in text
    assert "Dates are shifted" in text and "Printed" not in text
    # No birth year for investigators: the age at consent, as the API gives it.
    assert "Birth year" not in text and str(patient.birth_year) not in text
    assert f"Age at consent: {patient.consent_date.year - patient.birth_year}" in text
    assert NAME not in text and RECORD not in text


def test_the_admin_serves_it_to_the_sites_users_only(client, site_a, nurse, nurse_b):
    patient = a_typical_patient(site_a)
    url = reverse("admin:registry_patient_summary_pdf", args=[patient.pk])
    client.login(username=nurse.username, password=PASSWORD)
    response = client.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF")
    hub = client.get(reverse("admin:registry_patient_change", args=[patient.pk])).content.decode()
    assert url in hub
    client.logout()
    client.login(username=nurse_b.username, password=PASSWORD)
    assert client.get(url).status_code == 404


@pytest.mark.parametrize("baseline, value, expected", [(8, 4, "50 %"), (0, 0, ""), (None, 3, ""),
                                                        (8, None, "")])
def test_the_reduction_is_undefined_without_a_baseline(baseline, value, expected):
    assert summary_pdf.reduction(baseline, value) == expected


def test_the_api_gives_the_same_summary_scoped_and_logged(client, site_a, site_b, investigator,
                                                          nurse_b):
    from registry.models import ExportLog
    from registry.services.tokens import api_token_create

    patient = a_typical_patient(site_a)
    url = f"/api/v1/patients/{patient.registry_id}/summary/"
    key = api_token_create(user=investigator, label="pdf")
    response = client.get(url, HTTP_AUTHORIZATION=f"Token {key}")
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    pages, text = text_of(response.content)
    assert 1 <= pages <= 2 and NAME not in text and RECORD not in text
    assert IMPLANT.isoformat() not in text and "Dates are shifted" in text
    assert ExportLog.objects.filter(user=investigator, format="pdf", dates="shifted", rows=1).exists()
    other = api_token_create(user=nurse_b, label="pdf")
    assert client.get(url, HTTP_AUTHORIZATION=f"Token {other}").status_code == 404

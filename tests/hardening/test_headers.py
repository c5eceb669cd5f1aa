"""Headers: a Content-Security-Policy on every HTML page with every inline script
carrying the request's nonce, and Cache-Control: no-store on every answer of the
REST API, REDCap and FHIR (they carry patient data)."""

import re

import pytest
from django.contrib import admin
from django.urls import reverse

from registry.services.tokens import api_token_create
from tests.factories import make_implant, make_patient, make_visit

INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)([^>]*)>", re.I)


@pytest.fixture
def cohort(site_a, nurse):
    patient = make_patient(site_a, actor=nurse)
    make_visit(patient, make_implant(patient, actor=nurse), actor=nurse, nrs=7)
    return patient


def assert_csp(response):
    policy = response["Content-Security-Policy"]
    script_src = next(p for p in policy.split(";") if p.strip().startswith("script-src"))
    assert "'unsafe-inline'" not in script_src and "'unsafe-eval'" not in script_src
    assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy
    nonce = re.search(r"'nonce-([^']+)'", script_src)
    for attributes in INLINE_SCRIPT.findall(response.content.decode()):
        assert nonce and f'nonce="{nonce.group(1)}"' in attributes, (response.request, attributes)


def _admin_pages(client):
    yield reverse("admin:index")
    yield reverse("admin:registry_outcomes")
    for model in admin.site._registry:
        for view in ("changelist", "add"):
            yield reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}")


def test_every_admin_page_has_a_csp_and_no_inline_script_without_its_nonce(client, data_manager,
                                                                           cohort):
    assert_csp(client.get(reverse("admin:login")))
    client.force_login(data_manager)
    pages = 0
    for url in _admin_pages(client):
        response = client.get(url)
        if response.status_code == 200 and response["Content-Type"].startswith("text/html"):
            assert_csp(response)
            pages += 1
    assert pages >= 15
    assert_csp(client.get(reverse("admin:registry_patient_change", args=[cohort.pk])))


def test_the_dashboard_script_carries_the_nonce(client, investigator, cohort):
    client.force_login(investigator)
    response = client.get(reverse("admin:registry_outcomes"))
    assert response.status_code == 200
    assert 'nonce="' in response.content.decode()
    assert_csp(response)


def test_the_api_docs_page_runs_under_the_csp(client, nurse):
    client.force_login(nurse)
    response = client.get("/api/docs/")
    assert response.status_code == 200
    assert_csp(response)


@pytest.mark.parametrize("role", ["nurse", "investigator"])
def test_every_patient_data_answer_says_no_store(client, request, cohort, role):
    user = request.getfixturevalue(role)
    token = api_token_create(user=user, label="t")
    api = {"HTTP_AUTHORIZATION": f"Token {token}"}
    answers = [client.get(url, **api) for url in (
        "/api/v1/patients/", f"/api/v1/patients/{cohort.registry_id}/", "/api/v1/visits/",
        "/api/v1/exports/visits/", "/api/v1/outcomes/", "/api/v1/patients/?gender=%00")]
    answers.append(client.post("/redcap/api/", {"token": token, "content": "record", "format": "json"}))
    answers.append(client.get("/fhir/Patient", HTTP_AUTHORIZATION=f"Bearer {token}"))
    answers.append(client.get("/fhir/Observation", HTTP_AUTHORIZATION="Bearer bad"))
    for response in answers:
        assert response["Cache-Control"] == "no-store", response
    assert [r.status_code for r in answers][:5] == [200] * 5

"""NUL bytes and impossible UTC offsets, probed in every list, filter and channel:
each answer is a 400 naming the parameter (PostgreSQL refuses NUL in text and
offsets beyond ±15:59, SQLite keeps them: both databases must answer the same)."""

import pytest
from django.contrib import admin
from django.urls import reverse

from registry.api.urls import router
from registry.services.tokens import api_token_create
from tests.factories import make_implant, make_patient, make_visit

NUL = "a\x00b"
FHIR_SEARCHES = {
    "Patient": ["_id", "identifier", "gender", "_lastUpdated"],
    "ResearchSubject": ["_id", "patient", "individual", "status", "_lastUpdated"],
    "Device": ["_id", "patient", "_lastUpdated"],
    "Procedure": ["_id", "patient", "subject", "date", "_lastUpdated"],
    "Observation": ["_id", "patient", "subject", "code", "date", "_lastUpdated"],
    "AdverseEvent": ["_id", "patient", "subject", "date", "seriousness", "_lastUpdated"],
}


@pytest.fixture
def cohort(site_a, nurse):
    patient = make_patient(site_a, actor=nurse)
    implant = make_implant(patient, actor=nurse)
    make_visit(patient, implant, actor=nurse, nrs=7)
    return patient


def _api_lists():
    for _prefix, viewset, basename in router.registry:
        filterset = getattr(viewset, "filterset_class", None)
        params = list(filterset.base_filters) if filterset else []
        yield reverse(f"{basename}-list"), params + ["cursor", "ordering"]


@pytest.mark.parametrize("role", ["nurse", "investigator"])
def test_every_api_list_filter_refuses_a_nul_byte_naming_the_parameter(client, request, cohort, role):
    user = request.getfixturevalue(role)
    headers = {"HTTP_AUTHORIZATION": f"Token {api_token_create(user=user, label='t')}"}
    probed = 0
    for url, params in _api_lists():
        for param in params:
            response = client.get(url, {param: NUL}, **headers)
            assert response.status_code == 400, (url, param, response.status_code)
            body = response.json()
            assert list(body) == [param] and "NUL" in body[param][0], (url, param)
            probed += 1
    for url in (reverse("export-visits"), reverse("export-adverse-events"), reverse("outcomes")):
        response = client.get(url, {"site": NUL}, **headers)
        assert response.status_code == 400 and list(response.json()) == ["site"]
    assert probed > 30


def test_every_admin_changelist_and_filter_refuses_a_nul_byte(client, data_manager, cohort):
    client.force_login(data_manager)
    lists = 0
    for model in admin.site._registry:
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        page = client.get(url)
        if page.status_code != 200 or "cl" not in (page.context or {}):
            continue
        lists += 1
        params = {"q", "o", "p"}
        for spec in page.context["cl"].filter_specs:
            params.update(spec.expected_parameters())
        for param in params:
            response = client.get(url, {param: NUL})
            assert response.status_code == 400, (url, param, response.status_code)
            assert f"'{param}'" in response.content.decode()
    assert lists >= 6


def test_an_admin_form_field_with_a_nul_byte_is_refused(client, nurse, cohort):
    client.force_login(nurse)
    url = reverse("admin:registry_patient_change", args=[cohort.pk])
    response = client.post(url, {"affected_region": "left\x00arm"})
    assert response.status_code == 400
    assert "'affected_region'" in response.content.decode()


def test_every_fhir_search_parameter_refuses_a_nul_byte(client, nurse, cohort):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {api_token_create(user=nurse, label='t')}"}
    for resource, params in FHIR_SEARCHES.items():
        for param in params:
            response = client.get(f"/fhir/{resource}", {param: NUL}, **headers)
            assert response.status_code == 400, (resource, param)
            outcome = response.json()
            assert outcome["resourceType"] == "OperationOutcome"
            assert param in outcome["issue"][0]["diagnostics"]


def test_redcap_refuses_a_nul_byte_in_its_form_in_its_own_error_shape(client, nurse, cohort):
    token = api_token_create(user=nurse, label="t")
    response = client.post("/redcap/api/", {"token": token, "content": "record", "format": "json",
                                            "fields": "nrs\x00"})
    assert response.status_code == 400
    assert "'fields'" in response.json()["error"]


@pytest.mark.parametrize("url,param,value", [
    ("/api/v1/visits/", "updated_since", "2024-01-01T00:00:00+16:00"),
    ("/api/v1/patients/", "updated_since", "2024-01-01T00:00:00-1600"),
    ("/fhir/Patient", "_lastUpdated", "ge2024-01-01T00:00:00+23:59"),
    ("/fhir/$export", "_since", "2024-01-01T00:00:00-20:00"),
])
def test_a_utc_offset_beyond_15_59_is_refused_naming_the_parameter(client, nurse, cohort, url, param,
                                                                   value):
    token = api_token_create(user=nurse, label="t")
    auth = "Bearer" if url.startswith("/fhir/") else "Token"
    response = client.get(url, {param: value}, HTTP_AUTHORIZATION=f"{auth} {token}")
    assert response.status_code == 400
    assert param in response.content.decode()
    assert "15:59" in response.content.decode()


def test_an_offset_of_15_59_is_still_answered(client, nurse, cohort):
    token = api_token_create(user=nurse, label="t")
    response = client.get("/api/v1/visits/", {"updated_since": "2024-01-01T00:00:00+15:59"},
                          HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 200
    assert response.json()["results"]


def test_a_malformed_multipart_upload_is_a_400_not_a_500(client, data_manager):
    client.force_login(data_manager)
    response = client.generic("POST", reverse("admin:registry_importrun_upload"),
                              b"--xyz\r\nContent-Disposition: form-data; name=\"reason\"\r\n\r\n",
                              content_type="multipart/form-data; boundary=")
    assert response.status_code == 400

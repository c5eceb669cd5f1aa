"""/api/schema/ and /api/docs/: valid OpenAPI 3, offline Swagger UI, responses match the schema."""

import pytest
import schemathesis
from django.contrib.staticfiles import finders
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

pytestmark = pytest.mark.django_db

ENDPOINTS = ["/api/v1/sites/", "/api/v1/patients/", "/api/v1/implants/", "/api/v1/visits/",
             "/api/v1/adverse-events/", "/api/v1/exports/visits/", "/api/v1/exports/adverse-events/",
             "/api/v1/exports/visits/codebook/", "/api/v1/exports/adverse-events/codebook/"]


def test_the_schema_is_openapi_3_and_lists_every_endpoint(client):
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert set(ENDPOINTS) <= set(schema["paths"])
    params = {p["name"] for p in schema["paths"]["/api/v1/exports/visits/"]["get"]["parameters"]}
    assert {"format", "dates", "site", "therapy", "timepoint", "date_done_after", "updated_since"} <= params
    assert "tokenAuth" in schema["components"]["securitySchemes"]


def test_swagger_ui_is_served_from_local_assets(client):
    html = client.get("/api/docs/").content.decode()
    assert "drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    assert "://cdn" not in html and "unpkg" not in html
    assert finders.find("drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")


@pytest.fixture
def token_header(cohort, data_manager):
    from registry.services.tokens import api_token_create

    return {"Authorization": f"Token {api_token_create(user=data_manager)}"}


@pytest.fixture
def keep_test_connection():
    """Like Django's test client: the test's transaction must outlive each WSGI request."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def test_the_api_conforms_to_its_schema(token_header, keep_test_connection):
    """schemathesis: generated requests for every operation, no 5xx, responses match the schema."""
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())
    # This operations (other endpoints have their own schema tests).
    operations = [op for op in (result.ok() for result in schema.get_all_operations())
                  if any(op.path.startswith(prefix) for prefix in ENDPOINTS)]
    # lists, exports, codebooks, five detail routes, the patient summary PDF
    assert len(operations) == len(ENDPOINTS) + 6
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=6, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def conforms(case):
            case.call_and_validate(
                headers=token_header,
                checks=[not_a_server_error, response_schema_conformance, content_type_conformance],
            )

        conforms()

"""Rate limits per token on /api/v1/, /redcap/api/ and /fhir/ (REGISTRY_API_RATE):
429 with Retry-After in each channel's own error shape, one counter shared by the
three, kept in the cache (local memory, and Redis where there is one, as in production)."""

import json
import os
import uuid

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from registry.services.tokens import api_token_create

BROKER = os.environ.get("CELERY_BROKER_URL", "")


@pytest.fixture(params=["locmem", "redis"])
def rate_of_three(request, settings):
    if request.param == "redis":
        if not BROKER.startswith("redis://"):
            pytest.skip("needs Redis (CELERY_BROKER_URL=redis://...; CI runs it)")
        # The broker's Redis, with keys of our own: never FLUSHDB a database the
        # worker tests share.
        settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                       "LOCATION": BROKER, "KEY_PREFIX": f"test-{uuid.uuid4().hex}"}}
    else:
        cache.clear()
    settings.REGISTRY_API_RATE = "3/min"
    yield request.param


def api(key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def redcap(client, key, fmt="json"):
    return client.post("/redcap/api/", {"token": key, "content": "version", "format": fmt,
                                        "returnFormat": fmt})


def test_the_rest_api_answers_429_with_retry_after_past_the_rate(rate_of_three, nurse, site_a):
    key = api_token_create(user=nurse)
    for _ in range(3):
        assert api(key).get("/api/v1/sites/").status_code == 200
    response = api(key).get("/api/v1/sites/")
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 60
    assert "throttled" in response.json()["detail"]
    # Another token has its own count.
    assert api(api_token_create(user=nurse)).get("/api/v1/sites/").status_code == 200


@pytest.mark.parametrize("fmt", ["json", "csv", "xml"])
def test_the_redcap_api_answers_429_in_redcaps_error_shape(rate_of_three, client, nurse, fmt):
    key = api_token_create(user=nurse)
    for _ in range(3):
        assert redcap(client, key, fmt).status_code == 200
    response = redcap(client, key, fmt)
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 60
    body = response.content.decode()
    if fmt == "json":
        assert "Too many requests" in json.loads(body)["error"]
    elif fmt == "csv":
        assert body.startswith("ERROR: Too many requests")
    else:
        assert "<error>Too many requests" in body


def test_fhir_answers_429_with_an_operation_outcome(rate_of_three, client, nurse):
    key = api_token_create(user=nurse)
    for _ in range(3):
        assert client.get("/fhir/Patient", HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 200
    response = client.get("/fhir/Patient", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 60
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "throttled"


def test_the_three_channels_share_one_count_per_token(rate_of_three, client, nurse):
    key = api_token_create(user=nurse)
    assert api(key).get("/api/v1/sites/").status_code == 200
    assert redcap(client, key).status_code == 200
    assert client.get("/fhir/Patient", HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 200
    assert api(key).get("/api/v1/sites/").status_code == 429
    assert redcap(client, key).status_code == 429

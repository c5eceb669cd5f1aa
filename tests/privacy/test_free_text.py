"""The lead target is free text (a nurse types whatever she likes there): it leaves
through no channel, for any role, like the other free text deid.MODELS declares."""

import json

import pytest
from django.test import Client

from registry.models import Implant
from registry.services import deid

from .test_record_times import api

pytestmark = pytest.mark.django_db


def test_the_lead_target_is_declared_free_text():
    assert "target" in deid.withheld(Implant)
    assert not deid.released(Implant, "target")


@pytest.mark.parametrize("token", ["investigator_token", "nurse_token"])
def test_no_role_gets_the_lead_target_from_the_api_or_fhir(entered_today, request, token):
    key = request.getfixturevalue(token)
    response = api(key).get("/api/v1/implants/")
    assert response.status_code == 200
    assert response.json()["results"] and all("target" not in row for row in response.json()["results"])
    assert "SECRET-TARGET" not in response.content.decode()
    for resource_type in ("Device", "Procedure"):
        bundle = Client().get(f"/fhir/{resource_type}", HTTP_AUTHORIZATION=f"Bearer {key}")
        assert bundle.status_code == 200 and json.loads(bundle.content)["entry"]
        assert "SECRET-TARGET" not in bundle.content.decode()

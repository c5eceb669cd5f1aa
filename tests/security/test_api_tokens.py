"""API tokens: they expire (365 days by default, never past the maximum), die with a
password change, a deactivation or the loss of the role, and each creation and
revocation is in the token's history with who and why. Data managers create, list
and revoke them in the admin; everyone sees her own."""

import datetime
import io
import re

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from rest_framework.test import APIClient

from registry.models import ApiToken
from registry.services.tokens import api_token_create
from tests.conftest import PASSWORD

NEW_PASSWORD = "a brand new passphrase 2026"


def api(key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def revocation(token_pk):
    return ApiToken.history.filter(id=token_pk, revoked_at__isnull=False).earliest("history_date")


def test_a_new_token_lives_365_days_and_no_longer_than_the_maximum(nurse, settings):
    out = io.StringIO()
    call_command("api_token", nurse.username, stdout=out)
    token = ApiToken.objects.get(user=nurse)
    assert token.expires_at - token.created_at == pytest.approx(datetime.timedelta(days=365),
                                                                abs=datetime.timedelta(seconds=5))
    with pytest.raises(CommandError, match="--expires-days: must be 1 to 365, not 400"):
        call_command("api_token", nurse.username, "--expires-days", "400", stdout=io.StringIO())
    settings.REGISTRY_API_TOKEN_MAX_DAYS = 30
    with pytest.raises(CommandError, match="1 to 30"):
        call_command("api_token", nurse.username, "--expires-days", "31", stdout=io.StringIO())


def test_an_expired_token_is_refused_by_the_api(nurse):
    key = api_token_create(user=nurse, expires_in_days=1)
    assert api(key).get("/api/v1/sites/").status_code == 200
    ApiToken.objects.update(expires_at=timezone.now() - datetime.timedelta(seconds=1))
    assert api(key).get("/api/v1/sites/").status_code == 401


def test_a_token_is_dead_after_a_password_change_in_the_admin(client, nurse):
    key = api_token_create(user=nurse, label="R")
    assert api(key).get("/api/v1/sites/").status_code == 200
    client.force_login(nurse)
    response = client.post("/admin/password_change/", {"old_password": PASSWORD,
                                                       "new_password1": NEW_PASSWORD,
                                                       "new_password2": NEW_PASSWORD})
    assert response.status_code == 302, response.content.decode()[:3000]
    assert api(key).get("/api/v1/sites/").status_code == 401
    row = revocation(ApiToken.objects.get(user=nurse).pk)
    assert (row.history_user, row.history_change_reason) == (nurse, "password changed")


def test_a_token_is_dead_after_a_data_manager_sets_a_new_password(client, nurse, data_manager):
    key = api_token_create(user=nurse, label="R")
    client.force_login(data_manager)
    response = client.post(f"/admin/auth/user/{nurse.pk}/password/",
                           {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert response.status_code == 302, response.content.decode()[:3000]
    assert api(key).get("/api/v1/sites/").status_code == 401
    assert revocation(ApiToken.objects.get(user=nurse).pk).history_user == data_manager


def test_a_token_is_dead_after_deactivation_with_actor_and_reason(client, nurse, data_manager):
    key = api_token_create(user=nurse, label="R")
    client.force_login(data_manager)
    client.post("/admin/auth/user/", {"action": "deactivate", "_selected_action": [nurse.pk],
                                      "reason": "left the hospital"})
    nurse.refresh_from_db()
    assert not nurse.is_active
    assert api(key).get("/api/v1/sites/").status_code == 401
    row = revocation(ApiToken.objects.get(user=nurse).pk)
    assert row.history_user == data_manager
    assert row.history_change_reason == "user deactivated: deactivated: left the hospital"


def test_a_token_is_dead_after_its_user_changes_role(client, nurse, data_manager):
    key = api_token_create(user=nurse, label="R")
    client.force_login(data_manager)
    role = nurse.registry_role
    client.post(f"/admin/registry/registryrole/{role.pk}/change/", {
        "role": "investigator", "sites": [s.pk for s in role.sites.all()],
        "change_reason": "now analyses only"})
    assert api(key).get("/api/v1/sites/").status_code == 401
    assert "role changed from nurse to investigator" in revocation(
        ApiToken.objects.get(user=nurse).pk).history_change_reason


def test_a_data_manager_creates_a_token_in_the_admin_and_sees_the_key_once(client, data_manager,
                                                                         investigator):
    client.force_login(data_manager)
    page = client.get("/admin/registry/apitoken/add/")
    assert page.status_code == 200 and 'value="365"' in page.content.decode()
    too_long = client.post("/admin/registry/apitoken/add/", {
        "user": investigator.pk, "label": "R", "expires_in_days": 400, "reason": "analysis"})
    assert "less than or equal to 365" in too_long.content.decode()
    assert not ApiToken.objects.exists()
    response = client.post("/admin/registry/apitoken/add/", {
        "user": investigator.pk, "label": "R scripts", "expires_in_days": 90,
        "reason": "12-month analysis"})
    key = re.search(r'id="apitoken-key"[^>]*>([0-9A-F]{32})<', response.content.decode()).group(1)
    assert api(key).get("/api/v1/sites/").status_code == 200
    token = ApiToken.objects.get(user=investigator)
    created = token.history.get(history_type="+")
    assert (created.history_user, created.history_change_reason) == (data_manager, "12-month analysis")
    assert key not in client.get("/admin/registry/apitoken/").content.decode()


def test_a_data_manager_revokes_a_token_with_a_reason(client, data_manager, investigator):
    key = api_token_create(user=investigator, label="R")
    token = ApiToken.objects.get(user=investigator)
    client.force_login(data_manager)
    client.post("/admin/registry/apitoken/", {"action": "revoke", "_selected_action": [token.pk],
                                              "reason": ""})
    assert api(key).get("/api/v1/sites/").status_code == 200
    client.post("/admin/registry/apitoken/", {"action": "revoke", "_selected_action": [token.pk],
                                              "reason": "laptop stolen"})
    assert api(key).get("/api/v1/sites/").status_code == 401
    row = revocation(token.pk)
    assert (row.history_user, row.history_change_reason) == (data_manager, "laptop stolen")


def test_a_nurse_sees_her_own_tokens_only_and_cannot_make_or_revoke_any(client, nurse, nurse_b):
    api_token_create(user=nurse, label="mine")
    other = api_token_create(user=nurse_b, label="theirs")
    client.force_login(nurse)
    listing = client.get("/admin/registry/apitoken/").content.decode()
    assert "mine" in listing and "theirs" not in listing
    theirs = ApiToken.objects.get(user=nurse_b)
    assert client.get(f"/admin/registry/apitoken/{theirs.pk}/change/").status_code in (302, 403, 404)
    assert client.get("/admin/registry/apitoken/add/").status_code == 403
    client.post("/admin/registry/apitoken/", {"action": "revoke", "_selected_action": [theirs.pk],
                                              "reason": "x"})
    assert api(other).get("/api/v1/sites/").status_code == 200


def test_a_password_changed_in_the_shell_revokes_with_an_actor_and_says_where(nurse):
    # `changepassword` and the shell have no request: the revocation must still name someone.
    key = api_token_create(user=nurse, label="R")
    nurse.set_password(NEW_PASSWORD)
    nurse.save()
    assert api(key).get("/api/v1/sites/").status_code == 401
    row = revocation(ApiToken.objects.get(user=nurse).pk)
    assert row.history_user == nurse
    assert row.history_change_reason == "password changed outside a request (server shell)"

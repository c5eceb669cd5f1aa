import io
import re

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from registry.models import ApiToken, hash_token
from registry.services.tokens import api_token_revoke, api_token_user


def token_for(username, *args):
    out = io.StringIO()
    call_command("api_token", username, *args, stdout=out)
    return out.getvalue().strip()


def test_it_prints_32_upper_case_hex_and_stores_only_the_hash(investigator):
    key = token_for(investigator.username)
    assert re.fullmatch(r"[0-9A-F]{32}", key)
    token = ApiToken.objects.get(user=investigator)
    assert token.key_hash == hash_token(key) and key not in token.key_hash
    assert api_token_user(key) == investigator


def test_a_revoked_token_stops_working(investigator):
    key = token_for(investigator.username)
    api_token_revoke(token=ApiToken.objects.get(user=investigator))
    assert api_token_user(key) is None


def test_an_expired_token_stops_working(investigator):
    key = token_for(investigator.username, "--expires-days", "1")
    ApiToken.objects.update(expires_at="2000-01-01T00:00:00Z")
    assert api_token_user(key) is None


def test_it_names_an_unknown_user(db):
    with pytest.raises(CommandError, match="nobody"):
        token_for("nobody")


def test_it_refuses_a_user_without_role(outsider):
    with pytest.raises(CommandError, match="no registry role"):
        token_for(outsider.username)

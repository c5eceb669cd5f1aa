import io

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command
from django.core.management.base import CommandError

from registry.models import RegistryRole
from registry.services.audit import SYSTEM_USERNAME


def run(*args, stdin=""):
    out = io.StringIO()
    import sys

    old = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        call_command("registry_user", *args, stdout=out)
    finally:
        sys.stdin = old
    return out.getvalue()


def test_it_creates_a_nurse_with_a_password_from_stdin(site_a):
    out = run("anna", "--role", "nurse", "--site", site_a.code, "--password-stdin",
              stdin="a-long-enough-passphrase\n")
    assert "Created anna: nurse (AAA)" in out
    user = authenticate(username="anna", password="a-long-enough-passphrase")
    assert user is not None and user.is_staff
    assert list(user.registry_role.sites.values_list("code", flat=True)) == ["AAA"]


def test_it_updates_the_role_and_keeps_history(site_a, site_b):
    run("ben", "--role", "nurse", "--site", site_a.code)
    out = run("ben", "--role", "investigator", "--all-sites")
    assert "Updated ben: investigator (all sites)" in out
    role = RegistryRole.objects.get(user__username="ben")
    rows = list(role.history.order_by("history_date", "history_id"))
    assert [r.role for r in rows][0] == "nurse" and rows[-1].role == "investigator"
    assert {r.history_change_reason for r in rows} == {"registry_user"}
    assert {r.history_user.username for r in rows} == {SYSTEM_USERNAME}


def test_it_records_who_made_the_change_and_why(site_a, data_manager):
    run("gus", "--role", "nurse", "--site", site_a.code, "--by", data_manager.username,
        "--reason", "joined the AAA team")
    rows = list(RegistryRole.objects.get(user__username="gus").history.all())
    assert rows and {(r.history_user, r.history_change_reason) for r in rows} == {
        (data_manager, "joined the AAA team")}


def test_it_names_an_unknown_acting_user(site_a):
    with pytest.raises(CommandError, match="--by: no active user 'ghost'"):
        run("hal", "--role", "nurse", "--site", site_a.code, "--by", "ghost")
    assert not RegistryRole.objects.filter(user__username="hal").exists()


def test_it_names_an_unknown_site(db):
    with pytest.raises(CommandError, match="NOPE"):
        run("carl", "--role", "nurse", "--site", "NOPE")


def test_it_refuses_a_nurse_without_site(db):
    with pytest.raises(CommandError, match="site"):
        run("dora", "--role", "nurse")


def test_it_refuses_an_unknown_role(db):
    with pytest.raises(CommandError, match="role"):
        run("erik", "--role", "surgeon")


def test_it_refuses_a_weak_password(site_a):
    with pytest.raises(CommandError, match="password|short|common"):
        run("fay", "--role", "nurse", "--site", site_a.code, "--password-stdin", stdin="123\n")

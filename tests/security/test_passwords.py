"""Passwords: at least 12 characters, not common, not numeric, not like the user
name, in registry_user and every form; load_demo and weak passwords refuse to run
under production settings."""

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

ROOT = Path(__file__).resolve().parents[2]


def registry_user(*args, stdin=""):
    old = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        call_command("registry_user", *args, stdout=io.StringIO())
    finally:
        sys.stdin = old


@pytest.mark.parametrize("password, says", [
    ("Summer2024", "at least 12 characters"),
    ("123456789012", "entirely numeric"),
    ("password1234", "too common"),
    ("greta.hansen-2024", "too similar"),
])
def test_registry_user_refuses_a_weak_password_naming_why(site_a, password, says):
    with pytest.raises(CommandError, match=says):
        registry_user("greta.hansen", "--role", "nurse", "--site", site_a.code, "--password-stdin",
                      stdin=password + "\n")
    assert not get_user_model().objects.filter(username="greta.hansen").exists()


def test_registry_user_takes_a_long_passphrase(site_a):
    registry_user("greta", "--role", "nurse", "--site", site_a.code, "--password-stdin",
                  stdin="correct horse battery staple\n")
    assert get_user_model().objects.get(username="greta").check_password("correct horse battery staple")


def test_the_admin_user_form_refuses_a_short_password(client, data_manager):
    client.force_login(data_manager)
    response = client.post("/admin/auth/user/add/", {
        "username": "hugo", "password1": "Summer2024", "password2": "Summer2024",
        "change_reason": "new nurse"})
    assert "at least 12 characters" in response.content.decode()
    assert not get_user_model().objects.filter(username="hugo").exists()


def test_the_admin_creates_a_user_with_a_good_password_and_a_reason_in_the_history(client, data_manager):
    client.force_login(data_manager)
    response = client.post("/admin/auth/user/add/", {
        "username": "hugo", "password1": "a long passphrase for hugo", "usable_password": "true",
        "password2": "a long passphrase for hugo", "change_reason": "new nurse at AAA"})
    assert response.status_code == 302, response.content.decode()[:3000]
    hugo = get_user_model().objects.get(username="hugo")
    assert hugo.is_staff and hugo.check_password("a long passphrase for hugo")
    first = get_user_model().history.filter(id=hugo.pk).earliest("history_date")
    assert (first.history_user, first.history_change_reason) == (data_manager, "new nurse at AAA")


def _production(*command):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "REGISTRY_"))}
    env.update({"DJANGO_SETTINGS_MODULE": "config.settings.production", "SECRET_KEY": "x" * 60,
                "ALLOWED_HOSTS": "registry.example.org",
                "DATABASE_URL": "postgres://nobody@127.0.0.1:1/none",
                "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0"})
    return subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT, env=env,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)


def test_load_demo_refuses_to_run_under_production_settings():
    result = _production("load_demo")
    assert result.returncode != 0
    assert "load_demo refuses to run under production settings" in result.stderr


def test_registry_user_refuses_no_password_validation_under_production_settings():
    result = _production("registry_user", "x", "--role", "nurse", "--no-password-validation")
    assert result.returncode != 0
    assert "--no-password-validation: refused under production settings" in result.stderr

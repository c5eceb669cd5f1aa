"""Project-level checks: migrations complete, production settings pass --deploy."""

import io
import os
import re
import subprocess
import sys
from pathlib import Path

from django.core.management import call_command

ROOT = Path(__file__).resolve().parent.parent


def test_no_migration_is_missing(db):
    call_command("makemigrations", "--check", "--dry-run", stdout=io.StringIO())


def test_production_settings_pass_check_deploy():
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update({
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "SECRET_KEY": "x" * 20 + "production-secret-key-with-enough-entropy-1234567890",
        "ALLOWED_HOSTS": "registry.example.org",
        "DATABASE_URL": "postgres://registry@127.0.0.1:5432/registry",
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
    })
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level",
                             "WARNING"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_production_settings_refuse_to_start_without_a_secret_key():
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("DJANGO_") and k not in ("SECRET_KEY",)}
    env.update({"DJANGO_SETTINGS_MODULE": "config.settings.production",
                "ALLOWED_HOSTS": "x", "DATABASE_URL": "sqlite:///x", "CELERY_BROKER_URL": "memory://"})
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env,
                            capture_output=True, text=True)
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_production_settings_hold_the_security_defaults_of_the_readme():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "REGISTRY_", "REDIS_"))}
    env.update({
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "SECRET_KEY": "x" * 20 + "production-secret-key-with-enough-entropy-1234567890",
        "ALLOWED_HOSTS": "registry.example.org",
        "DATABASE_URL": "postgres://registry@127.0.0.1:5432/registry",
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
    })
    script = (
        "import django, json; django.setup(); from django.conf import settings as s; "
        "print(json.dumps([s.REGISTRY_LOGIN_FAILURES, s.REGISTRY_LOCKOUT_MINUTES, "
        "s.REGISTRY_SESSION_IDLE_MINUTES, s.SESSION_COOKIE_AGE, s.REGISTRY_API_RATE, "
        "s.REGISTRY_API_TOKEN_DAYS, sorted(s.REGISTRY_MFA_REQUIRED_ROLES), "
        "s.CACHES['default']['BACKEND'], s.CACHES['default']['LOCATION'], s.AXES_ENABLED, "
        "s.REGISTRY_DEMO_ALLOWED, s.AUTH_PASSWORD_VALIDATORS[1]['OPTIONS']['min_length']]))"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        '[10, 15, 30.0, 43200, "600/min", 365, ["data_manager", "investigator"], '
        '"django.core.cache.backends.redis.RedisCache", "redis://127.0.0.1:6379/0", true, false, 12]')


def test_every_setting_read_from_the_environment_is_in_the_docker_example():
    # A hospital's IT team configures the registry from docker/env.example: a setting missing
    # there (or not reaching the containers) cannot be found or cannot take effect.
    settings_dir = ROOT / "config" / "settings"
    names = set()
    for path in settings_dir.glob("*.py"):
        text = path.read_text()
        names |= set(re.findall(r'env(?:\.\w+)?\(\s*"([A-Z][A-Z0-9_]+)"', text))
        names |= set(re.findall(r'_positive\(\s*"([A-Z][A-Z0-9_]+)"', text))
    assert len(names) > 30, names
    example = (ROOT / "docker" / "env.example").read_text()
    compose = (ROOT / "docker" / "compose.yaml").read_text()
    missing = sorted(n for n in names if not re.search(rf"\b{n}\b", example + compose))
    assert missing == []
    assert re.search(r"^\s+env_file: \.env$", compose, re.M), "docker/.env must reach the containers"


def test_a_web_process_finds_the_tasks_it_enqueues_by_name():
    # The admin enqueues the import job and the SAE alert by name. A fresh process that only
    # set Django up (as gunicorn does) must have them registered; the suite itself imports
    # registry.tasks somewhere, so this runs in its own process.
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env["DJANGO_SETTINGS_MODULE"] = "config.settings.local"
    code = ("import django; django.setup()\n"
            "from celery import current_app\n"
            "from registry.admin.events import ALERT_TASK\n"
            "from registry.services.imports.jobs import TASK\n"
            "print(sorted(n for n in (ALERT_TASK, TASK) if n not in current_app.tasks))\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"

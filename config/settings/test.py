"""Test settings: the same as development, with fast password hashing.

DATABASE_URL and CELERY_BROKER_URL decide whether the suite runs on SQLite with
eager tasks (bare machine) or PostgreSQL and Redis (CI).
"""

from .base import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Tasks run in-process in tests unless a test starts a real worker on Redis
# (tests/tasks use celery's start_worker and switch eager off themselves).
CELERY_TASK_ALWAYS_EAGER = True

# Security controls that would get in the way of the rest of the suite; tests/security
# turns each one on (override_settings) where it is the subject.
# django-axes refuses Client.login(), which authenticates without a request.
AXES_ENABLED = False
REGISTRY_API_RATE = "100000/min"
REGISTRY_MFA_REQUIRED_ROLES = []

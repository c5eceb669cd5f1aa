"""Shared fixtures: two sites and the users of the house-style base case
(a nurse of each site, an investigator, a data manager, an outsider)."""

import os

import pytest
from django.db import connection

from registry.models import Role
from registry.services.users import registry_user_save
from tests.factories import make_implant, make_patient, make_site

PASSWORD = "registry-test-pw"


def _user(username, role, sites=(), all_sites=False):
    user, _ = registry_user_save(username=username, role=role, site_codes=list(sites),
                                 all_sites=all_sites, password=PASSWORD, validate_pw=False)
    return user


@pytest.fixture
def site_a(db):
    return make_site("AAA", timezone="Europe/Amsterdam")


@pytest.fixture
def site_b(db):
    return make_site("BBB", timezone="America/New_York", country="US")


@pytest.fixture
def nurse(site_a):
    return _user("nurse_a", Role.NURSE, [site_a.code])


@pytest.fixture
def nurse_b(site_b):
    return _user("nurse_b", Role.NURSE, [site_b.code])


@pytest.fixture
def investigator(site_a, site_b):
    return _user("investigator_a", Role.INVESTIGATOR, [site_a.code])


@pytest.fixture
def data_manager(site_a, site_b):
    return _user("dm", Role.DATA_MANAGER, [site_a.code])


@pytest.fixture
def outsider(db):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user("outsider", password=PASSWORD, is_staff=True)


@pytest.fixture
def patient_a(site_a, nurse):
    return make_patient(site_a, actor=nurse)


@pytest.fixture
def patient_b(site_b, nurse_b):
    return make_patient(site_b, actor=nurse_b)


@pytest.fixture
def implant_a(patient_a, nurse):
    return make_implant(patient_a, actor=nurse)


def needs_postgres():
    return pytest.mark.skipif(
        not os.environ.get("DATABASE_URL", "").startswith(("postgres", "postgresql")),
        reason="needs PostgreSQL (CI runs it)",
    )


@pytest.fixture
def is_postgres(db):
    return connection.vendor == "postgresql"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI every service and the browser are there, so a skip means a missing
    install step or a broken service: report it as a failure, not a pass."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI", "").lower() == "true" and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where nothing may be skipped: {reason}"


@pytest.fixture(autouse=True)
def streams_closed_like_a_server(monkeypatch):
    """Close a streaming answer the test left unread before the next request and at the
    end of the test, as a WSGI server closes every response (Django's test client closes
    one only when its body is read to the end). Exports run their query up to the first
    chunk before answering, so an unread one still holds its COPY on the connection."""
    from django.core.signals import request_finished
    from django.db import close_old_connections
    from django.test.client import ClientHandler

    unread = []
    answer = ClientHandler.__call__

    def close_unread():
        while unread:
            response = unread.pop()
            if not response.closed:
                request_finished.disconnect(close_old_connections)
                try:
                    response.close()
                finally:
                    request_finished.connect(close_old_connections)

    def call(self, environ):
        close_unread()
        response = answer(self, environ)
        if response.streaming:
            unread.append(response)
        return response

    monkeypatch.setattr(ClientHandler, "__call__", call)
    yield
    close_unread()

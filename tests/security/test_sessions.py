"""Sessions: signed out after REGISTRY_SESSION_IDLE_MINUTES without activity (the admin
warns first) and REGISTRY_SESSION_MAX_HOURS after signing in; a password change signs
out every other session."""

import time

import pytest

from registry.accounts.middleware import LAST_SEEN_AT, SIGNED_IN_AT
from tests.conftest import PASSWORD

from .conftest import needs_chromium, sign_in

NEW_PASSWORD = "a brand new passphrase 2026"


@needs_chromium
@pytest.mark.django_db(transaction=True)
def test_an_idle_session_is_warned_about_then_signed_out(settings, new_page, live_server, nurse):
    settings.REGISTRY_SESSION_IDLE_MINUTES = 0.2  # 12 seconds
    settings.REGISTRY_SESSION_WARNING_SECONDS = 8
    page = new_page()
    sign_in(page, live_server.url, nurse.username, next_url="/admin/registry/patient/")
    assert page.url.endswith("/admin/registry/patient/")

    page.wait_for_selector("#session-warning", timeout=15_000)
    assert "You will be signed out in" in page.inner_text("#session-warning-text")
    page.wait_for_url("**/admin/login/**", timeout=20_000)
    assert "minutes without activity" in page.inner_text(".messagelist")
    page.goto(f"{live_server.url}/admin/registry/patient/")
    assert "/admin/login/" in page.url, "the idle session still opened an admin page"


@needs_chromium
@pytest.mark.django_db(transaction=True)
def test_stay_signed_in_on_the_warning_keeps_the_session(settings, new_page, live_server, nurse):
    settings.REGISTRY_SESSION_IDLE_MINUTES = 0.2
    settings.REGISTRY_SESSION_WARNING_SECONDS = 8
    page = new_page()
    sign_in(page, live_server.url, nurse.username, next_url="/admin/registry/patient/")
    page.wait_for_selector("#session-warning", timeout=15_000)
    page.click("#session-stay")
    page.wait_for_selector("#session-warning", state="detached", timeout=5_000)
    time.sleep(6)  # past the first deadline
    page.goto(f"{live_server.url}/admin/registry/patient/")
    assert page.url.endswith("/admin/registry/patient/")


def test_a_session_ends_after_the_absolute_lifetime_however_busy(client, nurse, settings):
    client.force_login(nurse)
    assert client.get("/admin/").status_code == 200
    session = client.session
    session[SIGNED_IN_AT] = time.time() - 12 * 3600 - 1
    session[LAST_SEEN_AT] = time.time()
    session.save()
    response = client.get("/admin/registry/patient/")
    assert response.status_code == 302 and response.url.startswith("/admin/login/")
    assert client.get("/admin/").status_code == 302


def test_an_idle_session_is_refused_by_the_server_too(client, nurse):
    client.force_login(nurse)
    client.get("/admin/")
    session = client.session
    session[LAST_SEEN_AT] = time.time() - 31 * 60
    session.save()
    assert client.get("/admin/").status_code == 302
    assert client.get("/account/session/").json() == {"signed_in": False, "idle_seconds_left": 0}


def test_the_timer_status_does_not_count_as_activity(client, nurse):
    client.force_login(nurse)
    client.get("/admin/")
    session = client.session
    session[LAST_SEEN_AT] = time.time() - 20 * 60
    session.save()
    left = client.get("/account/session/").json()["idle_seconds_left"]
    assert 9 * 60 <= left <= 10 * 60
    assert client.get("/account/session/").json()["idle_seconds_left"] <= left


def test_a_password_change_signs_out_every_other_session(client, nurse):
    from django.test import Client

    other = Client()
    other.force_login(nurse)
    assert other.get("/admin/").status_code == 200
    client.force_login(nurse)
    response = client.post("/admin/password_change/", {"old_password": PASSWORD,
                                                       "new_password1": NEW_PASSWORD,
                                                       "new_password2": NEW_PASSWORD})
    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200, "the session that changed it stays"
    assert other.get("/admin/").status_code == 302


def test_the_session_cookie_dies_with_the_browser(client, nurse):
    client.force_login(nurse)
    response = client.get("/admin/")
    cookie = response.cookies.get("sessionid") or client.cookies["sessionid"]
    assert not cookie["expires"] and not cookie["max-age"]

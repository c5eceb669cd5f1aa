"""Sign-in lockout (django-axes): ten failures lock a user name, even against the right
password, until the lock ends or a data manager unlocks it; an address has its own
limit; every failure is in an access log data managers read in the admin."""

import datetime

import pytest
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib.auth import get_user_model

from tests.conftest import PASSWORD

from .conftest import log_in_with_request, needs_chromium, sign_in

WRONG = "not-the-password-at-all"


@needs_chromium
@pytest.mark.django_db(transaction=True)
def test_ten_failed_sign_ins_lock_the_user_name_and_then_the_right_password_is_refused(
        axes_on, new_page, live_server, nurse):
    page = new_page()
    for attempt in range(1, 10):
        sign_in(page, live_server.url, nurse.username, WRONG)
        assert "/admin/login/" in page.url
        assert page.locator("#lockout-message").count() == 0, f"locked after {attempt}"
    sign_in(page, live_server.url, nurse.username, WRONG)  # the tenth
    assert "locked after 10 failed sign-ins" in page.inner_text("#lockout-message")

    sign_in(page, live_server.url, nurse.username, PASSWORD)
    message = page.inner_text("#lockout-message")
    assert "even the right password is refused until" in message
    assert "a data manager unlocks it" in message
    page.goto(f"{live_server.url}/admin/")
    assert "/admin/login/" in page.url, "the right password signed in a locked user name"
    # Another user name from the same address still signs in (the address limit is 50).
    other = new_page()
    sign_in(other, live_server.url, "somebody-else", WRONG)
    assert other.locator("#lockout-message").count() == 0


def test_a_locked_user_name_signs_in_again_once_the_lock_has_run_out(axes_on, client, nurse):
    for _ in range(10):
        log_in_with_request(client, nurse.username, WRONG)
    assert log_in_with_request(client, nurse.username).status_code == 429
    AccessAttempt.objects.update(attempt_time=datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC))
    response = log_in_with_request(client, nurse.username)
    assert response.status_code == 302 and response.url == "/admin/"


def test_a_data_manager_unlocks_a_user_name_and_the_unlock_is_in_its_history(
        axes_on, client, nurse, data_manager):
    for _ in range(10):
        log_in_with_request(client, nurse.username, WRONG)
    assert log_in_with_request(client, nurse.username).status_code == 429

    client.force_login(data_manager)
    listing = client.get("/admin/auth/user/")
    changelist = listing.context["cl"]
    locked = {u.username: changelist.model_admin.signin_locked(u) for u in changelist.result_list}
    assert locked[nurse.username] is True and locked[data_manager.username] is False
    response = client.post("/admin/auth/user/", {"action": "unlock_signin", "_selected_action": [nurse.pk],
                                                 "reason": "called from the ward, identity checked"},
                           follow=True)
    assert "nurse_a: sign-in unlocked" in response.content.decode().lower()
    client.logout()

    response = log_in_with_request(client, nurse.username)
    assert response.status_code == 302 and response.url == "/admin/"
    row = get_user_model().history.filter(id=nurse.pk).latest("history_date")
    assert row.history_user == data_manager
    assert row.history_change_reason == "sign-in unlocked: called from the ward, identity checked"
    # The failures stay in the access failure log.
    assert AccessFailureLog.objects.filter(username=nurse.username).count() == 10


def test_an_unlock_without_a_reason_changes_nothing(axes_on, client, nurse, data_manager):
    for _ in range(10):
        log_in_with_request(client, nurse.username, WRONG)
    client.force_login(data_manager)
    response = client.post("/admin/auth/user/", {"action": "unlock_signin",
                                                 "_selected_action": [nurse.pk], "reason": " "},
                           follow=True)
    assert "Give a reason" in response.content.decode()
    assert AccessAttempt.objects.filter(username=nurse.username).exists()


def test_one_address_is_locked_after_its_own_limit_across_user_names(axes_on, client, nurse):
    axes_on.REGISTRY_LOGIN_FAILURES_PER_IP = 5
    for index in range(5):
        log_in_with_request(client, f"someone-{index}", WRONG)
    response = log_in_with_request(client, nurse.username)
    assert response.status_code == 429
    assert "Sign-in from your network address is locked" in response.content.decode()


def test_the_access_log_is_for_data_managers_only(axes_on, client, nurse, data_manager):
    for _ in range(3):
        log_in_with_request(client, nurse.username, WRONG)
    client.force_login(nurse)
    for url in ("/admin/axes/accessfailurelog/", "/admin/axes/accessattempt/", "/admin/axes/accesslog/"):
        assert client.get(url).status_code == 403, url
    assert client.post("/admin/axes/accessattempt/", {
        "action": "unlock", "_selected_action": list(AccessAttempt.objects.values_list("pk", flat=True)),
        "reason": "x"}).status_code == 403
    client.force_login(data_manager)
    page = client.get("/admin/axes/accessfailurelog/").content.decode()
    assert page.count(nurse.username) >= 3
    assert client.get("/admin/axes/accessattempt/").status_code == 200
    # Read-only: no add, no change form.
    assert client.get("/admin/axes/accessfailurelog/add/").status_code == 403


def test_signing_in_is_in_the_access_log_not_in_the_users_history(axes_on, client, nurse):
    before = get_user_model().history.filter(id=nurse.pk).count()
    assert log_in_with_request(client, nurse.username).status_code == 302
    assert get_user_model().history.filter(id=nurse.pk).count() == before
    assert AccessLog.objects.filter(username=nurse.username).count() == 1


def test_a_colleagues_sign_in_from_the_same_address_does_not_clear_the_count(axes_on, nurse, nurse_b):
    from django.test import Client

    attacker, colleague = Client(), Client()
    for _ in range(9):
        log_in_with_request(attacker, nurse.username, WRONG)
    assert log_in_with_request(colleague, nurse_b.username).status_code == 302
    assert log_in_with_request(attacker, nurse.username, WRONG).status_code == 429
    assert log_in_with_request(attacker, nurse.username).status_code == 429


def test_her_own_sign_in_clears_her_earlier_failures(axes_on, client, nurse):
    for _ in range(9):
        log_in_with_request(client, nurse.username, WRONG)
    assert log_in_with_request(client, nurse.username).status_code == 302
    client.logout()
    assert log_in_with_request(client, nurse.username, WRONG).status_code == 200
    assert not AccessAttempt.objects.filter(username=nurse.username, failures_since_start__gt=1).exists()

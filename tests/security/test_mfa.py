"""Second factor (django-otp): required in production for data managers and
investigators, optional for nurses; enrolment in the admin's look with a real TOTP;
backup codes; a reset by a data manager with a reason."""

import base64
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django_otp.oath import totp
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from registry.services import mfa
from registry.services.tokens import api_token_create

from .conftest import needs_chromium, sign_in

ROOT = Path(__file__).resolve().parents[2]


def current_code(secret_b32: str) -> str:
    """The code an authenticator app shows now, computed from the secret on the page."""
    key = base64.b32decode(secret_b32)
    return f"{totp(key, step=30, t0=0, digits=6):06d}"


def device_code(device: TOTPDevice) -> str:
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=6):06d}"


def test_production_settings_require_it_of_data_managers_and_investigators_not_nurses():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "REGISTRY_"))}
    env.update({"DJANGO_SETTINGS_MODULE": "config.settings.production", "SECRET_KEY": "x" * 60,
                "ALLOWED_HOSTS": "registry.example.org", "DATABASE_URL": "sqlite:///x",
                "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0"})
    script = "import django; django.setup(); from django.conf import settings; " \
             "print(sorted(settings.REGISTRY_MFA_REQUIRED_ROLES))"
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True,
                            text=True)
    assert result.stdout.strip() == "['data_manager', 'investigator']", result.stderr


@needs_chromium
@pytest.mark.django_db(transaction=True)
def test_an_investigator_enrols_with_a_real_totp_and_needs_a_code_at_her_next_sign_in(
        mfa_on, new_page, live_server, investigator):
    page = new_page()
    sign_in(page, live_server.url, investigator.username, next_url="/admin/registry/patient/")
    assert "/account/mfa/setup/" in page.url
    assert "Set it up now to continue" in page.inner_text("#mfa-required")
    assert page.locator("#mfa-qr svg").count() == 1
    secret = page.inner_text("#mfa-secret").strip()

    page.fill("#id_token", "000000" if current_code(secret) != "000000" else "111111")
    page.click("#mfa-setup-form input[type=submit]")
    assert "is not the current code" in page.inner_text("#mfa-error")
    page.fill("#id_token", current_code(secret))
    page.click("#mfa-setup-form input[type=submit]")
    assert "Too many wrong codes" in page.inner_text("#mfa-error")  # django-otp's throttle

    time.sleep(2.5)  # the throttle's wait after two wrong codes
    page.fill("#id_token", current_code(secret))
    page.click("#mfa-setup-form input[type=submit]")
    page.wait_for_selector("#mfa-backup-codes")
    codes = page.locator("#mfa-backup-codes li").all_inner_texts()
    assert len(codes) == 10
    page.click("#mfa-continue")
    page.wait_for_load_state("load")
    assert page.url.endswith("/admin/registry/patient/")

    # A new session: password, then the code.
    second = new_page()
    sign_in(second, live_server.url, investigator.username)
    assert "/account/mfa/verify/" in second.url
    second.goto(f"{live_server.url}/admin/registry/patient/")
    assert "/account/mfa/verify/" in second.url, "an admin page opened before the second factor"
    second.fill("#id_otp_token", "12345")
    second.click("#mfa-verify-form input[type=submit]")
    assert second.locator("#mfa-error").count() == 1
    device = TOTPDevice.objects.get(user=investigator, confirmed=True)
    # The code used at enrolment cannot be replayed (django-otp keeps its time step), and
    # the wrong code above holds verification for a second: wait for both.
    time.sleep(1.5)
    while int(time.time()) // 30 <= device.last_t:
        time.sleep(1)
    second.fill("#id_otp_token", current_code(secret))
    second.click("#mfa-verify-form input[type=submit]")
    second.wait_for_load_state("load")
    assert second.url.endswith("/admin/registry/patient/"), second.url
    assert second.locator("#site-name").count() == 1


def test_an_admin_page_sends_an_unverified_investigator_to_set_up_first(mfa_on, client, investigator):
    client.force_login(investigator)
    response = client.get("/admin/registry/patient/")
    assert response.status_code == 302
    assert response.url.startswith("/account/mfa/setup/?next=")


def test_the_browsable_api_refuses_an_unverified_session_but_takes_a_token(mfa_on, client, investigator):
    client.force_login(investigator)
    assert client.get("/api/v1/sites/").status_code in (401, 403)
    key = api_token_create(user=investigator)
    assert client.get("/api/v1/sites/", HTTP_AUTHORIZATION=f"Token {key}").status_code == 200


def test_a_nurse_needs_no_second_factor_unless_the_setting_says_so(mfa_on, client, nurse):
    client.force_login(nurse)
    assert client.get("/admin/registry/patient/").status_code == 200
    mfa_on.REGISTRY_MFA_REQUIRED_ROLES = ["nurse"]
    assert client.get("/admin/registry/patient/").status_code == 302


def test_a_backup_code_signs_in_once(mfa_on, client, investigator):
    device = mfa.mfa_totp_start(user=investigator)
    _, codes = mfa.mfa_totp_confirm(user=investigator, token=device_code(device))
    backup = StaticDevice.objects.get(user=investigator)
    for expected in ("/admin/", "again"):
        client.force_login(investigator)
        response = client.post("/account/mfa/verify/?next=/admin/", {
            "otp_device": backup.persistent_id, "otp_token": codes[0]})
        if expected == "/admin/":
            assert response.status_code == 302 and response.url == "/admin/"
            assert client.get("/admin/registry/patient/").status_code == 200
        else:
            assert response.status_code == 200 and "Invalid token" in response.content.decode()
        client.logout()


def test_replacing_an_authenticator_needs_the_current_one_first(mfa_on, client, investigator):
    device = mfa.mfa_totp_start(user=investigator)
    mfa.mfa_totp_confirm(user=investigator, token=device_code(device))
    client.force_login(investigator)  # password only
    response = client.get("/account/mfa/setup/")
    assert response.status_code == 302 and response.url.startswith("/account/mfa/verify/")


def test_a_data_manager_resets_a_lost_second_factor_with_a_reason(client, investigator, data_manager):
    device = mfa.mfa_totp_start(user=investigator)
    mfa.mfa_totp_confirm(user=investigator, token=device_code(device))
    client.force_login(data_manager)
    client.post("/admin/auth/user/", {"action": "reset_second_factor",
                                      "_selected_action": [investigator.pk], "reason": "phone lost"})
    assert not TOTPDevice.objects.filter(user=investigator).exists()
    assert not StaticDevice.objects.filter(user=investigator).exists()
    row = get_user_model().history.filter(id=investigator.pk).latest("history_date")
    assert (row.history_user, row.history_change_reason) == (data_manager, "second factor reset: phone lost")
    listing = client.get("/admin/otp_totp/totpdevice/").content.decode()
    assert not re.search(r"[0-9a-f]{40}", listing), "a TOTP secret is shown in the admin"

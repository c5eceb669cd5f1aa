"""Second-factor pages (set-up, verification) and the session timer's two endpoints.

Plain Django views in the admin's look (templates extend admin/base_site.html);
the rules are in registry.services.mfa.
"""

import base64
import re
import time
from urllib.parse import urlencode

import qrcode
import qrcode.image.svg
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import JsonResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST
from django_otp import login as otp_login
from django_otp.forms import OTPTokenForm
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from registry.services import mfa

from .middleware import LAST_SEEN_AT

signed_in = login_required(login_url="admin:login")


def _next(request) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                       require_https=request.is_secure()):
        return target
    return "/admin/"


def _page(request, template, title, **context):
    # No navigation sidebar: before the second factor, its links lead nowhere.
    return TemplateResponse(request, template, {
        **admin.site.each_context(request), "is_nav_sidebar_enabled": False, "title": title,
        "next": _next(request), **context})


def _qr_svg(url: str) -> str:
    # One path, no namespace prefixes, so that it shows inline in the page.
    image = qrcode.make(url, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    svg = image.to_string(encoding="unicode")
    svg = svg[svg.index("<svg"):]  # inline: drop the XML declaration
    return re.sub(r'width="[^"]+" height="[^"]+"', 'width="100%" height="100%"', svg, count=1)


@never_cache
@signed_in
def mfa_setup(request):
    """Scan the secret, type the app's code: the authenticator is set up and the
    backup codes are shown once."""
    user = request.user
    if mfa.mfa_enrolled(user) and not user.is_verified():
        # Replacing an authenticator needs the current one (or a backup code) first.
        return redirect(f"{reverse('accounts:mfa-verify')}?{urlencode({'next': request.path})}")
    error = None
    if request.method == "POST":
        try:
            device, codes = mfa.mfa_totp_confirm(user=user, token=request.POST.get("token", ""))
        except ValidationError as exc:
            error = " ".join(exc.messages)
        else:
            otp_login(request, device)
            return _page(request, "registry/accounts/mfa_backup_codes.html", "Your backup codes",
                         codes=codes)
    device = mfa.mfa_totp_start(user=user)
    secret = base64.b32encode(device.bin_key).decode()
    return _page(request, "registry/accounts/mfa_setup.html", "Set up two-step sign-in",
                 qr_svg=mark_safe(_qr_svg(device.config_url)), secret=secret, error=error,
                 required=mfa.mfa_required(user), enrolled=mfa.mfa_enrolled(user),
                 backup_left=StaticToken.objects.filter(device__user=user).count())


@never_cache
@signed_in
def mfa_verify(request):
    """The code from the authenticator app (or a backup code), once per session."""
    user = request.user
    if not mfa.mfa_enrolled(user):
        return redirect(f"{reverse('accounts:mfa-setup')}?{urlencode({'next': _next(request)})}")
    app = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    form = OTPTokenForm(user, request, data=request.POST or None,
                        initial={"otp_device": app.persistent_id})
    form.fields["otp_device"].label = "Use"
    form.fields["otp_token"].label = "Code"
    if request.method == "POST" and form.is_valid():
        otp_login(request, user.otp_device)
        return redirect(_next(request))
    return _page(request, "registry/accounts/mfa_verify.html", "Two-step sign-in", form=form)


@require_POST
@signed_in
def mfa_backup_codes(request):
    """Ten new backup codes (the old ones stop working); needs this session verified."""
    if not request.user.is_verified():
        messages.error(request, "Give a code from your authenticator app first.")
        return redirect(f"{reverse('accounts:mfa-verify')}?"
                        f"{urlencode({'next': reverse('accounts:mfa-setup')})}")
    codes = mfa.mfa_backup_codes_new(user=request.user)
    return _page(request, "registry/accounts/mfa_backup_codes.html", "Your backup codes", codes=codes)


def _idle_left(request) -> float:
    last_seen = request.session.get(LAST_SEEN_AT) or time.time()
    return max(0.0, settings.REGISTRY_SESSION_IDLE_MINUTES * 60 - (time.time() - last_seen))


@require_GET
@never_cache
def session_status(request):
    """Seconds until the idle sign-out (the page script asks before it warns); does
    not count as activity."""
    if not request.user.is_authenticated:
        return JsonResponse({"signed_in": False, "idle_seconds_left": 0})
    return JsonResponse({"signed_in": True, "idle_seconds_left": round(_idle_left(request))})


@require_POST
@never_cache
def session_keepalive(request):
    """"Stay signed in" on the warning: counts as activity."""
    if not request.user.is_authenticated:
        return JsonResponse({"signed_in": False, "idle_seconds_left": 0}, status=401)
    request.session[LAST_SEEN_AT] = time.time()
    return JsonResponse({"signed_in": True, "idle_seconds_left": round(_idle_left(request))})

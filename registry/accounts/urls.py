"""/account/: second-factor pages and the session timer's endpoints."""

from django.urls import path

from . import views

app_name = "accounts"

urlpatterns = [
    path("mfa/setup/", views.mfa_setup, name="mfa-setup"),
    path("mfa/verify/", views.mfa_verify, name="mfa-verify"),
    path("mfa/backup-codes/", views.mfa_backup_codes, name="mfa-backup-codes"),
    path("session/", views.session_status, name="session-status"),
    path("session/keepalive/", views.session_keepalive, name="session-keepalive"),
]

"""Operational records: API tokens, reminder log, export log, import runs.

Not clinical data. The logs have no history tables (they are themselves logs);
API tokens have one, since creating and revoking a token changes who may read
the registry (who did it and why, as for roles).
"""

import hashlib

from django.conf import settings
from django.db import models
from django.utils import timezone

from .base import history


def hash_token(key: str) -> str:
    # Tokens are 128 random bits, so a fast hash is enough (no brute force).
    return hashlib.sha256(key.strip().upper().encode()).hexdigest()


class ApiTokenQuerySet(models.QuerySet):
    def active(self):
        now = timezone.now()
        return self.filter(revoked_at__isnull=True, expires_at__gt=now)


class ApiToken(models.Model):
    """An API token (32 upper-case hex characters, as REDCap's), stored hashed."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(
        max_length=4, editable=False, help_text="First characters, to tell tokens apart."
    )
    label = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Every token expires (REGISTRY_API_TOKEN_DAYS, at most REGISTRY_API_TOKEN_MAX_DAYS).
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    # A use is not a change: last_used_at stays out of the history.
    history = history(excluded_fields=["last_used_at"])

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        verbose_name = "API token"
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.prefix}… ({self.user})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and self.expires_at > timezone.now()


class ReminderLog(models.Model):
    """One reminder about one visit's window, claimed before sending.

    The unique (visit, kind, window) makes sending exactly-once in effect: a second
    run or a second worker cannot claim the same reminder again. A visit moved to
    a new window (implant date corrected, follow-up resumed) is reminded again for
    it; the rows about its old window stay as the record of what was sent.
    """

    class Kind(models.TextChoices):
        DUE_SOON = "due_soon", "Window opens soon"
        OVERDUE = "overdue", "Window closed, visit not done"
        # One per serious adverse event and ISO 14155 class (services/safety/alerts.py):
        # an upgrade (SAE -> SADE -> USADE) is alerted again. Its window is
        # awareness .. reporting deadline. "safety_alert" is the SAE's (the older rows'
        # kind, relabelled per class by migration 0022).
        SAFETY_ALERT = "safety_alert", "Safety alert (SAE)"
        # E-mails to the patient with her questionnaire link (services/epro), claimed
        # the same exactly-once way: the invitation when the window opens, then reminders.
        EPRO_INVITATION = "epro_inv", "Questionnaire invitation to the patient"
        EPRO_REMINDER_1 = "epro_rem1", "Questionnaire reminder 1 to the patient"
        EPRO_REMINDER_2 = "epro_rem2", "Questionnaire reminder 2 to the patient"
        EPRO_REMINDER_3 = "epro_rem3", "Questionnaire reminder 3 to the patient"
        SAFETY_ALERT_SADE = "safety_sade", "Safety alert (SADE)"
        SAFETY_ALERT_USADE = "safety_usade", "Safety alert (USADE)"

    class Status(models.TextChoices):
        CLAIMED = "claimed", "Claimed (being sent)"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed (will be retried)"

    visit = models.ForeignKey("registry.Visit", null=True, blank=True, on_delete=models.CASCADE,
                              related_name="reminders")
    adverse_event = models.ForeignKey("registry.AdverseEvent", null=True, blank=True,
                                      on_delete=models.CASCADE, related_name="alerts")
    site = models.ForeignKey("registry.Site", on_delete=models.CASCADE, related_name="reminders")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    window_start = models.DateField(help_text="The visit's window this reminder was about.")
    window_end = models.DateField()
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.CLAIMED)
    digest_date = models.DateField(help_text="The site's local day of the digest.")
    claimed_at = models.DateTimeField(default=timezone.now)
    claim_token = models.CharField(max_length=36, blank=True, db_index=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    recipients = models.TextField(blank=True)

    class Meta:
        ordering = ["-digest_date", "site", "visit"]
        constraints = [
            models.UniqueConstraint(fields=["visit", "kind", "window_start", "window_end"],
                                    name="one_reminder_per_visit_kind_window"),
            models.UniqueConstraint(fields=["adverse_event", "kind"],
                                    condition=models.Q(adverse_event__isnull=False),
                                    name="one_alert_per_event_kind"),
            models.CheckConstraint(condition=models.Q(visit__isnull=False)
                                   | models.Q(adverse_event__isnull=False),
                                   name="reminder_about_a_visit_or_an_event"),
        ]
        indexes = [models.Index(fields=["site", "status"], name="reminder_site_status")]

    def __str__(self):
        about = f"visit {self.visit_id}" if self.visit_id else f"event {self.adverse_event_id}"
        return f"{self.get_kind_display()} for {about} ({self.status})"


class ExportLog(models.Model):
    """Who exported what, with which filters, how many rows, when."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="exports"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    channel = models.CharField(max_length=20, default="api", help_text="api, redcap, fhir, command")
    dataset = models.CharField(max_length=50)
    format = models.CharField(max_length=10)
    filters = models.JSONField(default=dict, blank=True)
    dates = models.CharField(max_length=10, default="relative")
    rows = models.PositiveIntegerField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Set when the stream stopped before its end (an error, or the client hung up):
    # the rows counted so far went out, the file is incomplete.
    aborted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.dataset}.{self.format} by {self.user} at {self.created_at:%Y-%m-%d %H:%M}"


class ImportRun(models.Model):
    """One import of a CSV bundle (dry run or real) and what came of it."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="imports"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    source = models.CharField(max_length=255)
    dry_run = models.BooleanField(default=False)
    reason = models.CharField(max_length=255, blank=True)
    succeeded = models.BooleanField(default=False)
    counts = models.JSONField(default=dict, blank=True)
    errors = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"Import of {self.source} at {self.created_at:%Y-%m-%d %H:%M}"

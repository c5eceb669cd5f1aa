"""Questionnaire links (ePRO): a patient answers one visit's questionnaires herself.

A link is a random token (256 bits, `secrets.token_urlsafe(32)`) of which only the
SHA-256 is stored; it belongs to one visit and works from the visit's window start to
its end plus REGISTRY_EPRO_GRACE_DAYS, until the answers are submitted, the visit is
entered by a nurse, or the link is revoked (services/epro). Not clinical data itself:
the answers land in the visit; the link keeps a draft between pages and, when a nurse
got there first, the answers that were not taken (the conflict she is shown).
"""

import hashlib

from django.conf import settings
from django.db import models
from django.utils import timezone

from .base import history


def hash_link_token(token: str) -> str:
    # 256 random bits: a fast hash is enough, nobody can search that space.
    return hashlib.sha256(token.strip().encode()).hexdigest()


class EproLink(models.Model):
    class Channel(models.TextChoices):
        EMAIL = "email", "E-mail invitation"
        REMINDER = "reminder", "E-mail reminder"
        PRINTED = "printed", "Printed / QR code in clinic"

    visit = models.ForeignKey("registry.Visit", on_delete=models.CASCADE, related_name="epro_links")
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    channel = models.CharField(max_length=8, choices=Channel.choices)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+")
    opened_at = models.DateTimeField(null=True, blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_reason = models.CharField(max_length=200, blank=True)
    # The language the patient chose on the page (empty: her epro_language).
    language = models.CharField(max_length=2, blank=True)
    # Answers saved so far (save and continue), by export column name.
    draft = models.JSONField(default=dict, blank=True)
    draft_saved_at = models.DateTimeField(null=True, blank=True)
    # Submitted answers the visit did not take (a nurse had entered it): shown to her.
    conflict = models.JSONField(null=True, blank=True)
    # Creation and revocation are in the history (who, why); opening and saving are not.
    history = history(excluded_fields=["opened_at", "draft", "draft_saved_at", "language"])

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "questionnaire link"

    def __str__(self):
        return f"Questionnaire link {self.pk} for visit {self.visit_id}"

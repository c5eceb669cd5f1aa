"""Pieces every clinical model shares: audit history, timestamps, optimistic locking."""

import datetime

from django.db import models
from django.utils import timezone
from simple_history.models import HistoricalRecords


def today_anywhere() -> datetime.date:
    """The latest calendar date at any site on Earth (UTC+14), for "not in the
    future" checks: the server's UTC date would refuse a visit done today in
    Amsterdam between midnight and 01:00 local time."""
    return (timezone.now() + datetime.timedelta(hours=14)).date()


def history(**kwargs):
    """Audit trail for a clinical model (who, when in UTC, what, why)."""
    return HistoricalRecords(inherit=False, **kwargs)


class ClinicalModel(models.Model):
    """A row of clinical data: timestamped and versioned.

    `version` increases on every save through the services; a save that started
    from an older version is refused (no lost updates, see services.audit).
    """

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)
    version = models.PositiveIntegerField(default=1, editable=False)

    class Meta:
        abstract = True

"""Pieces every clinical model shares: audit history, timestamps, optimistic locking."""

from django.db import models
from simple_history.models import HistoricalRecords


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

"""Data queries: a data manager (or a named data check) asks the site about one value.

A query points at a record generically: `record_type` (patient, implant, visit,
adverse_event; more can be registered by services.queries.RECORD_TYPES, e.g. PROM
items) and `record_id` (its primary key), with `record_key` the key a person reads
(registry id, implant ref, "NIJ-0007 m3"), and `field` the field (or item) asked
about ("" for the record as a whole). `rule` is the data check's name ("" when a
person opened it). The thread of messages says who said what and when; the query's
own who/when columns and its history say who moved it to which status and why.

Status: open -> answered (the site replied) -> closed (the data manager accepts)
or back to open (reopened); open or answered -> cancelled (asked in error).
"""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from .base import ClinicalModel, history
from .patients import Patient


class QueryStatus(models.TextChoices):
    OPEN = "open", "Open (waiting for the site)"
    ANSWERED = "answered", "Answered (waiting for the data manager)"
    CLOSED = "closed", "Closed"
    CANCELLED = "cancelled", "Cancelled"


LIVE_STATUSES = (QueryStatus.OPEN, QueryStatus.ANSWERED)


class QueryAction(models.TextChoices):
    OPEN = "open", "Opened"
    ANSWER = "answer", "Answered"
    NOTE = "note", "Note"
    CLOSE = "close", "Closed"
    REOPEN = "reopen", "Reopened"
    CANCEL = "cancel", "Cancelled"


class QueryQuerySet(models.QuerySet):
    def live(self):
        """Open or answered: the queries still waiting for someone."""
        return self.filter(status__in=LIVE_STATUSES)


class DataQuery(ClinicalModel):
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="queries")
    record_type = models.CharField(max_length=24)
    record_id = models.PositiveBigIntegerField()
    record_key = models.CharField(max_length=80, help_text="The record as a person names it.")
    field = models.CharField(max_length=64, blank=True,
                             help_text="The field or item asked about; empty for the whole record.")
    rule = models.CharField(max_length=64, blank=True,
                            help_text="The data check that opened it; empty when opened by a person.")
    status = models.CharField(max_length=10, choices=QueryStatus.choices, default=QueryStatus.OPEN)
    opened_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                                  related_name="+")
    opened_at = models.DateTimeField()
    answered_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                    on_delete=models.PROTECT, related_name="+")
    answered_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                  on_delete=models.PROTECT, related_name="+")
    closed_at = models.DateTimeField(null=True, blank=True)
    # Closed because a re-run of its check no longer found the anomaly (not a person's call):
    # a later finding of the same anomaly opens a new query; a person's close is final.
    closed_by_check = models.BooleanField(default=False)
    history = history()

    objects = QueryQuerySet.as_manager()

    class Meta:
        verbose_name = "data query"
        verbose_name_plural = "data queries"
        ordering = ["-opened_at", "-pk"]
        constraints = [
            # A check finding opens one query, however often the check runs.
            models.UniqueConstraint(
                fields=["rule", "record_type", "record_id", "field"],
                condition=Q(status__in=LIVE_STATUSES) & ~Q(rule=""),
                name="one_live_query_per_finding",
                violation_error_message="This check already has an open query on this field."),
            models.CheckConstraint(condition=Q(status__in=[s.value for s in QueryStatus]),
                                   name="query_status_known"),
        ]
        indexes = [
            models.Index(fields=["status", "patient"], name="query_status_patient"),
            models.Index(fields=["record_type", "record_id"], name="query_record"),
            models.Index(fields=["rule", "status"], name="query_rule_status"),
        ]

    def __str__(self):
        where = f"{self.record_key}" + (f" {self.field}" if self.field else "")
        return f"Query on {where} ({self.get_status_display().split(' (')[0].lower()})"

    @property
    def is_live(self) -> bool:
        return self.status in LIVE_STATUSES

    def clean(self):
        errors = {}
        if self.status == QueryStatus.ANSWERED and not self.answered_at:
            errors["answered_at"] = "An answered query needs the time of the answer."
        if self.status in (QueryStatus.CLOSED, QueryStatus.CANCELLED) and not self.closed_at:
            errors["closed_at"] = "A closed or cancelled query needs the time it was closed."
        if errors:
            raise ValidationError(errors)


class QueryMessage(ClinicalModel):
    """One step of a query's thread: the question, an answer, a note, the closing note."""

    query = models.ForeignKey(DataQuery, on_delete=models.CASCADE, related_name="messages")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    action = models.CharField(max_length=8, choices=QueryAction.choices)
    text = models.TextField(max_length=4000)
    history = history()

    class Meta:
        ordering = ["query", "created_at", "pk"]

    def __str__(self):
        return f"{self.get_action_display()} by {self.author}"

    def clean(self):
        if not (self.text or "").strip():
            raise ValidationError({"text": "Write the message (it is the query's record)."})

from django.core.exceptions import ValidationError
from django.db import models

from .base import ClinicalModel, history


class FollowUpProtocol(ClinicalModel):
    """Visit timepoints as offsets from the implant date, each with a window.

    Edited by data managers. The protocol marked default applies to sites
    without their own.
    """

    name = models.CharField(max_length=100, unique=True)
    is_default = models.BooleanField(default=False)
    description = models.TextField(blank=True)
    history = history()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"],
                condition=models.Q(is_default=True),
                name="one_default_protocol",
            )
        ]

    def __str__(self):
        return self.name

    @classmethod
    def default(cls):
        return cls.objects.filter(is_default=True).prefetch_related("timepoints").first()


class ProtocolTimepoint(ClinicalModel):
    protocol = models.ForeignKey(
        FollowUpProtocol, on_delete=models.CASCADE, related_name="timepoints"
    )
    months = models.PositiveSmallIntegerField(
        help_text="Months after the implant date; the timepoint is called m<months>."
    )
    window_before_days = models.PositiveSmallIntegerField(default=14)
    window_after_days = models.PositiveSmallIntegerField(default=14)
    history = history()

    class Meta:
        ordering = ["protocol", "months"]
        constraints = [
            models.UniqueConstraint(fields=["protocol", "months"], name="unique_protocol_month"),
            models.CheckConstraint(condition=models.Q(months__gte=1), name="timepoint_months_gte_1"),
        ]

    def __str__(self):
        return f"{self.code} (-{self.window_before_days}/+{self.window_after_days} d)"

    @property
    def code(self) -> str:
        return f"m{self.months}"

    def clean(self):
        if self.months is not None and self.months < 1:
            raise ValidationError({"months": f"Months must be 1 or more, not {self.months}."})

"""Device components of an implant: the IPG, each lead and extension as a row, with
its own implanted and removed dates and coded removal reason; revisions point to the
components they touch (RevisionComponent), an explant to those it removed
(`removed_at_explant`). Serial numbers and the UDI-PI stay in DeviceIdentifier
(restricted, never exported); the UDI-DI names the model and is exported."""

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q

from .base import ClinicalModel, history, today_anywhere
from .choices import ComponentKind, RemovalReason, RevisionAction
from .implants import Implant, Revision


class DeviceComponent(ClinicalModel):
    implant = models.ForeignKey(Implant, on_delete=models.CASCADE, related_name="components")
    kind = models.CharField(max_length=10, choices=ComponentKind.choices)
    manufacturer = models.CharField(max_length=100, blank=True)
    model = models.CharField(max_length=100, blank=True)
    udi_di = models.CharField(
        "UDI-DI", max_length=100, blank=True,
        help_text="Device identifier of the model (GS1 GTIN, HIBCC, ...): exported. The "
                  "production identifier (UDI-PI) and serial go with the device identifiers.")
    rechargeable = models.BooleanField(null=True, blank=True, help_text="IPGs.")
    implanted_on = models.DateField(null=True, blank=True,
                                    help_text="Empty = the implant date.")
    removed_on = models.DateField(null=True, blank=True)
    removal_reason = models.CharField(max_length=20, choices=RemovalReason.choices, blank=True)
    removal_detail = models.CharField(max_length=200, blank=True,
                                      help_text="Free text; never exported.")
    removed_at_explant = models.BooleanField(
        default=False, editable=False, help_text="Removed by the implant's explant (set by it).")
    history = history()

    class Meta:
        ordering = ["implant", "kind", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(removed_on__isnull=True) | Q(implanted_on__isnull=True)
                | Q(removed_on__gte=F("implanted_on")),
                name="component_removed_after_implanted"),
        ]

    def __str__(self):
        name = " ".join(p for p in (self.manufacturer, self.model) if p)
        return f"{self.get_kind_display()} {name}".strip() + (f" of {self.implant.ref}"
                                                              if self.implant_id else "")

    @property
    def start(self):
        """The day it went in: its own date, else the implant's."""
        return self.implanted_on or (self.implant.implant_date if self.implant_id else None)

    def clean(self):
        errors = {}
        start = self.start
        for name in ("implanted_on", "removed_on"):
            value = getattr(self, name)
            if value and value > today_anywhere():
                errors[name] = f"{self._meta.get_field(name).verbose_name.capitalize()} {value} " \
                               f"is in the future."
        implant_date = self.implant.implant_date if self.implant_id else None
        if self.implanted_on and implant_date and self.implanted_on < implant_date:
            errors["implanted_on"] = (f"Implanted {self.implanted_on}, before the implant date "
                                      f"{implant_date} (a trial lead belongs to the trial).")
        if self.removed_on and start and self.removed_on < start:
            errors["removed_on"] = f"Removed {self.removed_on}, before it was implanted ({start})."
        if self.removed_on and not self.removal_reason:
            errors["removal_reason"] = "Give the reason for the removal."
        if self.removal_reason and not self.removed_on:
            errors["removed_on"] = "A removal reason is given; give the date of the removal."
        if self.removal_reason == RemovalReason.OTHER and not self.removal_detail:
            errors["removal_detail"] = "Say what the other reason was."
        if errors:
            raise ValidationError(errors)


class RevisionComponent(ClinicalModel):
    """A component a revision touched, and what was done to it."""

    revision = models.ForeignKey(Revision, on_delete=models.CASCADE, related_name="touched")
    component = models.ForeignKey(DeviceComponent, on_delete=models.CASCADE,
                                  related_name="revisions")
    action = models.CharField(max_length=12, choices=RevisionAction.choices)
    history = history()

    class Meta:
        ordering = ["revision", "component"]
        constraints = [models.UniqueConstraint(fields=["revision", "component"],
                                               name="one_action_per_revision_component")]

    def __str__(self):
        return f"{self.get_action_display()}: {self.component}"

    @property
    def removes(self) -> bool:
        return self.action in (RevisionAction.REMOVED, RevisionAction.REPLACED)

    def clean(self):
        if self.revision_id and self.component_id and \
                self.component.implant_id != self.revision.implant_id:
            raise ValidationError({"component": f"{self.component} belongs to another implant than "
                                                f"the revision."})

"""Device components: recording them, the revisions that touch them, and the explant
that removes what is still in place.

Promises: a component removed or replaced in a revision gets the revision's date and
coded reason (the detail kept as free text, never exported); an explant removes every
component still in place on its date with the explant's reason and marks them removed
at the explant, and moving or undoing the explant moves or undoes exactly those; every
write carries the actor and a reason (history).
"""

from django.core.exceptions import ValidationError
from django.db import transaction

from registry.models import DeviceComponent, Implant, Revision, RevisionComponent
from registry.models.choices import RemovalReason

from .audit import record_delete, record_save

EXPLANT_REASON = "Removed at the explant"


def component_save(*, component: DeviceComponent, actor, reason: str = "",
                   expected_version: int | None = None) -> DeviceComponent:
    return record_save(component, actor=actor, reason=reason or "Device component",
                       expected_version=expected_version)


def revision_record(*, revision: Revision, touched: list[tuple[DeviceComponent, str]], actor,
                    reason: str = "") -> Revision:
    """Record a revision with the components it touched (`touched`: component, action).
    Components removed or replaced get the revision's date and reason. Refuses a
    component of another implant, or one already removed before the revision."""
    reason = reason or "Revision"
    with transaction.atomic():
        record_save(revision, actor=actor, reason=reason)
        kept = {c.pk for c, _ in touched}
        for row in RevisionComponent.objects.filter(revision=revision).exclude(component_id__in=kept):
            record_delete(row, actor=actor, reason=reason)
        for component, action in touched:
            row = RevisionComponent.objects.filter(revision=revision, component=component).first() \
                or RevisionComponent(revision=revision, component=component)
            row.action = action
            record_save(row, actor=actor, reason=reason)
        revision_components_sync(revision=revision, actor=actor, reason=reason)
    return revision


def revision_components_sync(*, revision: Revision, actor, reason: str = "") -> None:
    """Components the revision removed or replaced get its date and coded reason."""
    for row in RevisionComponent.objects.filter(revision=revision).select_related("component"):
        component = row.component
        if not row.removes:
            continue
        if component.removed_on and component.removed_on < revision.date:
            raise ValidationError({"component": f"{component} was removed on {component.removed_on}, "
                                                f"before the revision ({revision.date})."})
        component.removed_on = revision.date
        component.removal_reason = revision.reason_code
        component.removal_detail = revision.reason if revision.reason_code == RemovalReason.OTHER \
            else ""
        component.removed_at_explant = False
        record_save(component, actor=actor, reason=f"Revision on {revision.date}: {reason}")


def explant_components_sync(*, implant: Implant, actor, reason: str = "") -> int:
    """Keep the components in step with the implant's explant (module docstring); returns
    how many components changed."""
    why = f"{EXPLANT_REASON} ({reason})" if reason else EXPLANT_REASON
    changed = 0
    components = DeviceComponent.objects.select_for_update().filter(implant_id=implant.pk) \
        .order_by("pk")
    for component in components:
        before = (component.removed_on, component.removal_reason, component.removal_detail,
                  component.removed_at_explant)
        if implant.explant_date and (component.removed_at_explant or component.removed_on is None):
            component.removed_on = implant.explant_date
            component.removal_reason = implant.explant_reason_code
            component.removal_detail = implant.explant_reason \
                if implant.explant_reason_code == RemovalReason.OTHER else ""
            component.removed_at_explant = True
        elif not implant.explant_date and component.removed_at_explant:
            component.removed_on, component.removal_reason = None, ""
            component.removal_detail, component.removed_at_explant = "", False
        if before != (component.removed_on, component.removal_reason, component.removal_detail,
                      component.removed_at_explant):
            record_save(component, actor=actor, reason=why)
            changed += 1
    return changed

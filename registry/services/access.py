"""Who may see what: the one access rule every channel uses.

Admin querysets, API viewsets, exports, the REDCap and FHIR endpoints, tasks
and commands all call `visible()` (or `sites_for` / `patients_for`), so the
rule cannot drift between channels.

- Data managers and superusers see every site.
- Investigators see their sites, or every site with `all_sites`.
- Nurses see their sites.
- Anyone else sees nothing.
Identifiers are shown only to nurses and data managers who are members of the
patient's own site, and never leave through the API or exports.
"""

from django.db.models import Model, QuerySet

from registry.models import (
    AdverseEvent,
    ContactAttempt,
    DataQuery,
    DeviceComponent,
    DeviceDeficiency,
    DeviceIdentifier,
    Disposition,
    ExportLog,
    Implant,
    PainScore,
    Patient,
    PatientIdentifiers,
    ProgrammingSession,
    PromAnswer,
    PromSheet,
    QueryMessage,
    RegistryRole,
    ReminderLog,
    Revision,
    RevisionComponent,
    Role,
    SafetyFollowUp,
    Site,
    Visit,
)

# How each model reaches its site.
SITE_PATH: dict[type[Model], str] = {
    Site: "id",
    Patient: "site_id",
    PatientIdentifiers: "patient__site_id",
    Implant: "patient__site_id",
    Revision: "implant__patient__site_id",
    DeviceIdentifier: "implant__patient__site_id",
    Visit: "patient__site_id",
    PainScore: "visit__patient__site_id",
    PromAnswer: "visit__patient__site_id",
    PromSheet: "visit__patient__site_id",
    AdverseEvent: "patient__site_id",
    ReminderLog: "site_id",
    DataQuery: "patient__site_id",
    QueryMessage: "query__patient__site_id",
    Disposition: "patient__site_id",
    ContactAttempt: "patient__site_id",
    DeviceComponent: "implant__patient__site_id",
    ProgrammingSession: "implant__patient__site_id",
    RevisionComponent: "revision__implant__patient__site_id",
    DeviceDeficiency: "patient__site_id",
    SafetyFollowUp: "adverse_event__patient__site_id",
}


def role_of(user) -> RegistryRole | None:
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return None
    cached = getattr(user, "_registry_role_cache", False)
    if cached is not False:
        return cached
    role = RegistryRole.objects.filter(user=user).first()
    user._registry_role_cache = role
    return role


def forget_role(user) -> None:
    """Drop the role cached on `user` (after it changed), so the next check reads it anew."""
    user.__dict__.pop("_registry_role_cache", None)


def role_name(user) -> str | None:
    if getattr(user, "is_superuser", False) and user.is_active:
        return Role.DATA_MANAGER
    role = role_of(user)
    return role.role if role else None


def sees_all_sites(user) -> bool:
    if getattr(user, "is_superuser", False) and user.is_active:
        return True
    role = role_of(user)
    if role is None:
        return False
    return role.role == Role.DATA_MANAGER or (role.role == Role.INVESTIGATOR and role.all_sites)


def member_site_ids(user) -> set[int]:
    """Sites the user is explicitly a member of (identifiers are bound to these)."""
    role = role_of(user)
    if role is None:
        return set()
    if not hasattr(role, "_site_ids"):
        role._site_ids = set(role.sites.values_list("id", flat=True))
    return role._site_ids


def visible(queryset: QuerySet, user) -> QuerySet:
    """Narrow `queryset` to the rows `user` may see."""
    path = SITE_PATH.get(queryset.model)
    if path is None:
        raise LookupError(f"No access rule for {queryset.model.__name__}")
    if role_name(user) is None:
        return queryset.none()
    if sees_all_sites(user):
        return queryset
    return queryset.filter(**{f"{path}__in": list(member_site_ids(user))})


def sites_for(user) -> QuerySet:
    return visible(Site.objects.all(), user)


def patients_for(user) -> QuerySet:
    """Which patients may this user see."""
    return visible(Patient.objects.all(), user)


def can_see_patient(user, patient: Patient) -> bool:
    return sees_all_sites(user) or patient.site_id in member_site_ids(user)


def can_edit(user, site_id: int | None = None) -> bool:
    """Nurses enter data at their sites; data managers everywhere; investigators never."""
    name = role_name(user)
    if name == Role.DATA_MANAGER:
        return True
    if name == Role.NURSE:
        return site_id is None or site_id in member_site_ids(user)
    return False


def can_see_identifiers(user, site_id: int) -> bool:
    name = role_name(user)
    return name in (Role.NURSE, Role.DATA_MANAGER) and site_id in member_site_ids(user)


def is_data_manager(user) -> bool:
    return role_name(user) == Role.DATA_MANAGER


def export_logs_for(user) -> QuerySet:
    qs = ExportLog.objects.all()
    return qs if is_data_manager(user) else qs.filter(user=user)


def identifier_site_ids(user) -> set[int]:
    """The sites whose patients' identifiers (names, record numbers, device serials)
    `user` sees: each of her own sites where `can_see_identifiers` holds. Empty for
    investigators, for users without a role, and for all-sites rights without
    membership (identifiers are bound to the sites a user is a member of)."""
    return {site_id for site_id in member_site_ids(user) if can_see_identifiers(user, site_id)}

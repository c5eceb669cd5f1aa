"""Registry users and their roles."""

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction

from registry.models import RegistryRole, Role, Site


def registry_user_save(
    *,
    username: str,
    role: str,
    site_codes: list[str] | None = None,
    all_sites: bool = False,
    password: str | None = None,
    email: str = "",
    validate_pw: bool = True,
    actor=None,
    reason: str = "registry_user",
):
    """Create or update a user with one registry role.

    Refuses unknown roles and site codes (naming them), nurses without a site,
    and `all_sites` for nurses (a nurse works at her own sites).
    """
    if role not in Role.values:
        raise ValidationError(
            {"role": f"Unknown role '{role}'; expected one of {', '.join(Role.values)}."}
        )
    codes = [c.strip().upper() for c in (site_codes or []) if c.strip()]
    sites = list(Site.objects.filter(code__in=codes))
    unknown = sorted(set(codes) - {s.code for s in sites})
    if unknown:
        raise ValidationError({"site": f"Unknown site code(s): {', '.join(unknown)}."})
    if role == Role.NURSE and all_sites:
        raise ValidationError({"all_sites": "A nurse works at named sites; --all-sites is refused."})
    if role == Role.NURSE and not sites:
        raise ValidationError({"site": "A nurse needs at least one site (--site CODE)."})
    User = get_user_model()
    with transaction.atomic():
        user, created = User.objects.get_or_create(username=username)
        if password is not None:
            if validate_pw:
                validate_password(password, user)
            user.set_password(password)
        elif created:
            user.set_unusable_password()
        user.is_staff = True  # the admin is the nurses' and data managers' workspace
        if email:
            user.email = email
        user.save()
        registry_role = RegistryRole.objects.filter(user=user).first() or RegistryRole(user=user)
        registry_role.role = role
        registry_role.all_sites = all_sites or role == Role.DATA_MANAGER
        # Role changes are audited like clinical data.
        registry_role._history_user = actor
        registry_role._change_reason = reason
        registry_role.save()
        registry_role.sites.set(sites)
    return user, created

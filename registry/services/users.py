"""Registry users and their roles, with separation of duties.

Who may change whose rights (`role_change_refusal`):

- A registry administrator (a superuser) and the command line (`registry_user`,
  run by whoever runs the server, acting as the registry system user) may make
  any change.
- A data manager may add or remove only sites she is a member of herself (the
  sites she manages), for users whose sites all lie among hers, and never on her
  own account or role. Granting registry-wide reach (the data-manager role, or an
  investigator's "all sites") needs a registry administrator.
- Nobody else changes roles.
Every grant and revoke needs a reason; both are in the role's history with the
acting user (django-simple-history), and losing a role revokes the user's API tokens.
"""

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction

from registry.models import RegistryRole, Role, Site

from . import access
from .audit import SYSTEM_USERNAME
from .tokens import api_tokens_revoke_all

SELF_CHANGE = ("You cannot change your own role, sites or account: ask another data manager "
               "or a registry administrator (separation of duties).")


@dataclass(frozen=True)
class Grant:
    """What a role gives: the role, its sites (codes) and registry-wide reach."""

    role: str | None
    sites: frozenset[str]
    all_sites: bool

    @property
    def registry_wide(self) -> bool:
        return self.role == Role.DATA_MANAGER or (self.role == Role.INVESTIGATOR and self.all_sites)

    @classmethod
    def of(cls, registry_role: RegistryRole | None) -> "Grant":
        if registry_role is None or registry_role.pk is None:
            return cls(None, frozenset(), False)
        return cls(registry_role.role,
                   frozenset(registry_role.sites.values_list("code", flat=True)),
                   registry_role.all_sites)


def is_registry_admin(actor) -> bool:
    """Superusers and the system user (commands run on the server) grant anything."""
    return actor is None or actor.username == SYSTEM_USERNAME or (
        actor.is_superuser and actor.is_active)


def user_manage_refusal(actor, user) -> str | None:
    """Why `actor` may not change `user`'s account or role (None: she may)."""
    if is_registry_admin(actor):
        return None
    if actor.pk == user.pk:
        return SELF_CHANGE
    if not access.is_data_manager(actor):
        return "Only data managers change users and roles."
    if user.is_superuser:
        return "Registry administrators (superusers) are changed by a registry administrator."
    theirs = Grant.of(RegistryRole.objects.filter(user=user).first())
    mine = _member_codes(actor)
    outside = sorted(theirs.sites - mine)
    if outside:
        return (f"{user.username} works at {', '.join(outside)}, which you do not manage: "
                "ask a data manager of that site.")
    if theirs.role == Role.DATA_MANAGER:
        return "Data managers are changed by a registry administrator."
    return None


def role_change_refusal(actor, user, before: Grant, after: Grant) -> str | None:
    """Why `actor` may not turn `before` into `after` for `user` (None: she may)."""
    refusal = user_manage_refusal(actor, user)
    if refusal or is_registry_admin(actor):
        return refusal
    return _grant_refusal(actor, before, after)


def new_user_grant_refusal(actor, after: Grant) -> str | None:
    """Why `actor` may not give a user she is creating the grant `after` (None: she may):
    the same separation of duties as `role_change_refusal`, for an account not saved yet."""
    if is_registry_admin(actor):
        return None
    if not access.is_data_manager(actor):
        return "Only data managers change users and roles."
    return _grant_refusal(actor, Grant(None, frozenset(), False), after)


def _grant_refusal(actor, before: Grant, after: Grant) -> str | None:
    outside = sorted((before.sites ^ after.sites) - _member_codes(actor))
    if outside:
        return (f"You may grant and revoke only sites you manage; not {', '.join(outside)}.")
    if after.registry_wide and not before.registry_wide:
        what = "the data-manager role" if after.role == Role.DATA_MANAGER else "all sites"
        return f"Granting {what} (every site) needs a registry administrator."
    return None


def _member_codes(user) -> set[str]:
    return set(Site.objects.filter(id__in=access.member_site_ids(user)).values_list("code", flat=True))


def registry_role_save(*, user, role: str, site_codes: list[str] | None = None,
                       all_sites: bool = False, actor=None, reason: str) -> RegistryRole:
    """Give `user` one registry role at `site_codes` (or all sites), as `actor`, with `reason`.

    Refuses unknown roles and site codes (naming them), nurses without a site,
    `all_sites` for nurses, an empty reason, and anything `role_change_refusal`
    refuses (ValidationError; nothing is saved). A change of role type revokes
    the user's API tokens.
    """
    if role not in Role.values:
        raise ValidationError(
            {"role": f"Unknown role '{role}'; expected one of {', '.join(Role.values)}."}
        )
    codes = sorted({c.strip().upper() for c in (site_codes or []) if c.strip()})
    sites = list(Site.objects.filter(code__in=codes))
    unknown = sorted(set(codes) - {s.code for s in sites})
    if unknown:
        raise ValidationError({"sites": f"Unknown site code(s): {', '.join(unknown)}."})
    if role == Role.NURSE and all_sites:
        raise ValidationError({"all_sites": "A nurse works at named sites; all sites is refused."})
    if role == Role.NURSE and not sites:
        raise ValidationError({"sites": "A nurse needs at least one site."})
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"change_reason": "Say why you grant or change this role."})
    all_sites = all_sites or role == Role.DATA_MANAGER
    with transaction.atomic():
        registry_role = (RegistryRole.objects.select_for_update().filter(user=user).first()
                         or RegistryRole(user=user))
        before = Grant.of(registry_role)
        after = Grant(role, frozenset(codes), all_sites)
        refusal = role_change_refusal(actor, user, before, after)
        if refusal:
            raise ValidationError(refusal, code="separation_of_duties")
        if before == after:
            return registry_role
        if before.role is not None and before.role != role:
            api_tokens_revoke_all(user=user, actor=actor,
                                  reason=f"role changed from {before.role} to {role}: {reason}")
        registry_role.role = role
        registry_role.all_sites = all_sites
        # Role changes are audited like clinical data; the m2m change below writes a
        # second history row with the same user and reason.
        registry_role._history_user = actor
        registry_role._change_reason = reason
        registry_role.save()
        registry_role.sites.set(sites)
    access.forget_role(user)
    return registry_role


def registry_role_revoke(*, user, actor=None, reason: str) -> None:
    """Take `user`'s registry role away (and with it her API tokens), as `actor`, with `reason`.

    Refused like `registry_role_save`, as removing every site she has.
    """
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"change_reason": "Say why you revoke this role."})
    with transaction.atomic():
        registry_role = RegistryRole.objects.select_for_update().filter(user=user).first()
        if registry_role is None:
            return
        refusal = role_change_refusal(actor, user, Grant.of(registry_role),
                                      Grant(None, frozenset(), False))
        if refusal:
            raise ValidationError(refusal, code="separation_of_duties")
        api_tokens_revoke_all(user=user, actor=actor, reason=f"role revoked: {reason}")
        registry_role._history_user = actor
        registry_role._change_reason = reason
        registry_role.delete()
    access.forget_role(user)


def user_account_save(*, user, actor=None, reason: str, password_changed: bool = False):
    """Save changes to `user`'s account (name, e-mail, active) as `actor`, with `reason`.

    Refused (ValidationError) when `user_manage_refusal` refuses or the reason is
    empty. Deactivating revokes her API tokens (her sessions end at their next
    request, since Django signs out inactive users).
    """
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"change_reason": "Say why you change this account."})
    if user.pk:
        refusal = user_manage_refusal(actor, user)
        if refusal:
            raise ValidationError(refusal, code="separation_of_duties")
    with transaction.atomic():
        was_active = (get_user_model().objects.filter(pk=user.pk)
                      .values_list("is_active", flat=True).first()) if user.pk else None
        if was_active and not user.is_active:
            api_tokens_revoke_all(user=user, actor=actor, reason=f"user deactivated: {reason}")
        user._history_user = actor
        user._change_reason = reason
        user.save()
    return user


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
    """Create or update a user with one registry role (the `registry_user` command).

    Refuses what `registry_role_save` refuses and, unless `validate_pw` is off (demo
    set-ups only), a password the validators refuse (at least 12 characters, not
    common, not numeric, not like the user name). A new password revokes her
    API tokens and signs out her other sessions.
    """
    User = get_user_model()
    with transaction.atomic():
        user, created = User.objects.get_or_create(username=username)
        if password is not None and (created or not user.check_password(password)):
            if validate_pw:
                try:
                    validate_password(password, user)
                except ValidationError as error:
                    raise ValidationError({"password": error.messages}) from None
            api_tokens_revoke_all(user=user, actor=actor, reason=f"password changed: {reason}")
            user.set_password(password)
        elif created:
            user.set_unusable_password()
        user.is_staff = True  # the admin is the nurses' and data managers' workspace
        if email:
            user.email = email
        user._history_user = actor
        user._change_reason = reason
        user.save()
        registry_role_save(user=user, role=role, site_codes=site_codes, all_sites=all_sites,
                           actor=actor, reason=reason)
    return user, created

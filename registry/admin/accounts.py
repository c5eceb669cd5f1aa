"""Accounts in the admin: users, registry roles, API tokens, second-factor devices and
the sign-in access log (django-axes).

Data managers manage them here, within the separation of duties of
registry.services.users (nobody changes her own account or role; a data manager
grants only sites she manages; registry-wide reach needs a registry administrator).
Every change asks for a reason and lands in the history with the acting user.
Everyone with a role sees her own API tokens.
"""

from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.forms import UserChangeForm, UserCreationForm
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Exists, OuterRef, Subquery, Sum
from django.template.response import TemplateResponse
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice
from simple_history.admin import SimpleHistoryAdmin

from registry.models import ApiToken, RegistryRole, Role, Site
from registry.services import access, logins, mfa, users
from registry.services.audit import SYSTEM_USERNAME
from registry.services.tokens import api_token_create, api_token_revoke

from .operations import DataManagerOnly

User = get_user_model()
REASON_HELP = "Kept in the history with your name."


class ReasonActionForm(ActionForm):
    """The change list's action bar, with the reason the action needs."""

    reason = forms.CharField(required=False, label="Reason", max_length=500,
                             widget=forms.TextInput(attrs={"size": 40}))


def _action_reason(modeladmin, request) -> str | None:
    reason = (request.POST.get("reason") or "").strip()
    if not reason:
        modeladmin.message_user(request, "Give a reason (next to the action): it is kept in "
                                         "the history. Nothing was changed.", messages.ERROR)
        return None
    return reason


def _refused(modeladmin, request, error: ValidationError, name: str):
    modeladmin.message_user(request, f"{name}: {' '.join(error.messages)}", messages.ERROR)


# --- Users ----------------------------------------------------------------------------

class ReasonFormMixin(forms.Form):
    change_reason = forms.CharField(label="Reason for change", max_length=500, help_text=REASON_HELP,
                                    widget=forms.TextInput(attrs={"size": 60}))


class RegistryUserCreationForm(UserCreationForm, ReasonFormMixin):
    """A new account, with its role and sites on the same page: the password validators
    apply (at least 12 characters ...). The password is set here and handed over in
    person or by phone; nothing is e-mailed (no password ever goes out in clear)."""

    role = forms.ChoiceField(choices=[("", "---------")] + Role.choices, required=False,
                             help_text="Leave empty to give the role later (registry roles).")
    sites = forms.ModelMultipleChoiceField(
        queryset=Site.objects.none(), required=False, widget=forms.CheckboxSelectMultiple,
        help_text="A nurse needs at least one site; you may grant only sites you are a member of.")

    class Meta(UserCreationForm.Meta):
        model = User
        fields = ["username", "first_name", "last_name", "email"]

    def __init__(self, *args, actor=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.actor = actor
        self.fields["sites"].queryset = Site.objects.order_by("code")
        self.fields["password1"].help_text = (
            f"{self.fields['password1'].help_text or ''} Give it to the person yourself (in "
            "person or by phone); the registry never e-mails a password.")

    def clean(self):
        cleaned = super().clean()
        role = cleaned.get("role")
        codes = frozenset(s.code for s in cleaned.get("sites") or [])
        if not role:
            if codes:
                self.add_error("role", "Sites are given with a role: choose the role.")
            return cleaned
        if role == Role.NURSE and not codes:
            self.add_error("sites", "A nurse needs at least one site.")
            return cleaned
        refusal = users.new_user_grant_refusal(
            self.actor, users.Grant(role, codes, role == Role.DATA_MANAGER))
        if refusal:
            self.add_error("role", refusal)
        return cleaned


class RegistryUserChangeForm(UserChangeForm, ReasonFormMixin):
    class Meta(UserChangeForm.Meta):
        model = User
        fields = ["username", "first_name", "last_name", "email", "is_active"]


admin.site.unregister(User)


@admin.register(User)
class RegistryUserAdmin(UserAdmin, SimpleHistoryAdmin):
    """Data managers' user accounts page (Django's UserAdmin, narrowed)."""

    form = RegistryUserChangeForm
    add_form = RegistryUserCreationForm
    action_form = ReasonActionForm
    list_display = ["username", "first_name", "last_name", "role", "is_active", "last_login",
                    "signin_locked", "second_factor"]
    list_filter = ["is_active", "registry_role__role"]
    search_fields = ["username", "first_name", "last_name", "email"]
    list_select_related = ["registry_role"]
    ordering = ["username"]
    filter_horizontal = []
    fieldsets = [
        (None, {"fields": ["username", "password"]}),
        ("Person", {"fields": ["first_name", "last_name", "email"]}),
        ("Status", {"fields": ["is_active", "last_login", "date_joined"],
                    "description": "Deactivating an account signs it out and revokes its API tokens. "
                                   "Roles and sites are on the user's registry role."}),
        ("Why", {"fields": ["change_reason"]}),
    ]
    add_fieldsets = [
        (None, {"fields": ["username", "first_name", "last_name", "email", "password1", "password2"]}),
        ("Role and sites", {"fields": ["role", "sites"]}),
        ("Why", {"fields": ["change_reason"]}),
    ]
    readonly_fields = ["last_login", "date_joined"]
    actions = ["unlock_signin", "reset_second_factor", "deactivate"]

    def has_module_permission(self, request):
        return access.is_data_manager(request.user)

    def has_view_permission(self, request, obj=None):
        return access.is_data_manager(request.user)

    def has_add_permission(self, request):
        return access.is_data_manager(request.user)

    def has_change_permission(self, request, obj=None):
        if not access.is_data_manager(request.user):
            return False
        return obj is None or users.user_manage_refusal(request.user, obj) is None

    def has_delete_permission(self, request, obj=None):
        return False  # accounts are deactivated, never deleted: the history points at them

    def get_queryset(self, request):
        # One query for the list: failures still counting, and a confirmed authenticator.
        failures = (AccessAttempt.objects.filter(username=OuterRef("username"),
                                                 attempt_time__gte=logins.counting_since())
                    .values("username").annotate(total=Sum("failures_since_start")).values("total"))
        return (super().get_queryset(request).exclude(username=SYSTEM_USERNAME)
                .annotate(signin_failures=Subquery(failures),
                          has_second_factor=Exists(TOTPDevice.objects.filter(user=OuterRef("pk"),
                                                                             confirmed=True))))

    @admin.display(description="role")
    def role(self, obj):
        role = getattr(obj, "registry_role", None)
        return role.get_role_display() if role else "-"

    @admin.display(description="sign-in locked", boolean=True)
    def signin_locked(self, obj):
        return (obj.signin_failures or 0) >= settings.REGISTRY_LOGIN_FAILURES

    @admin.display(description="second factor", boolean=True)
    def second_factor(self, obj):
        return obj.has_second_factor

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, object_id)
        if obj is not None and request.method == "GET":
            refusal = users.user_manage_refusal(request.user, obj)
            if refusal:
                messages.warning(request, refusal)
        return super().change_view(request, object_id, form_url, extra_context)

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        if obj is not None:
            return form
        actor = request.user

        class WithActor(form):
            def __init__(self, *args, **kw):
                super().__init__(*args, actor=actor, **kw)

        return WithActor

    def save_model(self, request, obj, form, change):
        obj.is_staff = True  # the admin is the registry's workspace
        reason = form.cleaned_data["change_reason"]
        try:
            with transaction.atomic():
                users.user_account_save(user=obj, actor=request.user, reason=reason)
                role = form.cleaned_data.get("role") if not change else None
                if role:
                    users.registry_role_save(
                        user=obj, role=role,
                        site_codes=[s.code for s in form.cleaned_data.get("sites") or []],
                        actor=request.user, reason=reason)
        except ValidationError as error:
            raise PermissionDenied(" ".join(error.messages)) from error

    @admin.action(description="Unlock sign-in (after too many failed attempts)")
    def unlock_signin(self, request, queryset):
        reason = _action_reason(self, request)
        if reason is None:
            return
        for user in queryset:
            try:
                cleared = logins.login_unlock(username=user.username, actor=request.user, reason=reason)
            except ValidationError as error:
                _refused(self, request, error, user.username)
            else:
                self.message_user(request, f"{user.username}: sign-in unlocked ({cleared} "
                                           "attempt record(s) cleared).", messages.SUCCESS)

    @admin.action(description="Reset second factor (enrol again at next sign-in)")
    def reset_second_factor(self, request, queryset):
        reason = _action_reason(self, request)
        if reason is None:
            return
        for user in queryset:
            try:
                mfa.mfa_reset(user=user, actor=request.user, reason=reason)
            except ValidationError as error:
                _refused(self, request, error, user.username)
            else:
                self.message_user(request, f"{user.username}: second factor reset.", messages.SUCCESS)

    @admin.action(description="Deactivate (signs out, revokes API tokens)")
    def deactivate(self, request, queryset):
        reason = _action_reason(self, request)
        if reason is None:
            return
        for user in queryset.filter(is_active=True):
            user.is_active = False
            try:
                users.user_account_save(user=user, actor=request.user, reason=f"deactivated: {reason}")
            except ValidationError as error:
                _refused(self, request, error, user.username)
            else:
                self.message_user(request, f"{user.username}: deactivated.", messages.SUCCESS)


# --- Registry roles -------------------------------------------------------------------

class RegistryRoleForm(forms.ModelForm):
    change_reason = forms.CharField(label="Reason for change", max_length=500, help_text=REASON_HELP,
                                    widget=forms.TextInput(attrs={"size": 60}))

    class Meta:
        model = RegistryRole
        fields = ["user", "role", "sites", "all_sites"]
        widgets = {"sites": forms.CheckboxSelectMultiple}

    def __init__(self, *args, actor=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.actor = actor
        if "user" in self.fields:
            # A new role is for an active user who has none yet.
            self.fields["user"].queryset = User.objects.filter(
                is_active=True, registry_role__isnull=True).exclude(
                username=SYSTEM_USERNAME).order_by("username")
        self.fields["sites"].queryset = Site.objects.order_by("code")
        self.fields["sites"].help_text = (
            "You may grant and revoke only sites you are a member of yourself.")

    def clean(self):
        cleaned = super().clean()
        user = cleaned.get("user") or (self.instance.user if self.instance.pk else None)
        if user is None or "role" not in cleaned:
            return cleaned
        role = cleaned["role"]
        after = users.Grant(role, frozenset(s.code for s in cleaned.get("sites") or []),
                            bool(cleaned.get("all_sites")) or role == Role.DATA_MANAGER)
        before = users.Grant.of(self.instance if self.instance.pk else None)
        refusal = users.role_change_refusal(self.actor, user, before, after)
        if refusal:
            raise ValidationError(refusal, code="separation_of_duties")
        return cleaned


@admin.register(RegistryRole)
class RegistryRoleAdmin(SimpleHistoryAdmin):
    """Who works where, in which role; every grant and revoke with a reason."""

    form = RegistryRoleForm
    action_form = ReasonActionForm
    list_display = ["user", "role", "all_sites", "site_codes"]
    list_filter = ["role", "all_sites"]
    search_fields = ["user__username"]
    list_select_related = ["user"]
    actions = ["revoke_roles"]

    def has_module_permission(self, request):
        return access.is_data_manager(request.user)

    has_view_permission = has_add_permission = has_change_permission = (
        lambda self, request, obj=None: access.is_data_manager(request.user)
    )

    def has_delete_permission(self, request, obj=None):
        return False  # revoked with a reason (the action), not deleted without one

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("sites")

    def get_readonly_fields(self, request, obj=None):
        return ["user"] if obj is not None else []

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        actor = request.user

        class WithActor(form):
            def __init__(self, *args, **kw):
                super().__init__(*args, actor=actor, **kw)

        return WithActor

    @admin.display(description="sites")
    def site_codes(self, obj):
        return ", ".join(sorted(s.code for s in obj.sites.all())) or "-"

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, object_id)
        if obj is not None and request.method == "GET" and obj.user_id == request.user.pk:
            messages.warning(request, users.SELF_CHANGE)
        return super().change_view(request, object_id, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        saved = users.registry_role_save(
            user=obj.user, role=data["role"], site_codes=[s.code for s in data["sites"]],
            all_sites=data["all_sites"], actor=request.user, reason=data["change_reason"])
        obj.pk = saved.pk

    def save_related(self, request, form, formsets, change):
        pass  # registry_role_save set the sites, with history

    @admin.action(description="Revoke selected roles (revokes their API tokens)")
    def revoke_roles(self, request, queryset):
        reason = _action_reason(self, request)
        if reason is None:
            return
        for role in queryset.select_related("user"):
            try:
                users.registry_role_revoke(user=role.user, actor=request.user, reason=reason)
            except ValidationError as error:
                _refused(self, request, error, role.user.username)
            else:
                self.message_user(request, f"{role.user.username}: role revoked.", messages.SUCCESS)


# --- API tokens -----------------------------------------------------------------------

class ApiTokenCreateForm(forms.Form):
    user = forms.ModelChoiceField(queryset=User.objects.none())
    label = forms.CharField(max_length=100, required=False, help_text="What the token is for.")
    reason = forms.CharField(max_length=500, help_text=REASON_HELP,
                             widget=forms.TextInput(attrs={"size": 60}))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["user"].queryset = User.objects.filter(
            is_active=True, registry_role__isnull=False).order_by("username")
        maximum = settings.REGISTRY_API_TOKEN_MAX_DAYS
        self.fields["expires_in_days"] = forms.IntegerField(
            label="Expires in (days)", min_value=1, max_value=maximum,
            initial=settings.REGISTRY_API_TOKEN_DAYS, help_text=f"1 to {maximum}.")
        self.order_fields(["user", "label", "expires_in_days", "reason"])


@admin.register(ApiToken)
class ApiTokenAdmin(SimpleHistoryAdmin):
    """Data managers create, list and revoke tokens; everyone sees her own."""

    action_form = ReasonActionForm
    list_display = ["prefix", "user", "label", "created_at", "expires_at", "revoked_at",
                    "last_used_at"]
    list_filter = ["revoked_at"]
    search_fields = ["user__username", "label"]
    list_select_related = ["user"]
    actions = ["revoke"]

    def has_module_permission(self, request):
        return access.role_name(request.user) is not None

    def has_view_permission(self, request, obj=None):
        if access.is_data_manager(request.user):
            return True
        return access.role_name(request.user) is not None and (obj is None or obj.user_id == request.user.pk)

    def has_add_permission(self, request):
        return access.is_data_manager(request.user)

    def has_change_permission(self, request, obj=None):
        # Needed for the revoke action; the fields themselves are read-only.
        return access.is_data_manager(request.user)

    def has_delete_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        return qs if access.is_data_manager(request.user) else qs.filter(user=request.user)

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in ApiToken._meta.fields]

    def get_actions(self, request):
        return super().get_actions(request) if access.is_data_manager(request.user) else {}

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = ApiTokenCreateForm(request.POST or None)
        context = {**self.admin_site.each_context(request), "opts": self.model._meta,
                   "title": "New API token", "form": form}
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                key = api_token_create(user=data["user"], label=data["label"],
                                       expires_in_days=data["expires_in_days"],
                                       actor=request.user, reason=data["reason"])
            except ValidationError as error:
                form.add_error(None, error)
            else:
                # Shown once, on this page only: only the hash is stored.
                return TemplateResponse(request, "admin/registry/apitoken/created.html",
                                        {**context, "title": "API token created", "key": key,
                                         "token_user": data["user"]})
        return TemplateResponse(request, "admin/registry/apitoken/add.html", context)

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request, queryset):
        reason = _action_reason(self, request)
        if reason is None:
            return
        revoked = sum(api_token_revoke(token=t, actor=request.user, reason=reason) for t in queryset)
        messages.success(request, f"Revoked {revoked} token(s).")


# --- Second-factor devices ------------------------------------------------------------

for model in (TOTPDevice, StaticDevice):
    if admin.site.is_registered(model):
        admin.site.unregister(model)


class DeviceAdmin(DataManagerOnly, admin.ModelAdmin):
    """Who has which second factor; never the secret. Reset is on the user (with a reason)."""

    list_display = ["user", "name", "confirmed", "last_used_at", "created_at"]
    list_filter = ["confirmed"]
    search_fields = ["user__username"]
    list_select_related = ["user"]
    fields = ["user", "name", "confirmed", "last_used_at", "created_at"]
    readonly_fields = fields


admin.site.register(TOTPDevice, DeviceAdmin)
admin.site.register(StaticDevice, DeviceAdmin)


# --- Sign-in access log (django-axes) ------------------------------------------------

class AccessLogAdmin(DataManagerOnly, admin.ModelAdmin):
    date_hierarchy = "attempt_time"
    search_fields = ["username", "ip_address"]
    list_per_page = 100

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]


@admin.register(AccessAttempt)
class AccessAttemptAdmin(AccessLogAdmin):
    """Failed sign-ins still counting towards a lock; unlocking clears them."""

    action_form = ReasonActionForm
    list_display = ["attempt_time", "username", "ip_address", "failures_since_start", "path_info",
                    "user_agent"]
    exclude = ["post_data"]
    actions = ["unlock"]

    def has_change_permission(self, request, obj=None):
        return access.is_data_manager(request.user)  # for the unlock action

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields if f.name != "post_data"]

    @admin.action(description="Unlock these user names")
    def unlock(self, request, queryset):
        reason = _action_reason(self, request)
        if reason is None:
            return
        for username in sorted(set(queryset.values_list("username", flat=True))):
            try:
                logins.login_unlock(username=username, actor=request.user, reason=reason)
            except ValidationError as error:
                _refused(self, request, error, username)
            else:
                self.message_user(request, f"{username}: sign-in unlocked.", messages.SUCCESS)


@admin.register(AccessFailureLog)
class AccessFailureLogAdmin(AccessLogAdmin):
    """Every failed sign-in, kept after unlocking."""

    list_display = ["attempt_time", "username", "ip_address", "locked_out", "path_info", "user_agent"]
    list_filter = ["locked_out"]


@admin.register(AccessLog)
class AccessLogEntryAdmin(AccessLogAdmin):
    """Every successful sign-in and sign-out."""

    list_display = ["attempt_time", "logout_time", "username", "ip_address", "path_info"]

"""Accounts in the admin: registry roles and API tokens."""

from django.contrib import admin, messages

from registry.models import ApiToken, RegistryRole
from registry.services import access
from registry.services.tokens import api_token_revoke

from .operations import DataManagerOnly


@admin.register(ApiToken)
class ApiTokenAdmin(DataManagerOnly, admin.ModelAdmin):
    list_display = ["prefix", "user", "label", "created_at", "expires_at", "revoked_at",
                    "last_used_at"]
    list_filter = ["revoked_at"]
    search_fields = ["user__username", "label"]
    list_select_related = ["user"]
    actions = ["revoke"]

    def has_change_permission(self, request, obj=None):
        # Needed for the revoke action; the fields themselves are read-only.
        return access.is_data_manager(request.user)

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in ApiToken._meta.fields]

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request, queryset):
        for token in queryset:
            api_token_revoke(token=token)
        messages.success(request, f"Revoked {queryset.count()} token(s).")


@admin.register(RegistryRole)
class RegistryRoleAdmin(admin.ModelAdmin):
    list_display = ["user", "role", "all_sites"]
    filter_horizontal = ["sites"]

    def has_module_permission(self, request):
        return access.is_data_manager(request.user)

    has_view_permission = has_add_permission = has_change_permission = (
        lambda self, request, obj=None: access.is_data_manager(request.user)
    )
    has_delete_permission = has_change_permission

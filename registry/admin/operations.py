from django.contrib import admin, messages

from registry.models import ApiToken, ExportLog
from registry.services import access
from registry.services.tokens import api_token_revoke


class DataManagerOnly:
    def has_module_permission(self, request):
        return access.is_data_manager(request.user)

    def has_view_permission(self, request, obj=None):
        return access.is_data_manager(request.user)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


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


@admin.register(ExportLog)
class ExportLogAdmin(DataManagerOnly, admin.ModelAdmin):
    list_display = ["created_at", "user", "channel", "dataset", "format", "dates", "rows", "aborted_at"]
    list_filter = ["channel", "dataset", "format"]
    list_select_related = ["user"]

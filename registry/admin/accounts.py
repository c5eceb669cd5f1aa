"""Users' registry roles in the admin (data managers)."""

from django.contrib import admin

from registry.models import RegistryRole
from registry.services import access


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

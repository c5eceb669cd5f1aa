from django.contrib import admin

from registry.models import ExportLog
from registry.services import access


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


@admin.register(ExportLog)
class ExportLogAdmin(DataManagerOnly, admin.ModelAdmin):
    list_display = ["created_at", "user", "channel", "dataset", "format", "dates", "rows", "aborted_at"]
    list_filter = ["channel", "dataset", "format"]
    list_select_related = ["user"]

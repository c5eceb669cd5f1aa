"""The admin's shared behaviour: site scoping, roles, reason for change, no lost updates.

Every clinical ModelAdmin derives from RegistryAdmin, so the access rule
(services.access) and the audit rules (services.audit) hold on every page.
"""

from django import forms
from simple_history.admin import SimpleHistoryAdmin

from registry.services import access
from registry.services.audit import record_delete, record_save, was_complete


class ClinicalForm(forms.ModelForm):
    """Adds the reason for change and the version the user started from."""

    change_reason = forms.CharField(
        label="Reason for change",
        required=False,
        max_length=500,
        widget=forms.TextInput(attrs={"size": 60}),
        help_text="Required when you change data that was already complete.",
    )
    edit_version = forms.IntegerField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["edit_version"].initial = self.instance.version

    def clean(self):
        cleaned = super().clean()
        if self.instance.pk:
            current = type(self.instance).objects.filter(pk=self.instance.pk).first()
            started = cleaned.get("edit_version")
            if current is not None and started is not None and current.version != started:
                raise forms.ValidationError(
                    "Someone else saved this record while you were editing it. Your changes "
                    "were not saved. Reload the page to see their version, then enter yours "
                    "again.",
                    code="stale",
                )
            if current is not None and was_complete(current) and self.has_changed() and not (
                cleaned.get("change_reason") or ""
            ).strip():
                self.add_error(
                    "change_reason",
                    "This record was already complete: say why you are changing it.",
                )
        return cleaned


class RegistryAdmin(SimpleHistoryAdmin):
    form = ClinicalForm
    # Path from the model to its site, for the access rule.
    readonly_for_investigators = True
    history_list_display = ["history_change_reason"]

    def get_queryset(self, request):
        return access.visible(super().get_queryset(request), request.user)

    def has_module_permission(self, request):
        return access.role_name(request.user) is not None

    def has_view_permission(self, request, obj=None):
        return access.role_name(request.user) is not None

    def has_add_permission(self, request):
        return access.can_edit(request.user)

    def has_change_permission(self, request, obj=None):
        return access.can_edit(request.user, self.site_id_of(obj) if obj else None)

    def has_delete_permission(self, request, obj=None):
        return access.is_data_manager(request.user)

    def site_id_of(self, obj):
        path = access.SITE_PATH[type(obj)]
        value = obj
        for part in path.split("__"):
            value = getattr(value, part)
            if value is None:
                return None
        return value

    def get_fields(self, request, obj=None):
        fields = list(super().get_fields(request, obj))
        # The reason goes last, where the nurse looks before saving.
        for name in ("change_reason", "edit_version"):
            if name in fields:
                fields.remove(name)
                fields.append(name)
        return fields

    def save_model(self, request, obj, form, change):
        record_save(
            obj,
            actor=request.user,
            reason=form.cleaned_data.get("change_reason") or ("" if change else "Created in admin"),
            expected_version=form.cleaned_data.get("edit_version") if change else None,
            validate=False,  # the ModelForm has already run full_clean
        )

    def delete_model(self, request, obj):
        record_delete(obj, actor=request.user, reason="Deleted in admin")

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.delete_model(request, obj)

"""The forms of clinical records in the admin: the reason for change and the
version the user started from (no lost updates), for the main form and its
inline rows (pain scores, identifiers).
"""

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.forms.models import BaseInlineFormSet
from django.utils.functional import cached_property

from registry.services.audit import was_complete

REASON_REQUIRED = "This record was already complete: say why you are changing it."
STALE = (
    "Someone else saved this record while you were editing it. Your changes were not "
    "saved. Reload the page to see their version, then enter yours again."
)
DATE_FORMAT = "%Y-%m-%d"
DATE_HINT = "YYYY-MM-DD"
CONFIRM_UNUSUAL = ("Possible but unusual: check it, then tick 'Save unusual values anyway' at the "
                   "bottom and save again.")
NO_VERSION = (
    "This form was sent without the version of the record it was opened at, so it could "
    "overwrite someone else's save. Your changes were not saved. Reload the page and "
    "enter them again."
)


class ClinicalForm(forms.ModelForm):
    """Adds the reason for change and the version the user started from."""

    change_reason = forms.CharField(
        label="Reason for change",
        required=False,
        max_length=500,
        widget=forms.TextInput(attrs={"size": 60}),
        help_text="Required when you change data that was already complete "
                  "(a completed visit, a closed adverse event).",
    )
    edit_version = forms.IntegerField(widget=forms.HiddenInput, required=False)
    # Values the model finds possible but unusual (its unusual(), models/plausibility.py)
    # are saved only once the user has looked at them and ticked this.
    confirm_unusual = forms.BooleanField(
        label="Save unusual values anyway", required=False,
        help_text="Tick after checking the values marked unusual above.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            if isinstance(field, forms.DateField):
                # One date format everywhere, said next to the field.
                field.input_formats = [DATE_FORMAT]
                field.widget.format = DATE_FORMAT
                field.widget.attrs.setdefault("placeholder", DATE_HINT)
                field.error_messages["invalid"] = f"Enter the date as {DATE_HINT} (e.g. 2026-03-31)."
                hint = f"Format {DATE_HINT}, e.g. 2026-03-31."
                field.help_text = f"{field.help_text} {hint}".strip() if field.help_text else hint
        if self.instance.pk:
            self.fields["edit_version"].initial = self.instance.version
        # Inline formsets of this page find the main form through its instance
        # (they put "give a reason" next to the reason field, see ClinicalInlineFormSet).
        self.instance._clinical_form = self

    def _update_errors(self, errors):
        # A model rule about a field this form does not show (read-only, such as the
        # registry id or a nurse's site) goes to the top of the form: Django raises
        # ValueError for an error on a field the form lacks.
        error_dict = getattr(errors, "error_dict", None)
        if error_dict:
            for name in [n for n in error_dict if n != NON_FIELD_ERRORS and n not in self.fields]:
                error_dict.setdefault(NON_FIELD_ERRORS, []).extend(error_dict.pop(name))
        super()._update_errors(errors)

    def _post_clean(self):
        super()._post_clean()
        unusual = getattr(self.instance, "unusual", None)
        if unusual is None or self.errors or "confirm_unusual" not in self.fields \
                or self.cleaned_data.get("confirm_unusual"):
            return
        adding = self.instance._state.adding
        for name, message in unusual().items():
            # Asked when the value is entered or changed, not on every later save.
            if adding or name in self.changed_data:
                self.add_error(name if name in self.fields else None,
                               f"{message} {CONFIRM_UNUSUAL}")

    @cached_property
    def stored(self):
        """The row as it is in the database now (None when adding)."""
        if not self.instance.pk:
            return None
        return type(self.instance).objects.filter(pk=self.instance.pk).first()

    def clean(self):
        cleaned = super().clean()
        current = self.stored
        if current is not None:
            started = cleaned.get("edit_version")
            # Required on change, checked here rather than with required=True: the
            # error of a hidden field sits in a hidden row, and the nurse would see
            # only "Please correct the error below".
            if started is None:
                raise forms.ValidationError(NO_VERSION, code="no_version")
            if current.version != started:
                raise forms.ValidationError(STALE, code="stale")
            if was_complete(current) and self.has_changed() and not (
                cleaned.get("change_reason") or ""
            ).strip():
                self.add_error("change_reason", REASON_REQUIRED)
        return cleaned


class ClinicalInlineFormSet(BaseInlineFormSet):
    """Inline rows (pain scores, identifiers) of a clinical record.

    A change here is a change to the parent: when the parent was complete the
    reason is required, next to the parent's reason field.
    """

    def has_changes(self) -> bool:
        return bool(self.deleted_forms) or any(
            form.has_changed() for form in self.forms if form not in self.deleted_forms
        )

    def clean(self):
        super().clean()
        parent = self.instance
        if not parent.pk or not self.has_changes():
            return
        parent._inline_changed = True
        main_form = getattr(parent, "_clinical_form", None)
        stored = main_form.stored if main_form is not None else type(parent).objects.filter(
            pk=parent.pk).first()
        reason = (self.data.get("change_reason") or "").strip()
        if stored is not None and was_complete(stored) and not reason:
            if main_form is not None and "change_reason" not in main_form.errors:
                main_form.add_error("change_reason", REASON_REQUIRED)
            raise ValidationError(
                f"The {self.model._meta.verbose_name_plural} of a complete record changed: "
                "give the reason for change at the bottom of the page.",
                code="reason_required",
            )

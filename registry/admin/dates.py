"""Clinical dates in the admin for users who may not see them (services.deid).

Investigators read the admin with every clinical calendar date of a patient
shifted by that patient's shift, as in the API, exports, REDCap and FHIR. The
rule (who, by how much) is deid's; this module only applies it to the rows a
page is about to show:

- change pages: the object from get_object and the rows of the inlines;
- change lists: the rows of the page (and date annotations such as "next due");
- the patient hub: its implants, visits and adverse events (patients.py).

Which fields are clinical dates, and how a row reaches its patient, is declared
once in services.deid. Shifted rows are marked, and the admin refuses
to save or delete a marked row: investigators have no change permission, so
this is only the second lock.

Sorting a list on a clinical date or a record time would rank the real dates of
different patients behind their shifted ones: for investigators the column
headers are not sortable, a hand-written `?o=` on such a column is ignored with
a message, and a default ordering on a date falls back to the entry order (pk).
"""

from django.contrib import messages
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import FieldDoesNotExist, PermissionDenied

from registry.services import deid

SHIFTED_MARK = "_dates_shifted"

# The models with clinical dates, and how a row reaches the registry id its shift is
# keyed on (read from deid's declaration, not restated here).
REGISTRY_ID_PATH = {model: rule.patient for model, rule in deid.MODELS.items() if rule.dates}


def shifts_dates(request) -> bool:
    return not deid.sees_real_dates(request.user)


def clinical_date_fields(model) -> tuple[str, ...]:
    """The model's clinical dates, as services.deid declares them."""
    return deid.clinical_dates(model)


def shift_in_place(obj, annotations=()):
    """Move the clinical dates of `obj` (and the date `annotations` it carries) by its
    patient's shift. No query when the patient is already loaded (select_related)."""
    fields = clinical_date_fields(type(obj))
    if not fields or getattr(obj, SHIFTED_MARK, False):
        return obj
    days = deid.date_shift_days(deid.registry_id_of(obj))
    for name in (*fields, *annotations):
        if hasattr(obj, name):
            setattr(obj, name, deid.shifted(getattr(obj, name), days))
    setattr(obj, SHIFTED_MARK, True)
    return obj


def refuse_if_shifted(obj):
    """A shifted copy must never be written back (it would move the real dates)."""
    if getattr(obj, SHIFTED_MARK, False):
        raise PermissionDenied("Dates on this page are shifted; it cannot be saved.")


def is_clinical_date_lookup(model, lookup: str) -> bool:
    """Does `lookup` (e.g. `target_date__gte`, `patient__consent_date__year`) reach a
    clinical date? Filtering on one would let a user bisect the real date."""
    for part in lookup.split("__"):
        try:
            field = model._meta.get_field(part)
        except FieldDoesNotExist:
            return False
        if field.name in clinical_date_fields(model):
            return True
        if not field.is_relation or field.related_model is None:
            return False
        model = field.related_model
    return False


def list_filter_on_date(model, spec) -> bool:
    """A list_filter entry ("field", ("field", FilterClass)) on a clinical date."""
    name = spec[0] if isinstance(spec, (list, tuple)) else spec
    return isinstance(name, str) and is_clinical_date_lookup(model, name)


def is_date_ordering(model_admin, order) -> bool:
    """An ordering entry ("-date_done", "next_due_date") on a clinical date or a record
    time (deid.is_date_ordering), or on a date annotation the admin shifts with the row."""
    if not isinstance(order, str):
        return False  # an expression: the registry's admins order by names
    name = order.lstrip("-")
    return name in getattr(model_admin, "shifted_annotations", ()) or \
        deid.is_date_ordering(model_admin.model, name)


def sorts_on_date(model_admin, column) -> bool:
    """Does the list column `column` sort on a date?"""
    if isinstance(column, str):
        try:
            model_admin.model._meta.get_field(column)
            return is_date_ordering(model_admin, column)
        except FieldDoesNotExist:
            column = getattr(model_admin, column, None)
    return is_date_ordering(model_admin, getattr(column, "admin_order_field", None))


class ShiftedDatesChangeList(ChangeList):
    """The change list: rows of the page shifted, no date hierarchy on a clinical date,
    no sort on a date for users who see shifted dates."""

    def __init__(self, request, model, list_display, list_display_links, list_filter,
                 date_hierarchy, *args, **kwargs):
        self.shift = shifts_dates(request)
        self.refused_sort = []
        if self.shift and date_hierarchy and is_clinical_date_lookup(model, date_hierarchy):
            date_hierarchy = None
        super().__init__(request, model, list_display, list_display_links, list_filter,
                         date_hierarchy, *args, **kwargs)
        if self.refused_sort:
            messages.warning(request, (
                f"Sorting on {', '.join(sorted(set(self.refused_sort)))} is not available to you: "
                f"it would rank the real dates behind the shifted ones. Sorted in entry order instead."))

    def get_ordering_field(self, field_name):
        order_field = super().get_ordering_field(field_name)
        if self.shift and is_date_ordering(self.model_admin, order_field):
            self.refused_sort.append(str(getattr(field_name, "__name__", field_name)))
            return None
        return order_field

    def get_ordering(self, request, queryset):
        ordering = super().get_ordering(request, queryset)
        if not self.shift:
            return ordering
        kept = [o for o in ordering if not is_date_ordering(self.model_admin, o)]
        if not any(isinstance(o, str) and o.lstrip("-") in ("pk", "id") for o in kept):
            kept.append("-pk")
        return kept

    def get_results(self, request):
        super().get_results(request)
        if self.shift and clinical_date_fields(self.model):
            annotations = getattr(self.model_admin, "shifted_annotations", ())
            self.result_list = [shift_in_place(obj, annotations) for obj in self.result_list]

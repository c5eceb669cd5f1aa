"""The admin's shared behaviour: site scoping, roles, reason for change, no lost updates.

Every clinical ModelAdmin derives from RegistryAdmin (and every inline from
RegistryInline), so the access rule (services.access) and the audit rules
(services.audit) hold on every page, in every form and in every lookup:

- querysets, history pages and foreign-key choices go through `access`;
- a row of a site the user does not belong to is a 404, never a redirect that
  tells it exists;
- changing complete data (a completed visit, a closed adverse event) needs a
  reason, also when only an inline (the pain scores) changed;
- a save that started from an older version is refused (edit_version);
- users who do not see real dates (investigators, services.deid) get every
  clinical date shifted per patient, no filter on a clinical date, no sorting on
  a clinical date or a record time, and no history pages (see dates.py);
- fields they must not see at all (free text, the birth year:
  services.deid.hidden_fields) are left out of every form, fieldset, list,
  filter, search and inline for them: hidden, not shown read-only.

The forms (reason for change, edit version) are in forms.py; the classes
several clinical pages share (record-number search, back to the patient page,
identifier pages) are at the end of this module.
"""

from django.contrib import admin, messages
from django.contrib.admin.options import IS_POPUP_VAR
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Q
from django.http import Http404, HttpResponseRedirect
from django.urls import reverse
from django.utils.functional import cached_property
from django.utils.html import format_html
from simple_history.admin import SimpleHistoryAdmin
from simple_history.template_utils import HistoricalRecordContextHelper

from registry.models import Site
from registry.services import access, checks, deid
from registry.services.audit import StaleEdit, record_delete, record_save

from . import dates
from .forms import ClinicalForm, ClinicalInlineFormSet


def site_id_of(obj):
    """The site a row belongs to, following access.SITE_PATH."""
    path = access.SITE_PATH.get(type(obj))
    if path is None:  # registry-wide rows (the follow-up protocol)
        return None
    value = obj
    for part in path.split("__"):
        try:
            value = getattr(value, part)
        except ObjectDoesNotExist:
            # A history row whose parent was deleted since: no site, so only
            # all-sites users see it (and nobody sees such identifiers).
            return None
        if value is None:
            return None
    return value




def without_fields(fieldsets, hidden) -> list:
    """`fieldsets` without the `hidden` fields (rows of several fields kept as rows);
    a fieldset left empty is dropped."""
    out = []
    for name, options in fieldsets:
        fields = []
        for field in options.get("fields", ()):
            if isinstance(field, (list, tuple)):
                row = [f for f in field if f not in hidden]
                if row:
                    fields.append(tuple(row))
            elif field not in hidden:
                fields.append(field)
        if fields:
            out.append((name, {**options, "fields": fields}))
    return out


class HiddenFieldsMixin:
    """Fields a user must not see (services.deid.hidden_fields) are left out of the
    page: forms (so neither shown nor posted), fieldsets, read-only fields, lists,
    filters and searches. One mechanism for every clinical ModelAdmin and inline."""

    def hidden_fields(self, request) -> set[str]:
        return set(deid.hidden_fields(self.model, request.user))

    def get_fieldsets(self, request, obj=None):
        return without_fields(super().get_fieldsets(request, obj), self.hidden_fields(request))

    def get_exclude(self, request, obj=None):
        hidden = self.hidden_fields(request)
        excluded = super().get_exclude(request, obj)
        if not hidden:
            return excluded
        return [*(excluded or ()), *sorted(hidden)]

    def get_readonly_fields(self, request, obj=None):
        hidden = self.hidden_fields(request)
        return [f for f in super().get_readonly_fields(request, obj) if f not in hidden]


class RegistryInline(HiddenFieldsMixin):
    """Inline permissions follow the access rule of the parent's site (the
    users have no Django model permissions; their role decides)."""

    formset = ClinicalInlineFormSet
    extra = 0

    def _site_id(self, obj):
        return site_id_of(obj) if obj is not None and obj.pk else None

    def has_view_permission(self, request, obj=None):
        if obj is not None and obj.pk:
            return access.sees_all_sites(request.user) or (
                self._site_id(obj) in access.member_site_ids(request.user)
            )
        return access.role_name(request.user) is not None

    def has_add_permission(self, request, obj=None):
        return access.can_edit(request.user, self._site_id(obj))

    def has_change_permission(self, request, obj=None):
        return access.can_edit(request.user, self._site_id(obj))

    def has_delete_permission(self, request, obj=None):
        return access.can_edit(request.user, self._site_id(obj))

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        if not (dates.shifts_dates(request) and dates.clinical_date_fields(self.model)):
            return formset

        class ShiftedFormSet(formset):
            # Read-only rows for an investigator: shown with her shifted dates.
            def get_queryset(self):
                if not hasattr(self, "_shifted"):
                    self._shifted = [dates.shift_in_place(o) for o in super().get_queryset()]
                return self._shifted

        return ShiftedFormSet


class EstimatedCountPaginator(Paginator):
    """Django's paginator, but an unfiltered list of a big table on PostgreSQL is
    counted from the planner's statistics instead of count(*) over a million rows.

    Filtered lists (a nurse's sites, "overdue", a search) are counted exactly:
    those are the lists nurses work through, and their filters have indexes. (A
    count capped with LIMIT was tried and dropped: the LIMIT makes the planner
    bet on finding rows early, which is slow exactly when a filter matches few.)
    """

    ESTIMATE_ABOVE = 100_000
    estimated = False

    @cached_property
    def count(self):
        qs = self.object_list
        if hasattr(qs, "query") and not qs.query.where and connections[qs.db].vendor == "postgresql":
            with connections[qs.db].cursor() as cursor:
                cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
                               [qs.model._meta.db_table])
                row = cursor.fetchone()
            if row and row[0] and row[0] > self.ESTIMATE_ABOVE:
                self.estimated = True
                return int(row[0])
        return super().count


class RegistryAdmin(HiddenFieldsMixin, SimpleHistoryAdmin):
    form = ClinicalForm
    # A count of the whole table on every filtered page costs more than it tells.
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    list_per_page = 50

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if not hasattr(self.model, "unusual"):
            return fieldsets
        # "Save unusual values anyway" goes next to the reason for change (forms.py).
        out = []
        for name, options in fieldsets:
            fields = list(options.get("fields", ()))
            if "change_reason" in fields and "confirm_unusual" not in fields:
                fields.insert(fields.index("change_reason") + 1, "confirm_unusual")
            out.append((name, {**options, "fields": fields}))
        return out

    # --- the access rule -------------------------------------------------------
    def get_queryset(self, request):
        return access.visible(super().get_queryset(request), request.user)

    def site_id_of(self, obj):
        return site_id_of(obj)

    def _sees(self, request, obj) -> bool:
        if access.sees_all_sites(request.user) or type(obj) not in access.SITE_PATH:
            return True
        return self.site_id_of(obj) in access.member_site_ids(request.user)

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            # Not there, or at a site the user does not belong to: the same answer.
            raise Http404("No such record at your sites.")
        if dates.shifts_dates(request):
            # Investigators only ever view (no change permission): the page shows
            # the shifted dates, and the marked copy cannot be saved (check_site).
            dates.shift_in_place(obj)
        return obj

    # --- clinical dates for users who see them shifted (dates.py) -------------------
    def get_changelist(self, request, **kwargs):
        return dates.ShiftedDatesChangeList

    def get_list_filter(self, request):
        filters = list(super().get_list_filter(request))
        if dates.shifts_dates(request):
            filters = [f for f in filters if not dates.list_filter_on_date(self.model, f)]
        hidden = self.hidden_fields(request)
        return [f for f in filters if not (isinstance(f, str) and f.split("__")[0] in hidden)]

    def get_list_display(self, request):
        hidden = self.hidden_fields(request)
        return [f for f in super().get_list_display(request) if f not in hidden]

    def get_search_fields(self, request):
        hidden = self.hidden_fields(request)
        return [f for f in super().get_search_fields(request)
                if f.lstrip("=^@$").split("__")[0] not in hidden]

    def get_sortable_by(self, request):
        # No sort on a clinical date or a record time for investigators (dates.py).
        sortable = super().get_sortable_by(request)
        if not dates.shifts_dates(request):
            return sortable
        return [name for name in sortable if not dates.sorts_on_date(self, name)]

    def lookup_allowed(self, lookup, value, request=None):
        # A hand-written ?target_date__gte=... would bisect the real date: 400.
        if request is not None and dates.shifts_dates(request) and \
                dates.is_clinical_date_lookup(self.model, lookup):
            return False
        return super().lookup_allowed(lookup, value, request)

    def dates_context(self, request) -> dict:
        if not dates.shifts_dates(request):
            return {}
        context = {"history_refused": True}
        if dates.clinical_date_fields(self.model):
            context["shifted_dates_note"] = deid.SHIFTED_NOTE
        return context

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        context.update(self.dates_context(request))
        return super().render_change_form(request, context, add, change, form_url, obj)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except StaleEdit as exc:
            # Another save won between this form's check and its write: the whole save
            # (inlines too) was rolled back; say so instead of a server error.
            messages.error(request, exc.messages[0])
            return HttpResponseRedirect(request.get_full_path())

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {**self.dates_context(request), **(extra_context or {})})

    def has_module_permission(self, request):
        return access.role_name(request.user) is not None

    def has_view_permission(self, request, obj=None):
        if access.role_name(request.user) is None:
            return False
        # History pages look rows up themselves (also deleted ones): check the site.
        return obj is None or self._sees(request, obj)

    def has_add_permission(self, request):
        return access.can_edit(request.user)

    def has_change_permission(self, request, obj=None):
        return access.can_edit(request.user, self.site_id_of(obj) if obj else None)

    def has_delete_permission(self, request, obj=None):
        return access.is_data_manager(request.user) and (obj is None or self._sees(request, obj))

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        """Foreign-key choices (and raw-id / autocomplete values) limited to the
        user's sites: a nurse cannot attach a visit to another site's patient."""
        model = db_field.related_model
        if model is Site:
            kwargs["queryset"] = access.sites_for(request.user)
        elif model in access.SITE_PATH:
            kwargs["queryset"] = access.visible(model._default_manager.all(), request.user)
            kwargs.setdefault("error_messages", {})["invalid_choice"] = (
                f"This {model._meta.verbose_name} is not at one of your sites (or does not exist)."
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_fields(self, request, obj=None):
        fields = list(super().get_fields(request, obj))
        # The reason goes last, where the nurse looks before saving.
        for name in ("change_reason", "edit_version"):
            if name in fields:
                fields.remove(name)
                fields.append(name)
        return fields

    # --- saving through the audit service ----------------------------------------
    @staticmethod
    def reason_of(form, change, default="Created in admin"):
        return (form.cleaned_data.get("change_reason") or "").strip() or ("" if change else default)

    def check_site(self, request, obj):
        """Belt and braces behind the scoped choices: the saved row must be at a
        site the user edits (and never a copy shown with shifted dates)."""
        dates.refuse_if_shifted(obj)
        if not access.can_edit(request.user, self.site_id_of(obj)):
            raise PermissionDenied("This record is not at one of your sites.")

    def needs_save(self, obj, form, change) -> bool:
        # Nothing changed: no new version, no empty history row.
        return not change or form.has_changed() or getattr(obj, "_inline_changed", False)

    def save_model(self, request, obj, form, change):
        self.check_site(request, obj)
        if not self.needs_save(obj, form, change):
            return
        record_save(
            obj,
            actor=request.user,
            reason=self.reason_of(form, change),
            expected_version=form.cleaned_data.get("edit_version") if change else None,
            validate=False,  # the ModelForm has already run full_clean
            touch=getattr(obj, "_inline_changed", False),
        )

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        # The data checks over the patient of what was just saved: a new anomaly opens a
        # query, a fixed one closes it (services.checks).
        checks.checks_after_save(form.instance)

    def save_formset(self, request, form, formset, change):
        reason = self.reason_of(form, change, default=f"Entered with the {self.opts.verbose_name}")
        for obj in formset.save(commit=False):
            dates.refuse_if_shifted(obj)
            record_save(obj, actor=request.user, reason=reason, validate=False)
        for obj in formset.deleted_objects:
            record_delete(obj, actor=request.user, reason=reason or "Deleted in admin")
        formset.save_m2m()

    # The audit trail shows every version with its real dates: nurses and data
    # managers only. A 404 like any page the user may not open, answered before
    # the lookup, so it does not tell whether the record exists.
    def refuse_history(self, request):
        if not deid.sees_real_dates(request.user):
            raise Http404("The history shows real dates: it is for nurses and data managers.")

    def history_view(self, request, object_id, extra_context=None):
        self.refuse_history(request)
        try:
            return super().history_view(request, object_id, extra_context)
        except PermissionDenied:
            # simple-history falls back to the last historical row of rows the user
            # cannot see; answer as for the change page.
            raise Http404("No such record at your sites.") from None

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        self.refuse_history(request)
        try:
            return super().history_form_view(request, object_id, version_id, extra_context)
        except PermissionDenied:
            raise Http404("No such record at your sites.") from None

    # A delete removes data from the registry: like a correction of complete data
    # it needs a reason, kept in the history's deletion row.
    delete_reason_field = "delete_reason"

    def delete_view(self, request, object_id, extra_context=None):
        extra_context = {**(extra_context or {}), "delete_reason_field": self.delete_reason_field}
        if request.method == "POST" and request.POST.get("post"):
            reason = request.POST.get(self.delete_reason_field, "").strip()
            if not reason:
                messages.error(request, "Give a reason for deleting this record; it is kept in the "
                                        "history. Nothing was deleted.")
                return HttpResponseRedirect(request.get_full_path())
            request.registry_delete_reason = reason
        return super().delete_view(request, object_id, extra_context)

    def get_actions(self, request):
        # Deleting goes record by record, each with its reason (the bulk action has none).
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def delete_model(self, request, obj):
        dates.refuse_if_shifted(obj)
        record_delete(obj, actor=request.user,
                      reason=getattr(request, "registry_delete_reason", "") or "Deleted in admin")

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.delete_model(request, obj)

    # --- history: who, when, what (simple-history's "Changes") and why -----------------
    history_list_display = []
    object_history_list_template = "admin/registry/history_list.html"

    def get_historical_record_context_helper(self, request, historical_record):
        return ReadableHistory(self.model, historical_record)


class ReadableHistory(HistoricalRecordContextHelper):
    """The history's "Changes" in words: a choice's label, not its code (with the code,
    as the exports use it), yes/no, "(empty)" for a blank value."""

    def prepare_delta_change_value(self, change, value):
        value = super().prepare_delta_change_value(change, value)
        return readable_value(self.model._meta.get_field(change.field), value)


def readable_value(field, value):
    if value is None or value == "":
        return "(empty)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if field.choices:
        label = dict(field.flatchoices).get(value)
        if label is not None and str(label) != str(value):
            return f"{label} ({value})"
    return value


def clinical_inline(base):
    """An admin inline class (Tabular/Stacked) with the registry's permissions."""
    return type(f"Registry{base.__name__}", (RegistryInline, base), {"__module__": __name__})


RegistryTabularInline = clinical_inline(admin.TabularInline)
RegistryStackedInline = clinical_inline(admin.StackedInline)


# --- shared by the clinical pages ---------------------------------------------------


def badge(text, colour):
    return format_html(
        '<span class="registry-badge" style="background:{};color:#fff;padding:1px 6px;'
        'border-radius:3px;font-weight:bold;white-space:nowrap">{}</span>', colour, text)


class PatientSearchMixin:
    """Search by registry id everywhere; by hospital record number only among
    patients of sites where the user may see identifiers (never investigators)."""

    patient_path = "patient__"  # from the listed model to Patient ("" on Patient)

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        p = self.patient_path
        q = Q(**{f"{p}registry_id__startswith": term.upper()})
        identifier_sites = access.identifier_site_ids(request.user)
        if identifier_sites:
            q |= Q(**{f"{p}identifiers__record_number": term, f"{p}site_id__in": identifier_sites})
        return queryset.filter(q), False


OTHER_BUTTONS = ("_continue", "_addanother", "_saveasnew", "_popup", IS_POPUP_VAR)


class BackToPatientMixin:
    """"Save" on an implant, visit or event returns to the patient page, wherever the
    form was opened from (the list, the worklist, a digest link); "Save and continue
    editing" and the other buttons keep Django's behaviour."""

    def _back_to_patient(self, request, obj):
        if any(name in request.POST for name in OTHER_BUTTONS) or not obj.patient_id:
            return None
        self.message_user(request, f"{obj._meta.verbose_name.capitalize()} “{obj}” saved.",
                          messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:registry_patient_change", args=[obj.patient_id]))

    def response_add(self, request, obj, post_url_continue=None):
        return self._back_to_patient(request, obj) or super().response_add(
            request, obj, post_url_continue)

    def response_change(self, request, obj):
        return self._back_to_patient(request, obj) or super().response_change(request, obj)


class IdentifierAdmin(RegistryAdmin):
    """Identifiers (names, record numbers, device serials) on every page, history
    pages included: only nurses and data managers who are members of the
    patient's own site (access.identifier_site_ids), never investigators.

    The history pages look rows up themselves (the last history row when
    get_queryset has nothing) and ask only the permissions, so the rule has to
    be in the permissions and not only in get_queryset.
    """

    def _sees(self, request, obj) -> bool:
        return access.can_see_identifiers(request.user, self.site_id_of(obj))

    def has_module_permission(self, request):
        return bool(access.identifier_site_ids(request.user))

    def has_view_permission(self, request, obj=None):
        if obj is None:
            return bool(access.identifier_site_ids(request.user))
        return self._sees(request, obj)

    def has_add_permission(self, request):
        return bool(access.identifier_site_ids(request.user)) and super().has_add_permission(request)

    def has_change_permission(self, request, obj=None):
        return self.has_view_permission(request, obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        # A data manager deleting a patient of any site deletes its identifiers with
        # it (the confirmation names them by registry id only); the identifiers' own
        # delete page is a 404 like their other pages, through get_queryset.
        return access.is_data_manager(request.user)

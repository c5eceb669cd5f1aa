"""Data queries in the admin: the list (nurses: their sites'; data managers: all), the query's
page with its thread and the steps the user's role may take, opening a query from a
record's page, and the queries shown on each record's page. Investigators see none of it.
Thin over services.queries."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from registry.models import DataQuery, QueryAction, QueryStatus
from registry.services import access, checks, queries

from .filters import site_filter

# The admin page of each record type (PROM items add theirs with their record type).
RECORD_ADMIN = {"patient": "registry_patient_change", "implant": "registry_implant_change",
                "visit": "registry_visit_change", "adverse_event": "registry_adverseevent_change",
                "prom_item": "registry_promanswer_change"}

STEPS = {
    "_answer": (QueryAction.ANSWER, queries.query_answer, "Answer sent to the data manager."),
    "_close": (QueryAction.CLOSE, queries.query_close, "Query closed."),
    "_reopen": (QueryAction.REOPEN, queries.query_reopen, "Query reopened: back to the site."),
    "_cancel": (QueryAction.CANCEL, queries.query_cancel, "Query cancelled."),
}


def record_url(query) -> str | None:
    name = RECORD_ADMIN.get(query.record_type)
    return reverse(f"admin:{name}", args=[query.record_id]) if name else None


def steps_for(user, query) -> list[tuple[str, str]]:
    """(button name, label) of the steps `user` may take on `query` now."""
    out = []
    if access.role_name(user) == "nurse" and query.status in (QueryStatus.OPEN, QueryStatus.ANSWERED):
        out.append(("_answer", "Send answer"))
    if access.is_data_manager(user):
        if query.is_live:
            out += [("_close", "Close"), ("_cancel", "Cancel (asked in error)")]
        if query.status != QueryStatus.OPEN:
            out.append(("_reopen", "Reopen (back to the site)"))
    return out


class RuleFilter(admin.SimpleListFilter):
    title = "rule"
    parameter_name = "rule"

    def lookups(self, request, model_admin):
        return [("-", "Opened by a person"), *[(name, name) for name in checks.RULES]]

    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        return queryset.filter(rule="" if value == "-" else value)


class OpenQueryForm(forms.ModelForm):
    """Open a query (data managers): the record comes from the record's page
    (`?record_type=visit&record_id=5`), the field from its list."""

    text = forms.CharField(label="Question", widget=forms.Textarea(attrs={"rows": 4}),
                           max_length=queries.MAX_TEXT)

    class Meta:
        model = DataQuery
        fields = ["record_type", "record_id", "field"]
        widgets = {"record_type": forms.HiddenInput, "record_id": forms.HiddenInput}

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        self.record = None
        data = self.data or self.initial
        try:
            self.record = queries.record_load(record_type=data.get("record_type"),
                                              record_id=data.get("record_id"), user=user)
        except ValidationError:
            return
        record_type = queries.record_type_of(self.record)
        choices = [("", "(the record as a whole)")] + [
            (name, name) for name in sorted(record_type.field_names(self.record))]
        self.fields["field"] = forms.ChoiceField(choices=choices, required=False,
                                                 initial=data.get("field", ""))

    def clean(self):
        cleaned = super().clean()
        if self.record is None:
            raise ValidationError("Open a query from the page of the record it is about "
                                  "(a patient, implant, visit or adverse event of your sites).")
        return cleaned

    def validate_unique(self):
        pass  # the one-live-query rule is the checks'; a person may ask twice


@admin.register(DataQuery)
class DataQueryAdmin(admin.ModelAdmin):
    list_display = ["record_link", "field", "rule_name", "status", "site_code", "opened_at",
                    "age", "last_message"]
    list_filter = ["status", RuleFilter, site_filter("patient__site_id"), "record_type"]
    search_fields = ["patient__registry_id", "record_key"]
    search_help_text = "Registry id or record (e.g. NIJ-0007-I1 m3)."
    list_select_related = ["patient__site"]
    ordering = ["-opened_at", "-pk"]
    list_per_page = 50
    show_full_result_count = False
    change_form_template = "admin/registry/dataquery/change_form.html"
    readonly_fields = ["record_link", "field", "rule_name", "status", "opened", "answered",
                       "closed", "thread"]
    fieldsets = [(None, {"fields": ["record_link", "field", "rule_name", "status", "opened",
                                    "answered", "closed", "thread"]})]

    # --- who sees what ---------------------------------------------------------------
    def get_queryset(self, request):
        return queries.queries_for(request.user).select_related(
            "patient__site", "opened_by", "answered_by", "closed_by")

    def has_module_permission(self, request):
        return queries.sees_queries(request.user)

    def has_view_permission(self, request, obj=None):
        if not queries.sees_queries(request.user):
            return False
        return obj is None or queries.queries_for(request.user).filter(pk=obj.pk).exists()

    def has_add_permission(self, request):
        return access.is_data_manager(request.user)

    def has_change_permission(self, request, obj=None):
        return False  # every change is a step (buttons), never an edit of the row

    def has_delete_permission(self, request, obj=None):
        return False  # cancel instead: the thread stays

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            raise Http404("No such query at your sites.")
        return obj

    # --- opening ------------------------------------------------------------------------
    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            user = request.user

            class Bound(OpenQueryForm):
                def __init__(self, *args, **kw):
                    super().__init__(*args, user=user, **kw)

            return Bound
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return [(None, {"fields": ["record_type", "record_id", "field", "text"]})]
        return super().get_fieldsets(request, obj)

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly_fields

    def get_changeform_initial_data(self, request):
        return {k: request.GET.get(k, "") for k in ("record_type", "record_id", "field")}

    def save_model(self, request, obj, form, change):
        query = queries.query_open(record=form.record, field=form.cleaned_data.get("field") or "",
                                   text=form.cleaned_data["text"], actor=request.user)
        obj.pk, obj.patient_id = query.pk, query.patient_id
        obj._state.adding = False

    def save_related(self, request, form, formsets, change):
        pass

    def log_addition(self, request, obj, message):
        pass  # the query's own history records it (with the question as the reason)

    def response_add(self, request, obj, post_url_continue=None):
        self.message_user(request, "Query opened; the site sees it in its list and digest.",
                          messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:registry_dataquery_change", args=[obj.pk]))

    # --- the steps ------------------------------------------------------------------------
    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        if object_id is None:
            return super().changeform_view(request, object_id, form_url, extra_context)
        query = self.get_object(request, object_id)
        if request.method == "POST":
            return self._step(request, query)
        extra_context = {**(extra_context or {}), "steps": steps_for(request.user, query),
                         "show_save": False, "show_save_and_continue": False}
        return super().changeform_view(request, object_id, form_url, extra_context)

    def _step(self, request, query):
        here = request.get_full_path()
        chosen = [name for name in STEPS if name in request.POST]
        if len(chosen) != 1:
            messages.error(request, "Choose one step (a button).")
            return HttpResponseRedirect(here)
        action, step, done = STEPS[chosen[0]]
        try:
            step(query=query, text=request.POST.get("text", ""), actor=request.user)
        except PermissionDenied as exc:
            messages.error(request, str(exc) or "You may not take this step.")
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(request, done)
        return HttpResponseRedirect(here)

    # --- columns ----------------------------------------------------------------------------
    @admin.display(description="record", ordering="record_key")
    def record_link(self, obj):
        url = record_url(obj)
        return format_html('<a href="{}">{}</a>', url, obj.record_key) if url else obj.record_key

    @admin.display(description="rule", ordering="rule")
    def rule_name(self, obj):
        return obj.rule or "(data manager)"

    @admin.display(description="site", ordering="patient__site__code")
    def site_code(self, obj):
        return obj.patient.site.code

    @admin.display(description="age (days)", ordering="opened_at")
    def age(self, obj):
        return (timezone.now() - obj.opened_at).days

    @admin.display(description="last message")
    def last_message(self, obj):
        message = obj.messages.order_by("-pk").first()
        return f"{message.get_action_display()}: {message.text[:80]}" if message else ""

    @admin.display(description="opened")
    def opened(self, obj):
        return f"{obj.opened_at:%Y-%m-%d %H:%M} UTC by {obj.opened_by}"

    @admin.display(description="answered")
    def answered(self, obj):
        return f"{obj.answered_at:%Y-%m-%d %H:%M} UTC by {obj.answered_by}" if obj.answered_at else "-"

    @admin.display(description="closed")
    def closed(self, obj):
        return f"{obj.closed_at:%Y-%m-%d %H:%M} UTC by {obj.closed_by}" if obj.closed_at else "-"

    @admin.display(description="thread")
    def thread(self, obj):
        rows = [(m.created_at.strftime("%Y-%m-%d %H:%M"), m.author, m.get_action_display(), m.text)
                for m in obj.messages.select_related("author").order_by("created_at", "pk")]
        return format_html('<ol class="query-thread">{}</ol>', format_html_join(
            "", '<li><strong>{} UTC, {} ({})</strong><br><span style="white-space:pre-wrap">{}'
                '</span></li>', rows))


class QueriesOnRecordMixin:
    """The live queries of a record on its admin page, and for data managers a link to open
    one; nothing at all for users who do not see queries (investigators)."""

    def _queries_field(self, request, obj) -> str | None:
        if obj is None or not obj.pk or not queries.sees_queries(request.user):
            return None
        return "data_queries_to_manage" if access.is_data_manager(request.user) else "data_queries"

    def get_fieldsets(self, request, obj=None):
        fieldsets = list(super().get_fieldsets(request, obj))
        field = self._queries_field(request, obj)
        if field:
            fieldsets.insert(0, ("Data queries", {"fields": [field]}))
        return fieldsets

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        field = self._queries_field(request, obj)
        return [*fields, field] if field else fields

    @admin.display(description="open queries")
    def data_queries(self, obj):
        live = list(queries.live_queries_on(obj).order_by("opened_at"))
        rows = [(reverse("admin:registry_dataquery_change", args=[q.pk]), q.field or "(record)",
                 q.get_status_display(), q.rule or "data manager") for q in live]
        if not rows:
            return format_html('<ul class="record-queries"><li>{}</li></ul>', "None.")
        return format_html('<ul class="record-queries">{}</ul>', format_html_join(
            "", '<li><a href="{}">{}</a>: {} ({})</li>', rows))

    @admin.display(description="open queries")
    def data_queries_to_manage(self, obj):
        url = reverse("admin:registry_dataquery_add")
        return format_html('{}<a class="addlink" id="open-query" href="{}?record_type={}&amp;'
                           'record_id={}">Open a query</a>', self.data_queries(obj), url,
                           queries.record_type_of(obj).name, obj.pk)

"""/api/v1/queries/: data queries for nurses and data managers (thin over services.queries).

List rows carry the record (registry id, record type, id and key, the timepoint of a
visit), the field, the rule, the status and its dates. Filters: site, status, rule,
record_type, opened_before_days / opened_within_days (age). Data managers create
(POST), close, reopen and cancel; the nurses of the query's site answer. Investigators
get 403 on every call: queries are between the sites and the data managers.
"""

import datetime

import django_filters as filters
from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils import timezone
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import exceptions, mixins, permissions, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from registry.models import DataQuery, QueryAction, QueryMessage, QueryStatus
from registry.services import checks, queries

from .filters import CodeFilter, CodeWidget, SiteCodeFilter, checked_queryset, code_filter
from .views import AUTH_ERRORS, ERROR, PERMISSIONS, FormatNamedInErrors

MAX_AGE_DAYS = 36500


class SeesQueries(permissions.BasePermission):
    message = "Queries are between the sites and the data managers; investigators do not see them."

    def has_permission(self, request, view):
        return queries.sees_queries(request.user)


class AgeFilter(filters.NumberFilter):
    """Days since the query was opened: `opened_before_days=30` (older than 30 days)."""

    def __init__(self, *args, older: bool, **kwargs):
        self.older = older
        super().__init__(*args, **kwargs)

    def filter(self, qs, value):
        if value in (None, ""):
            return qs
        if value != int(value) or not 0 <= value <= MAX_AGE_DAYS:
            raise exceptions.ValidationError({self.field_name: [
                f"'{value}' is not a number of days from 0 to {MAX_AGE_DAYS}."]})
        edge = timezone.now() - datetime.timedelta(days=int(value))
        return qs.filter(opened_at__lte=edge) if self.older else qs.filter(opened_at__gte=edge)


class QueryFilter(filters.FilterSet):
    site = SiteCodeFilter("patient__site__code")
    status = code_filter("status", QueryStatus)
    rule = CodeFilter(field_name="rule", what="rule", widget=CodeWidget,
                      help_text="Data check name(s), comma-separated (registry.services.checks)")
    record_type = CodeFilter(field_name="record_type", what="record_type", widget=CodeWidget,
                             help_text="patient, implant, visit, adverse_event, prom_item")
    manual = filters.BooleanFilter(method="filter_manual", help_text="Opened by a person (no rule).")
    opened_before_days = AgeFilter(field_name="opened_before_days", older=True,
                                   help_text="Opened at least this many days ago.")
    opened_within_days = AgeFilter(field_name="opened_within_days", older=False,
                                   help_text="Opened at most this many days ago.")

    class Meta:
        model = DataQuery
        fields = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Read on use: rules and record types registered later (PROMs) are valid too.
        self.filters["rule"].extra["valid"] = list(checks.RULES)
        self.filters["record_type"].extra["valid"] = list(queries.RECORD_TYPES)

    def filter_manual(self, qs, name, value):
        if value is None:
            return qs
        return qs.filter(rule="") if value else qs.exclude(rule="")


class MessageSerializer(serializers.ModelSerializer):
    author = serializers.CharField(source="author.username")
    at = serializers.DateTimeField(source="created_at")

    class Meta:
        model = QueryMessage
        fields = ["action", "author", "at", "text"]


class QuerySerializer(serializers.ModelSerializer):
    registry_id = serializers.CharField(source="patient.registry_id")
    site = serializers.CharField(source="patient.site.code")
    timepoint = serializers.CharField(allow_null=True, help_text="The visit's timepoint (visits only).")
    opened_by = serializers.CharField(source="opened_by.username")
    answered_by = serializers.CharField(source="answered_by.username", allow_null=True, default=None)
    closed_by = serializers.CharField(source="closed_by.username", allow_null=True, default=None)
    age_days = serializers.SerializerMethodField()

    class Meta:
        model = DataQuery
        fields = ["id", "registry_id", "site", "record_type", "record_id", "record_key", "timepoint",
                  "field", "rule", "status", "opened_at", "opened_by", "answered_at", "answered_by",
                  "closed_at", "closed_by", "closed_by_check", "age_days"]

    def get_age_days(self, obj) -> int:
        return (timezone.now() - obj.opened_at).days


class QueryDetailSerializer(QuerySerializer):
    messages = MessageSerializer(many=True, read_only=True)

    class Meta(QuerySerializer.Meta):
        fields = [*QuerySerializer.Meta.fields, "messages"]


class QueryCreateSerializer(serializers.Serializer):
    record_type = serializers.CharField(max_length=24)
    record_id = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    field = serializers.CharField(max_length=64, allow_blank=True, default="")
    text = serializers.CharField(max_length=queries.MAX_TEXT)


class StepSerializer(serializers.Serializer):
    text = serializers.CharField(max_length=queries.MAX_TEXT)


def _service(call, **kwargs):
    """A service step, its ValidationError as a 400 naming the field."""
    try:
        return call(**kwargs)
    except DjangoValidationError as exc:
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        raise exceptions.ValidationError(detail) from None


STEPS = {QueryAction.ANSWER: queries.query_answer, QueryAction.CLOSE: queries.query_close,
         QueryAction.REOPEN: queries.query_reopen, QueryAction.CANCEL: queries.query_cancel}
STEP_SCHEMA = extend_schema(request=StepSerializer, responses={200: QueryDetailSerializer, 400: ERROR,
                                                               404: ERROR, **AUTH_ERRORS})


@extend_schema_view(
    list=extend_schema(responses={200: QuerySerializer(many=True), **AUTH_ERRORS}),
    retrieve=extend_schema(responses={200: QueryDetailSerializer, 404: ERROR, **AUTH_ERRORS}),
    create=extend_schema(request=QueryCreateSerializer,
                         responses={201: QueryDetailSerializer, 400: ERROR, **AUTH_ERRORS}),
)
class QueryViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Data queries of the caller's sites (nurses, data managers)."""

    permission_classes = [*PERMISSIONS, SeesQueries]
    content_negotiation_class = FormatNamedInErrors
    serializer_class = QuerySerializer
    lookup_value_regex = "[0-9]{1,18}"

    def get_queryset(self):
        qs = queries.with_timepoint(queries.queries_for(self.request.user)).select_related(
            "patient__site", "opened_by", "answered_by", "closed_by")
        if self.action != "list":
            return qs.prefetch_related("messages__author")
        filterset = QueryFilter(self.request.query_params, queryset=qs, request=self.request)
        return checked_queryset(filterset, self.request.user)

    def get_serializer_class(self):
        return QuerySerializer if self.action == "list" else QueryDetailSerializer

    def _detail(self, query, status=200):
        fresh = self.get_queryset().get(pk=query.pk)
        return Response(QueryDetailSerializer(fresh).data, status=status)

    def create(self, request):
        data = QueryCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        record = _service(queries.record_load, record_type=values["record_type"],
                          record_id=values["record_id"], user=request.user)
        query = _service(queries.query_open, record=record, field=values["field"],
                         text=values["text"], actor=request.user)
        return self._detail(query, status=201)

    def _step(self, request, step):
        query = self.get_object()
        data = StepSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        _service(STEPS[step], query=query, text=data.validated_data["text"], actor=request.user)
        return self._detail(query)

    @STEP_SCHEMA
    @action(detail=True, methods=["post"])
    def answer(self, request, pk=None):
        """The site's answer (nurses of the patient's site)."""
        return self._step(request, QueryAction.ANSWER)

    @STEP_SCHEMA
    @action(detail=True, methods=["post"])
    def close(self, request, pk=None):
        """Close with a note (data managers)."""
        return self._step(request, QueryAction.CLOSE)

    @STEP_SCHEMA
    @action(detail=True, methods=["post"])
    def reopen(self, request, pk=None):
        """Back to the site (data managers)."""
        return self._step(request, QueryAction.REOPEN)

    @STEP_SCHEMA
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Withdraw a query asked in error (data managers)."""
        return self._step(request, QueryAction.CANCEL)

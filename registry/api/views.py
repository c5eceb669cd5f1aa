"""Read-only resources and the analysis-dataset exports (thin: services do the work)."""

from django.db.models import Prefetch
from django.http import HttpResponse, StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import exceptions, permissions, viewsets
from rest_framework.decorators import action
from rest_framework.negotiation import BaseContentNegotiation, DefaultContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from registry.models import (
    AdverseEvent,
    DeviceDeficiency,
    Implant,
    PainScore,
    Patient,
    ProgrammingSession,
    PromAnswer,
    Site,
    Visit,
)
from registry.services import datasets, deid, export_log, exports, summary_pdf
from registry.services.access import role_name, sites_for, visible
from registry.services.proms.instruments import VALUE_SETS, check_value_set, default_value_set

from . import filters, serializers


class ExportUnavailable(exceptions.APIException):
    """The database refused an export's query before its first byte (see export_log.begun)."""

    status_code = 503
    default_code = "export_failed"

class HasRegistryRole(permissions.BasePermission):
    """Signed in is not enough: the user needs a registry role (nurse, investigator, data manager)."""

    message = "Your account has no registry role; ask a data manager for access."

    def has_permission(self, request, view):
        return role_name(request.user) is not None


PERMISSIONS = [permissions.IsAuthenticated, HasRegistryRole]
ERROR = OpenApiResponse(OpenApiTypes.OBJECT, description="JSON object naming the parameter(s) at fault.")
AUTH_ERRORS = {
    400: ERROR,
    401: OpenApiResponse(OpenApiTypes.OBJECT, description="No, unknown, revoked or expired token."),
    403: OpenApiResponse(OpenApiTypes.OBJECT, description="No registry role."),
}


def logged_filters(params, leave_out: tuple[str, ...]) -> dict:
    """The request's parameters as the export log keeps them (a list when repeated)."""
    return {k: params.getlist(k) if len(params.getlist(k)) > 1 else params[k]
            for k in params if k not in leave_out}


class FormatNamedInErrors(DefaultContentNegotiation):
    """An unknown `?format=` (or `.suffix`) is a 400 naming the parameter; DRF answers 404."""

    def filter_renderers(self, renderers, format):
        matched = [renderer for renderer in renderers if renderer.format == format]
        if not matched:
            known = ", ".join(renderer.format for renderer in renderers)
            raise exceptions.ValidationError(
                {"format": [f"Unknown format '{format}'; expected one of {known}."]})
        return matched


class RegistryViewSet(viewsets.ReadOnlyModelViewSet):
    """Every queryset goes through the access rule; ordering is stable (cursor on id).

    Each list page of clinical rows is written to the export log (who, endpoint,
    filters, rows), as FHIR searches and exports are: otherwise paging through
    every visit would leave no trace.
    """

    permission_classes = PERMISSIONS
    content_negotiation_class = FormatNamedInErrors
    filter_backends = [filters.RegistryFilterBackend]
    base_queryset = None
    logged = True  # False for lists that hold no clinical rows (sites)

    def get_queryset(self):
        return visible(self.base_queryset.all(), self.request.user)

    def list(self, request, *args, **kwargs):
        response = super().list(request, *args, **kwargs)
        if self.logged:
            export_log.export_log_record(
                user=request.user, dataset=request.path, fmt=request.accepted_renderer.format,
                filters=logged_filters(request.query_params, ("format",)),
                dates="iso" if deid.sees_real_dates(request.user) else "shifted",
                rows=len(response.data["results"]))
        return response

    def get_serializer_context(self):
        # Decided once per request; the serializers shift each row by its patient's shift.
        return {**super().get_serializer_context(),
                "shift_dates": not deid.sees_real_dates(self.request.user)}


def _documented(serializer_class):
    return extend_schema_view(
        list=extend_schema(responses={200: serializer_class(many=True), **AUTH_ERRORS}),
        retrieve=extend_schema(responses={200: serializer_class, 404: ERROR, **AUTH_ERRORS}),
    )


@_documented(serializers.SiteSerializer)
class SiteViewSet(RegistryViewSet):
    """Sites the caller belongs to (all sites for data managers)."""

    base_queryset = Site.objects.all()
    serializer_class = serializers.SiteSerializer
    logged = False
    filterset_class = filters.SiteFilter
    lookup_field = "code"
    lookup_value_regex = "[A-Z][A-Z0-9]{1,7}"


@_documented(serializers.PatientSerializer)
class PatientViewSet(RegistryViewSet):
    """Pseudonymous patients: no identifiers, no birth year (age at consent, 90 = 90+), no free text."""

    base_queryset = Patient.objects.select_related("site").prefetch_related(
        Prefetch("implants", queryset=Implant.objects.order_by("ref").only("ref", "patient_id")))
    serializer_class = serializers.PatientSerializer
    filterset_class = filters.PatientFilter
    lookup_field = "registry_id"
    lookup_value_regex = "[A-Z][A-Z0-9]{1,7}-[0-9]+"

    @extend_schema(responses={(200, "application/pdf"): OpenApiTypes.BINARY, 404: ERROR, **AUTH_ERRORS},
                   description="The patient summary as PDF (services.summary_pdf): no identifiers, "
                               "dates shifted for investigators, as on the admin's patient page.")
    @action(detail=True, methods=["get"], url_path="summary", url_name="summary")
    def summary(self, request, registry_id=None):
        patient = self.get_object()  # the access rule: another site's patient is a 404
        pdf = summary_pdf.patient_summary_pdf(patient=patient, user=request.user)
        # One patient's record leaving the registry: logged like a list page.
        export_log.export_log_record(
            user=request.user, dataset=request.path, fmt="pdf", filters={},
            dates="iso" if deid.sees_real_dates(request.user) else "shifted", rows=1)
        response = HttpResponse(pdf, content_type="application/pdf")
        response["Content-Disposition"] = f'inline; filename="summary-{patient.registry_id}.pdf"'
        return response


@_documented(serializers.ImplantSerializer)
class ImplantViewSet(RegistryViewSet):
    """Therapy episodes: trial, implant, device (no serial numbers or UDI), explant (no reason: free text)."""

    base_queryset = Implant.objects.select_related("patient__site").prefetch_related(
        Prefetch("programming_sessions", queryset=ProgrammingSession.objects.select_related(
            "implant__patient").order_by("date", "pk")))
    serializer_class = serializers.ImplantSerializer
    filterset_class = filters.ImplantFilter
    lookup_field = "ref"
    lookup_value_regex = "[A-Z][A-Z0-9]{1,7}-[0-9]+-I[0-9]+"


@_documented(serializers.VisitSerializer)
class VisitViewSet(RegistryViewSet):
    """Visits with their further pain scores (per pain site and recall period); no notes."""

    base_queryset = Visit.objects.select_related("patient__site", "implant").prefetch_related(
        Prefetch("pain_scores", queryset=PainScore.objects.order_by("pain_site", "recall"))).annotate(
        # The datasets' one definition (a baseline counts from the patient's first implant).
        days_from_implant=datasets.visit_days_from_implant())
    serializer_class = serializers.VisitSerializer
    filterset_class = filters.VisitFilter


@_documented(serializers.AdverseEventSerializer)
class AdverseEventViewSet(RegistryViewSet):
    """Adverse events with the derived ISO 14155 class; no free-text description."""

    base_queryset = AdverseEvent.objects.select_related("patient__site", "implant")
    serializer_class = serializers.AdverseEventSerializer
    filterset_class = filters.AdverseEventFilter


# --- Exports ---------------------------------------------------------------------


class FormatIsAParameter(BaseContentNegotiation):
    """`?format=` picks the dataset's file format here, not a DRF renderer;
    errors are always JSON."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


_JSON_TYPES = {"str": {"type": "string"}, "code": {"type": "string"}, "int": {"type": "integer"},
               "scale": {"type": "integer"}, "float": {"type": "number"}, "bool": {"type": "boolean"},
               "date": {"type": "string", "format": "date"},
               "age": {"oneOf": [{"type": "integer"}, {"type": "string", "enum": [exports.AGE_TOP_LABEL]}]}}


def _row_schema(dataset: str) -> dict:
    props = {}
    for dates in exports.DATES_MODES:
        for column in exports.columns_for(dataset, dates=dates):
            schema = dict(_JSON_TYPES[column.kind], description=column.label, nullable=True)
            if column.labels:
                schema["enum"] = [v for v, _ in column.labels] + [None]
            props[column.name] = schema
    return {"type": "array", "items": {"type": "object", "properties": props}}


def _filter_parameters(filterset_class) -> list[OpenApiParameter]:
    import django_filters

    params = []
    for name, f in filterset_class.base_filters.items():
        help_text = str(f.extra.get("help_text", ""))
        if isinstance(f, django_filters.DateFromToRangeFilter):
            for suffix in ("after", "before"):
                params.append(OpenApiParameter(f"{name}_{suffix}", OpenApiTypes.DATE,
                                               description=f"{name} on or {suffix} this date"
                                                           f"{filters.DATE_RANGE_NOTE}"))
        elif isinstance(f, django_filters.IsoDateTimeFilter):
            params.append(OpenApiParameter(name, OpenApiTypes.DATETIME, description=help_text))
        elif isinstance(f, django_filters.BooleanFilter):
            params.append(OpenApiParameter(name, OpenApiTypes.BOOL, description=help_text))
        else:
            params.append(OpenApiParameter(name, OpenApiTypes.STR, description=help_text))
    return params


def export_schema(dataset: str, filterset_class):
    binary = OpenApiTypes.BINARY
    return extend_schema_view(get=extend_schema(
        operation_id=f"exports_{dataset.replace('-', '_')}",
        summary=f"The {dataset} analysis dataset",
        parameters=[
            OpenApiParameter("format", OpenApiTypes.STR, enum=list(exports.FORMATS), default="csv",
                             description="File format: csv and json stream; xlsx, sav (SPSS) and dta "
                                         "(Stata) carry variable and value labels."),
            OpenApiParameter("dates", OpenApiTypes.STR, enum=list(exports.DATES_MODES),
                             default="relative",
                             description="relative: days from the implant (default, de-identified); "
                                         "iso: real dates (data managers only)."),
            OpenApiParameter("value_set", OpenApiTypes.STR, enum=list(VALUE_SETS),
                             description="EQ-5D-5L value set of the index (default: the sites' country; "
                                         "England when they differ). Stated in the X-EQ5D-Value-Set "
                                         "header and, in the visits dataset, on every row."),
            *_filter_parameters(filterset_class),
        ],
        responses={
            (200, "text/csv"): OpenApiTypes.STR,
            (200, "application/json"): _row_schema(dataset),
            (200, exports.CONTENT_TYPES["xlsx"]): binary,
            (200, exports.CONTENT_TYPES["sav"]): binary,
            (200, exports.CONTENT_TYPES["dta"]): binary,
            **{(code, "application/json"): resp for code, resp in AUTH_ERRORS.items()},
        },
    ))


class ExportView(APIView):
    """One row per visit (or event), joined and derived, de-identified, in the format asked.

    The same filters as the list endpoint apply. Every export is logged.
    """

    permission_classes = PERMISSIONS
    renderer_classes = [JSONRenderer]
    content_negotiation_class = FormatIsAParameter
    dataset = ""
    model = None
    filterset_class = None

    def rows(self):
        """The dataset's rows before scoping and filters (all of the model's)."""
        return self.model.objects.all()

    def with_extra_rows(self, queryset, filterset):
        """The queryset with the rows of another model the dataset appends (none here)."""
        return queryset

    def get(self, request):
        params = request.query_params
        fmt = params.get("format", "csv")
        if fmt not in exports.FORMATS:
            raise exceptions.ValidationError(
                {"format": [f"Unknown format '{fmt}'; expected one of {', '.join(exports.FORMATS)}."]})
        dates = params.get("dates", "relative")
        if dates not in exports.DATES_MODES:
            raise exceptions.ValidationError(
                {"dates": [f"Unknown dates mode '{dates}'; expected relative or iso."]})
        if dates == "iso" and not exports.export_dates_allowed(request.user):
            raise exceptions.PermissionDenied(
                {"dates": ["Only data managers may export real dates (dates=iso)."]})
        value_set = requested_value_set(request)
        filterset = self.filterset_class(params, queryset=visible(self.rows(), request.user),
                                         request=request)
        queryset = self.with_extra_rows(filters.checked_queryset(filterset, request.user), filterset)
        log = export_log.export_log_start(user=request.user, dataset=self.dataset, fmt=fmt,
                                       filters=logged_filters(params, ("format", "dates")), dates=dates)
        counter = export_log.RowCounter()
        if fmt in ("csv", "json"):
            stream = (exports.export_csv_stream if fmt == "csv" else exports.export_json_stream)(
                self.dataset, queryset, dates=dates, counter=counter, value_set=value_set)
            try:
                body = export_log.begun(stream, log=log, counter=counter)
            except export_log.ExportFailed as failed:
                raise ExportUnavailable(failed) from failed
        else:
            path = exports.export_file(self.dataset, queryset, fmt, dates=dates, counter=counter,
                                       value_set=value_set)
            export_log.export_log_finish(log=log, rows=counter.rows)
            body = exports.file_chunks(path)
        response = StreamingHttpResponse(body, content_type=exports.CONTENT_TYPES[fmt])
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        response["Content-Disposition"] = f'attachment; filename="{self.dataset}-{stamp}.{fmt}"'
        response["Cache-Control"] = "no-store"
        response["X-EQ5D-Value-Set"] = value_set
        return response


def requested_value_set(request) -> str:
    """`?value_set=` (NL, ENG, US, DE, BE), or the default for the sites the user sees
    (their country's value set when they share one); a 400 naming the value otherwise."""
    sent = request.query_params.get("value_set")
    if sent in (None, ""):
        return default_value_set(sites_for(request.user).values_list("country", flat=True))
    try:
        return check_value_set(sent)
    except ValueError as exc:
        raise exceptions.ValidationError({"value_set": [str(exc)]}) from None


@export_schema("visits", filters.VisitFilter)
class VisitExportView(ExportView):
    """Visits dataset: patient and implant columns joined, NRS reduction and responder derived."""

    dataset = "visits"
    model = Visit
    filterset_class = filters.VisitFilter


@export_schema("adverse-events", filters.AdverseEventFilter)
class AdverseEventExportView(ExportView):
    """Adverse-events dataset with the derived ISO 14155 class."""

    dataset = "adverse-events"
    model = AdverseEvent
    filterset_class = filters.AdverseEventFilter


@export_schema("prom-answers", filters.PromAnswerFilter)
class PromAnswerExportView(ExportView):
    """PROM item answers, one row per item (registry id, timepoint, instrument, version, item,
    value): the long format, for rescoring or other algorithms."""

    dataset = "prom-answers"
    model = PromAnswer
    filterset_class = filters.PromAnswerFilter


@export_schema("implants", filters.ImplantFilter)
class ImplantExportView(ExportView):
    """Implants dataset: one row per implant with its device and its latest programming
    session (the current settings); no serials, UDI-PI or free text."""

    dataset = "implants"
    model = Implant
    filterset_class = filters.ImplantFilter


@export_schema("safety", filters.AdverseEventFilter)
class SafetyTabulationExportView(ExportView):
    """The safety tabulation (MDCG 2020-10/2 style): one row per serious or device- or
    procedure-related adverse event with its IMDRF codes, ISO 14155 class, reporting rule
    (MDR Art. 87/88), deadline from awareness and whether it was reported on time; dates
    relative for investigators. Filters as the adverse-events export."""

    dataset = "safety"
    model = AdverseEvent
    filterset_class = filters.AdverseEventFilter

    def rows(self):
        return datasets.safety_tabulated(AdverseEvent.objects.all())

    def with_extra_rows(self, queryset, filterset):
        # Device deficiencies without an event, scoped like the events and under the same
        # filters where they apply (site, therapy, etiology, diagnosis, onset = observed_on);
        # a filter on the event's own fields (category, severity, ...) leaves them out.
        deficiencies = visible(datasets.safety_deficiencies(DeviceDeficiency.objects.all()),
                               self.request.user)
        return datasets.with_extra_rows(queryset, filters.deficiency_rows(filterset, deficiencies))


class CodebookView(APIView):
    """The dataset's codebook: every variable with its label, type, codes and their labels,
    the frozen numbers Stata and REDCap use, and its REDCap instrument and field.

    Read from the same declarations as the files (`services.datasets`); `dates=iso`
    adds the real-date variables that data managers may export.
    """

    permission_classes = PERMISSIONS
    renderer_classes = [JSONRenderer]
    dataset = ""

    def get(self, request):
        dates = request.query_params.get("dates", "relative")
        if dates not in exports.DATES_MODES:
            raise exceptions.ValidationError(
                {"dates": [f"Unknown dates mode '{dates}'; expected relative or iso."]})
        value_set = requested_value_set(request) if self.dataset == "visits" else None
        return Response(datasets.codebook(datasets.get(self.dataset), dates=dates, value_set=value_set))


def codebook_schema(dataset: str):
    entry = {"type": "object", "properties": {k: {"type": "string"} for k in datasets.CODEBOOK_COLUMNS}}
    return extend_schema_view(get=extend_schema(
        operation_id=f"exports_{dataset.replace('-', '_')}_codebook",
        summary=f"Codebook of the {dataset} analysis dataset",
        parameters=[OpenApiParameter("dates", OpenApiTypes.STR, enum=list(exports.DATES_MODES),
                                     default="relative"),
                    OpenApiParameter("value_set", OpenApiTypes.STR, enum=list(VALUE_SETS),
                                     description="Visits: the EQ-5D-5L value set stated in the labels "
                                                 "of eq5d5l_index (default: the sites' country).")],
        responses={200: {"type": "array", "items": entry},
                   **{code: resp for code, resp in AUTH_ERRORS.items()}},
    ))


@codebook_schema("visits")
class VisitCodebookView(CodebookView):
    dataset = "visits"


@codebook_schema("adverse-events")
class AdverseEventCodebookView(CodebookView):
    dataset = "adverse-events"


@codebook_schema("implants")
class ImplantCodebookView(CodebookView):
    dataset = "implants"


@codebook_schema("safety")
class SafetyCodebookView(CodebookView):
    dataset = "safety"

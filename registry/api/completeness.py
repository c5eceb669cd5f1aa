"""GET /api/v1/completeness/: the completeness report (thin over services.completeness).

Rows per site, timepoint and instrument: expected, done, missing by reason, open queries.
Filters `site` (a code of the caller's sites) and `timepoint`; any other parameter, or a
bad value, is a 400 naming it. Investigators get the counts without queries, small rows
suppressed (null figures, `suppressed` true).
"""

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from registry.services import completeness

from .views import AUTH_ERRORS, PERMISSIONS, FormatIsAParameter

PARAMS = ("site", "timepoint")

MissingSerializer = type("MissingSerializer", (serializers.Serializer,), {
    code: serializers.IntegerField(help_text=str(completeness.REASON_LABELS[code]))
    for code in completeness.REASONS})


class ReasonSerializer(serializers.Serializer):
    code = serializers.ChoiceField(choices=completeness.REASONS)
    label = serializers.CharField()


class CompletenessRowSerializer(serializers.Serializer):
    site = serializers.CharField()
    timepoint = serializers.CharField()
    instrument = serializers.ChoiceField(choices=completeness.ORDER, help_text=(
        "nrs, satisfaction, pgic, opioid_mme, or a PROM instrument code."))
    label = serializers.CharField()
    expected = serializers.IntegerField(allow_null=True, help_text="Due values (null when suppressed).")
    done = serializers.IntegerField(allow_null=True)
    done_percent = serializers.FloatField(allow_null=True)
    missing = MissingSerializer(allow_null=True, help_text="Missing values by reason code; `none`: "
                                                           "no value and no reason given.")
    missing_total = serializers.IntegerField(allow_null=True)
    open_queries = serializers.IntegerField(allow_null=True, help_text=(
        "Live queries on these values; null for investigators (they never see queries)."))
    suppressed = serializers.BooleanField(help_text=(
        "Fewer expected values than REGISTRY_MIN_CELL (investigators): figures are null."))


class CompletenessSerializer(serializers.Serializer):
    reasons = ReasonSerializer(many=True)
    shows_queries = serializers.BooleanField()
    min_cell = serializers.IntegerField()
    rows = CompletenessRowSerializer(many=True)


class CompletenessView(APIView):
    """Completeness per site, timepoint and instrument, within the caller's sites."""

    permission_classes = PERMISSIONS
    renderer_classes = [JSONRenderer]
    content_negotiation_class = FormatIsAParameter

    @extend_schema(
        operation_id="completeness_report",
        parameters=[
            OpenApiParameter("site", OpenApiTypes.STR, description="A site code (one of yours)."),
            OpenApiParameter("timepoint", OpenApiTypes.STR,
                             pattern=r"^(baseline|trial_end|m[1-9][0-9]{0,2})$",
                             description="baseline, trial_end or m<months>."),
        ],
        responses={200: CompletenessSerializer, **AUTH_ERRORS},
        examples=[OpenApiExample("Bad value", status_codes=["400"], response_only=True,
                                 value={"timepoint": ["'m3x' is not a timepoint; use baseline, "
                                                      "trial_end or m<months> (m3, m12)."]})],
        tags=["data management"],
    )
    def get(self, request):
        unknown = [k for k in request.query_params if k not in (*PARAMS, "format")]
        errors = {k: [f"Unknown parameter '{k}' (= '{request.query_params[k]}'); use "
                      f"{', '.join(PARAMS)}."] for k in unknown}
        if request.query_params.get("format", "json") != "json":
            errors["format"] = [f"Unknown format '{request.query_params['format']}'; only json."]
        for key in PARAMS:
            if len(request.query_params.getlist(key)) > 1:
                errors[key] = [f"Give one {key}."]
        if errors:
            raise exceptions.ValidationError(errors)
        try:
            params = completeness.completeness_params_clean(
                request.user, **{k: request.query_params.get(k) for k in PARAMS})
        except DjangoValidationError as error:
            raise exceptions.ValidationError(error.message_dict) from None
        report = completeness.completeness_report(request.user, **params)
        return Response(CompletenessSerializer(report.as_dict()).data)

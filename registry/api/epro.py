"""GET /api/v1/outcomes/response-rates/: how many patients answered their questionnaire
links, per site and timepoint (thin over services.epro.response_rates, the dashboard's
figures: the caller's sites only, small groups suppressed for investigators)."""

from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from registry.services import epro

from .views import AUTH_ERRORS, PERMISSIONS, FormatIsAParameter


class ResponseRateSerializer(serializers.Serializer):
    site = serializers.CharField(help_text="Site code.")
    timepoint = serializers.CharField(help_text="m<N> months.")
    invited = serializers.IntegerField(allow_null=True, help_text=(
        "Visits whose patient was e-mailed or handed a questionnaire link. Null when suppressed."))
    answered = serializers.IntegerField(allow_null=True, help_text=(
        "Of those, visits the patient completed herself through the link. Null when suppressed."))
    rate = serializers.FloatField(allow_null=True, help_text="answered / invited x 100, one decimal.")
    suppressed = serializers.BooleanField(help_text=(
        "True when fewer than the caller's minimum cell size were invited (investigators: "
        "REGISTRY_MIN_CELL): the figures are then null."))


class ResponseRatesSerializer(serializers.Serializer):
    rates = ResponseRateSerializer(many=True)


class ResponseRatesView(APIView):
    """Questionnaire response rates per site and timepoint, within the sites the caller may see."""

    permission_classes = PERMISSIONS
    renderer_classes = [JSONRenderer]
    content_negotiation_class = FormatIsAParameter

    @extend_schema(operation_id="outcomes_response_rates", parameters=[],
                   responses={200: ResponseRatesSerializer, **AUTH_ERRORS}, tags=["outcomes"])
    def get(self, request):
        unknown = sorted(set(request.query_params) - {"format"})
        if unknown:
            raise exceptions.ValidationError({unknown[0]: [f"Unknown parameter '{unknown[0]}'; this "
                                                           "endpoint takes none."]})
        if request.query_params.get("format", "json") != "json":
            raise exceptions.ValidationError(
                {"format": [f"Unknown format '{request.query_params['format']}'; only json."]})
        return Response(ResponseRatesSerializer({"rates": epro.response_rates(request.user)}).data)

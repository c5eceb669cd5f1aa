"""GET /api/v1/outcomes/explant-incidence/, /outcomes/ipg-longevity/ and
/outcomes/attrition/: thin over services.outcomes (survival, attrition), with the
cohort parameters of /outcomes/ (group_by, timepoint and threshold play no part)."""

from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from registry.services import outcomes

from .outcomes import PARAMETERS, OutcomeQuerySerializer, cohort_query
from .views import AUTH_ERRORS, PERMISSIONS, FormatIsAParameter

YearsSerializer = type("SurvivalYearsSerializer", (serializers.Serializer,), {
    f"{years}y": serializers.FloatField(allow_null=True) for years in outcomes.KM_YEARS})
AtRiskSerializer = type("SurvivalAtRiskSerializer", (serializers.Serializer,), {
    f"{years}y": serializers.IntegerField(allow_null=True) for years in outcomes.KM_YEARS})


class CurveSerializer(serializers.Serializer):
    years = serializers.ListField(child=serializers.FloatField(), help_text="Step times (years).")
    values = serializers.ListField(child=serializers.FloatField(),
                                   help_text="Estimate from each step time on.")


class CauseSerializer(serializers.Serializer):
    cause = serializers.CharField(help_text="Explant reason code, or 'death' (competing).")
    label = serializers.CharField()
    competing = serializers.BooleanField()
    events = serializers.IntegerField()
    incidence = YearsSerializer(help_text="Cumulative incidence at 1, 2, 5 years (null beyond "
                                          "the longest follow-up).")
    curve = CurveSerializer()


class IncidenceSerializer(serializers.Serializer):
    query = OutcomeQuerySerializer()
    method = serializers.CharField()
    censoring = serializers.CharField(help_text="How events and censorings are counted.")
    n_patients = serializers.IntegerField(allow_null=True)
    censored = serializers.IntegerField(allow_null=True)
    suppressed = serializers.BooleanField()
    causes = CauseSerializer(many=True)
    at_risk = AtRiskSerializer(required=False)


class IpgModelSerializer(serializers.Serializer):
    model = serializers.CharField(help_text="Manufacturer and model.")
    n_ipgs = serializers.IntegerField(allow_null=True)
    depletions = serializers.IntegerField(allow_null=True)
    median_years = serializers.FloatField(allow_null=True)
    survival = YearsSerializer()
    curve = CurveSerializer(allow_null=True)
    suppressed = serializers.BooleanField()


class LongevitySerializer(serializers.Serializer):
    query = OutcomeQuerySerializer()
    method = serializers.CharField()
    censoring = serializers.CharField()
    models = IpgModelSerializer(many=True)


def _counts(help_text):
    return serializers.DictField(child=serializers.IntegerField(allow_null=True), help_text=help_text)


class AttritionRowSerializer(serializers.Serializer):
    timepoint = serializers.CharField()
    due = serializers.IntegerField(allow_null=True)
    not_yet_due = serializers.IntegerField(allow_null=True)
    ended = _counts("Follow-up ended by the target date, per disposition status.")
    ended_total = serializers.IntegerField(allow_null=True)
    active = serializers.IntegerField(allow_null=True)
    done = serializers.IntegerField(allow_null=True)
    missed = _counts("Missed visits per recorded reason ('' = none given).")
    missed_total = serializers.IntegerField(allow_null=True)
    not_applicable = serializers.IntegerField(allow_null=True)
    open = serializers.IntegerField(allow_null=True)


class AttritionSerializer(serializers.Serializer):
    query = OutcomeQuerySerializer()
    enrolled = serializers.IntegerField(allow_null=True)
    suppressed = serializers.BooleanField()
    min_cell = serializers.IntegerField(help_text="Counts from 1 to min_cell - 1 are null.")
    statuses = serializers.DictField(child=serializers.CharField())
    timepoints = AttritionRowSerializer(many=True)


IGNORED = {"format", "group_by", "timepoint", "threshold"}


class _CohortAnalysisView(APIView):
    permission_classes = PERMISSIONS
    renderer_classes = [JSONRenderer]
    content_negotiation_class = FormatIsAParameter
    analysis = None  # the name of the services.outcomes function: looked up per request,
    serializer = None  # so importing the URLconf does not load pandas and SciPy

    def get(self, request):
        query = cohort_query(request, ignore=IGNORED)
        try:
            result = getattr(outcomes, self.analysis)(user=request.user, query=query)
        except outcomes.OutcomeQueryError as error:
            raise exceptions.ValidationError({error.param: [str(error)]}) from None
        return Response(self.serializer(result).data)


COHORT_PARAMETERS = [p for p in PARAMETERS if p.name not in IGNORED | {"pain_site", "recall"}]


class ExplantIncidenceView(_CohortAnalysisView):
    """Cumulative incidence of explant per cause, death a competing event (Aalen-Johansen)."""

    analysis = "explant_incidence"
    serializer = IncidenceSerializer

    @extend_schema(operation_id="outcomes_explant_incidence", parameters=COHORT_PARAMETERS,
                   responses={200: IncidenceSerializer, **AUTH_ERRORS}, tags=["outcomes"])
    def get(self, request):
        return super().get(request)


class IpgLongevityView(_CohortAnalysisView):
    """IPG longevity per model (Kaplan-Meier, battery depletion the event)."""

    analysis = "ipg_longevity"
    serializer = LongevitySerializer

    @extend_schema(operation_id="outcomes_ipg_longevity", parameters=COHORT_PARAMETERS,
                   responses={200: LongevitySerializer, **AUTH_ERRORS}, tags=["outcomes"])
    def get(self, request):
        return super().get(request)


class AttritionView(_CohortAnalysisView):
    """The attrition waterfall per follow-up timepoint."""

    analysis = "attrition"
    serializer = AttritionSerializer

    @extend_schema(operation_id="outcomes_attrition", parameters=COHORT_PARAMETERS,
                   responses={200: AttritionSerializer, **AUTH_ERRORS}, tags=["outcomes"])
    def get(self, request):
        return super().get(request)

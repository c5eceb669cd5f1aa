"""GET /api/v1/outcomes/: the cohort outcome summary (thin over services.outcomes)."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    PolymorphicProxySerializer,
    extend_schema,
)
from rest_framework import exceptions, serializers
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from registry.models import Diagnosis, Etiology, PainSite, Recall, Therapy
from registry.services import outcomes

from .views import AUTH_ERRORS, PERMISSIONS, FormatIsAParameter


class AeCategoryCountSerializer(serializers.Serializer):
    patients = serializers.IntegerField(help_text="Patients with at least one event of this category.")
    events = serializers.IntegerField()


# Keys are years since implant; not Python identifiers, hence type().
KmYearsSerializer = type("KmYearsSerializer", (serializers.Serializer,), {
    f"{years}y": serializers.FloatField(allow_null=True) for years in outcomes.KM_YEARS})
KmAtRiskSerializer = type("KmAtRiskSerializer", (serializers.Serializer,), {
    f"{years}y": serializers.IntegerField(allow_null=True) for years in outcomes.KM_YEARS})


ReasonCountSerializer = type("ReasonCountSerializer", (serializers.Serializer,), {
    code: serializers.IntegerField(help_text="none: no value and no reason" if code == "none" else code)
    for code in outcomes.EXCLUSION_REASONS})


class ExcludedByReasonSerializer(serializers.Serializer):
    no_baseline = ReasonCountSerializer(help_text="excluded_no_baseline by reason.")
    no_followup = ReasonCountSerializer(help_text="excluded_no_followup by reason.")


def _float(help_text):
    return serializers.FloatField(allow_null=True, help_text=help_text)


def _int(help_text=""):
    return serializers.IntegerField(allow_null=True, help_text=help_text or "Null when suppressed.")


class OutcomeSummarySerializer(serializers.Serializer):
    """The figures of a results paragraph; see services.outcomes for definitions."""

    n_patients = _int("Cohort patients (with a matching implant).")
    male = _int()
    withdrawn = _int("Withdrawn patients (kept, with their data).")
    age_mean = _float("Age at implant (implant year - birth year), mean.")
    age_sd = _float("Sample SD (ddof=1).")
    excluded_no_baseline = _int("No baseline score.")
    excluded_no_followup = _int("A baseline but no follow-up score.")
    excluded_zero_baseline = _int(
        help_text="Baseline 0: reduction undefined, left out of responders only.")
    excluded_by_reason = ExcludedByReasonSerializer(allow_null=True, help_text=(
        "The excluded patients by why the score is missing (null when suppressed)."))
    n_paired = _int("Patients with baseline and follow-up scores.")
    n_responder_evaluable = _int("n_paired minus zero baselines.")
    followup_years_median = _float("Years from implant to the follow-up visit used.")
    followup_years_min = _float("")
    followup_years_max = _float("")
    nrs_baseline_mean = _float("")
    nrs_baseline_sd = _float("")
    nrs_followup_mean = _float("")
    nrs_followup_sd = _float("")
    nrs_reduction_pct_mean = _float("Mean of the per-patient reductions (%).")
    nrs_reduction_of_means_pct = _float("(baseline mean - follow-up mean) / baseline mean x 100.")
    responders = _int()
    responder_rate = _float("responders / n_responder_evaluable.")
    responder_rate_ci95 = serializers.ListField(
        child=serializers.FloatField(), min_length=2, max_length=2, allow_null=True,
        help_text="95 % Wilson score interval [low, high].")
    wilcoxon_p = _float("Wilcoxon signed-rank, two-sided (SciPy defaults); null when not computable.")
    satisfied = _int("Satisfaction 4 or 5 at the follow-up visit.")
    n_satisfaction = _int()
    patients_with_ae = _int()
    ae_rate = _float("patients_with_ae / n_patients.")
    ae_by_category = serializers.DictField(child=AeCategoryCountSerializer(),
                                           help_text="Keyed by adverse event category code.")
    explants = _int()
    explant_free = KmYearsSerializer(help_text="Kaplan-Meier explant-free survival at 1, 2, 5 years.")
    explant_free_at_risk = KmAtRiskSerializer()
    suppressed = serializers.BooleanField(help_text=(
        "True when the group has fewer than REGISTRY_MIN_CELL patients and the caller is an "
        "investigator: every figure is then null (small cells could identify a patient)."))


class OutcomeQuerySerializer(serializers.Serializer):
    therapy = serializers.ListField(child=serializers.CharField())
    etiology = serializers.ListField(child=serializers.CharField())
    diagnosis = serializers.ListField(child=serializers.CharField())
    site = serializers.ListField(child=serializers.CharField())
    implant_year_from = serializers.IntegerField(allow_null=True)
    implant_year_to = serializers.IntegerField(allow_null=True)
    pain_site = serializers.CharField(allow_null=True)
    recall = serializers.CharField()
    timepoint = serializers.CharField()
    threshold = serializers.FloatField()
    group_by = serializers.CharField(allow_null=True)


class OutcomeResponseSerializer(OutcomeSummarySerializer):
    query = OutcomeQuerySerializer(help_text="The cohort and analysis choices, as understood.")


class OutcomeGroupSerializer(OutcomeSummarySerializer):
    group = serializers.CharField(help_text="Therapy, etiology or site code.")


class OutcomeGroupedResponseSerializer(serializers.Serializer):
    query = OutcomeQuerySerializer()
    group_by = serializers.ChoiceField(choices=outcomes.GROUP_BY_CHOICES)
    overall = OutcomeSummarySerializer()
    groups = OutcomeGroupSerializer(many=True)


def _codes_param(name, choices, description):
    return OpenApiParameter(name, OpenApiTypes.STR, description=f"{description} Comma-separated codes: "
                            f"{', '.join(choices)}.")


PARAMETERS = [
    _codes_param("therapy", Therapy.values, "Therapy of the implant."),
    _codes_param("etiology", Etiology.values, "Etiology."),
    _codes_param("diagnosis", Diagnosis.values, "Pain diagnosis."),
    OpenApiParameter("site", OpenApiTypes.STR, description="Comma-separated site codes."),
    OpenApiParameter("implant_year_from", OpenApiTypes.INT, description=(
        "Implanted in or after this year. Refused (400) for investigators: it filters on a real date.")),
    OpenApiParameter("implant_year_to", OpenApiTypes.INT, description=(
        "Implanted in or before this year. Refused (400) for investigators: it filters on a real date.")),
    OpenApiParameter("pain_site", OpenApiTypes.STR, enum=PainSite.values,
                     description="Use the pain scores of this pain site instead of the primary NRS."),
    OpenApiParameter("recall", OpenApiTypes.STR, enum=Recall.values,
                     description="Recall period of the pain-site scores (default avg_7d)."),
    OpenApiParameter("timepoint", OpenApiTypes.STR, pattern=r"^(last|m[1-9][0-9]{0,2})$",
                     description="'last' (default: each patient's latest completed visit with a score) "
                                 "or a fixed follow-up such as m12."),
    OpenApiParameter("threshold", OpenApiTypes.NUMBER,
                     description="Responder threshold, % NRS reduction (default 50)."),
    OpenApiParameter("group_by", OpenApiTypes.STR, enum=list(outcomes.GROUP_BY_CHOICES),
                     description="Also summarise per therapy, etiology or site."),
]


def cohort_query(request, *, ignore=frozenset()) -> outcomes.OutcomeQuery:
    """The cohort of an outcome request, checked (400 naming the parameter and the value):
    JSON only; a repeated parameter is one comma list; `ignore` names the view's own."""
    if request.query_params.get("format", "json") != "json":
        raise exceptions.ValidationError(
            {"format": [f"Unknown format '{request.query_params['format']}'; only json."]})
    params = {}
    for key in request.query_params:
        if key == "format" or key in ignore:
            continue
        values = request.query_params.getlist(key)
        params[key] = ",".join(values) if len(values) > 1 else values[0]
    try:
        return outcomes.outcome_query_clean(**params)
    except outcomes.OutcomeQueryError as error:
        raise exceptions.ValidationError({error.param: [str(error)]}) from None


class OutcomeSummaryView(APIView):
    """Outcome summary of the cohort the filters select, within the sites the caller may see."""

    permission_classes = PERMISSIONS
    # Always JSON: `?format=json` is accepted, any other format is a 400 (not DRF's 404).
    renderer_classes = [JSONRenderer]
    content_negotiation_class = FormatIsAParameter

    @extend_schema(
        operation_id="outcomes_summary",
        parameters=PARAMETERS,
        responses={
            200: PolymorphicProxySerializer(
                component_name="OutcomeResult",
                serializers=[OutcomeResponseSerializer, OutcomeGroupedResponseSerializer],
                resource_type_field_name=None,
            ),
            **AUTH_ERRORS,
        },
        examples=[OpenApiExample("Bad value", status_codes=["400"], response_only=True,
                                 value={"therapy": ["Unknown therapy 'XYZ'; expected one of SCS, DRG, "
                                                    "PNS, CES."]})],
        tags=["outcomes"],
    )
    def get(self, request):
        query = cohort_query(request)
        try:
            result = outcomes.outcome_summary(user=request.user, query=query)
        except outcomes.OutcomeQueryError as error:
            raise exceptions.ValidationError({error.param: [str(error)]}) from None
        if query.group_by:
            data = {"query": query.as_dict(), **result}
            return Response(OutcomeGroupedResponseSerializer(data).data)
        return Response(OutcomeResponseSerializer({"query": query.as_dict(), **result}).data)


# --- PROMs: GET /api/v1/outcomes/proms/ (services.proms.outcomes) ---------------------------


class PromScoreOutcomeSerializer(serializers.Serializer):
    score = serializers.CharField(help_text="Score column, as in the visits dataset (e.g. odi_score).")
    instrument = serializers.CharField()
    label = serializers.CharField()
    direction = serializers.CharField(help_text="higher_better or higher_worse.")
    n_baseline = _int("Patients with the score at baseline.")
    n_paired = _int("Patients with the score at baseline and at follow-up.")
    baseline_mean = _float("")
    baseline_sd = _float("Sample SD (ddof=1).")
    followup_mean = _float("")
    followup_sd = _float("")
    change_mean = _float("Follow-up - baseline, mean.")
    change_sd = _float("")
    wilcoxon_p = _float("Wilcoxon signed-rank, two-sided (SciPy defaults).")
    ttest_p = _float("Paired t-test, two-sided (scipy.stats.ttest_rel).")
    mic = _float("Minimal important change (points, or % of baseline when mic_relative).")
    mic_citation = serializers.CharField(allow_null=True)
    mic_relative = serializers.BooleanField()
    n_mic = _int("Pairs reaching the MIC in the direction of improvement.")
    mic_rate = _float("n_mic / n_paired.")
    mic_rate_ci95 = serializers.ListField(child=serializers.FloatField(), allow_null=True,
                                          help_text="95 % Wilson score interval.")
    impaired_rule = serializers.CharField(allow_null=True, help_text="Impaired at baseline: cut-off, source.")
    n_impaired = _int("Patients impaired at baseline on this score.")
    suppressed = serializers.BooleanField()


class HolisticSerializer(serializers.Serializer):
    definition = serializers.CharField()
    domains = serializers.ListField(child=serializers.CharField(), required=False)
    n_evaluable = _int("At least one domain impaired at baseline, with a follow-up in each.")
    responders = _int()
    rate = _float("")
    rate_ci95 = serializers.ListField(child=serializers.FloatField(), allow_null=True, required=False)
    excluded_not_impaired = _int()
    excluded_no_followup = _int()
    suppressed = serializers.BooleanField()


class PromCellSerializer(serializers.Serializer):
    n_patients = _int("Cohort patients.")
    scores = PromScoreOutcomeSerializer(many=True)
    holistic = HolisticSerializer()
    suppressed = serializers.BooleanField()


class PromGroupSerializer(PromCellSerializer):
    group = serializers.CharField()


class PromOutcomeSerializer(serializers.Serializer):
    query = OutcomeQuerySerializer()
    value_set = serializers.CharField(help_text="EQ-5D-5L value set used (default: the sites' country).")
    value_set_note = serializers.CharField()
    timepoint = serializers.CharField()
    overall = PromCellSerializer()
    by_therapy = PromGroupSerializer(many=True)
    group_by = serializers.CharField(required=False)
    groups = PromGroupSerializer(many=True, required=False)


class PromOutcomeView(OutcomeSummaryView):
    """PROM outcomes (change from baseline, minimal important change, holistic responder) of
    the cohort the filters select; the cohort parameters of /outcomes/ plus `value_set`."""

    @extend_schema(
        operation_id="outcomes_proms",
        parameters=[*PARAMETERS, OpenApiParameter(
            "value_set", OpenApiTypes.STR, enum=["NL", "ENG", "US", "DE", "BE"],
            description="EQ-5D-5L value set; default: the one of the cohort's sites' country.")],
        responses={200: PromOutcomeSerializer, **AUTH_ERRORS},
        tags=["outcomes"],
    )
    def get(self, request):
        from registry.services.proms.instruments import check_value_set
        from registry.services.proms.outcomes import prom_outcomes

        query = cohort_query(request, ignore={"value_set"})
        value_set = request.query_params.get("value_set") or None
        if value_set is not None:
            try:
                value_set = check_value_set(value_set)
            except ValueError as error:
                raise exceptions.ValidationError({"value_set": [str(error)]}) from None
        try:
            result = prom_outcomes(user=request.user, query=query, value_set=value_set)
        except outcomes.OutcomeQueryError as error:
            raise exceptions.ValidationError({error.param: [str(error)]}) from None
        return Response(PromOutcomeSerializer(result).data)

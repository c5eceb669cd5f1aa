"""What a summary reports, for the serializers and tables that name its figures: kept
apart from `analysis` so that reading them does not load pandas and SciPy (a web worker
that never computes a summary should not carry them, issue 21)."""

from registry.models import MissingReason

from ..missing import NO_REASON

KM_YEARS = (1, 2, 5)

# Every key of a summary, in reporting order (API serializer and tests use it).
SUMMARY_KEYS = (
    "n_patients", "male", "withdrawn", "age_mean", "age_sd",
    "excluded_no_baseline", "excluded_no_followup", "excluded_zero_baseline",
    "excluded_by_reason", "n_paired", "n_responder_evaluable",
    "followup_years_median", "followup_years_min", "followup_years_max",
    "nrs_baseline_mean", "nrs_baseline_sd", "nrs_followup_mean", "nrs_followup_sd",
    "nrs_reduction_pct_mean", "nrs_reduction_of_means_pct",
    "responders", "responder_rate", "responder_rate_ci95", "wilcoxon_p",
    "satisfied", "n_satisfaction", "patients_with_ae", "ae_rate", "ae_by_category",
    "explants", "explant_free", "explant_free_at_risk", "suppressed",
)

# Why a score is missing, as the summary counts it (services.missing; none = no reason).
EXCLUSION_REASONS = [*MissingReason.values, NO_REASON]

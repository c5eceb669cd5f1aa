"""Cohort outcomes: the seed papers' analysis, computed from live registry data.

`outcome_summary` gives, for a cohort chosen by filters, the figures of a
results paragraph (responders, NRS before and after, paired test,
satisfaction, complications, explant-free survival). `outcome_report` adds
what the dashboard plots need; `outcome_paragraph` writes the text.

Definitions (docs: /work/shared/design.md, "Outcome definitions"):

- Cohort: patients the caller may see (services.access) with an implant
  (implant date set) matching the therapy / implant-year filters. Their *index
  implant* is the earliest matching one; therapy grouping uses it. Withdrawn
  patients stay in (their collected data are kept), with the data they have.
- Age: implant year of the index implant minus birth year.
- Baseline: the patient's completed baseline visit (the pre-implant visit).
- Follow-up: `last` = the latest completed visit with a score dated after the
  implant date, linked to the index implant or to no implant (not baseline or
  end of trial); `m<N>` = the completed m<N> visit of the index implant.
- Score: the primary NRS (`Visit.nrs`), or with `pain_site` the PainScore of
  that pain site and recall (default 7-day average) at those visits.
- Exclusions (disjoint, reported, never silent): `excluded_no_baseline` (no
  baseline score), `excluded_no_followup` (a baseline but no follow-up score),
  each counted by why the score is missing in `excluded_by_reason` (`no_baseline`,
  `no_followup`: not_asked, declined, unknown, not_applicable, lost_to_follow_up,
  none = no value and no reason), from the NRS's own reason or the visit's.
  The others form the paired set (`n_paired`): NRS means, SDs, reduction of
  means and the Wilcoxon test. `excluded_zero_baseline` (baseline 0, reduction
  undefined) are left out of the per-patient reductions and responder counts
  only; the responder denominator is `n_responder_evaluable`.
- Responder: (baseline - follow-up) / baseline x 100 >= threshold (exact
  integer comparison, so 4/8 is a responder at 50 %).
- Wilcoxon: `scipy.stats.wilcoxon(baseline, follow-up)`, two-sided, SciPy's
  defaults (zero differences discarded, exact or normal approximation chosen by
  SciPy). None when it cannot be computed: no pairs or every difference zero.
- Responder 95 % CI: Wilson score interval (`binomtest(...).proportion_ci`).
- Satisfaction: at the follow-up visit used for the NRS; satisfied = 4 or 5.
- Adverse events: events of cohort patients linked to the index implant or to
  no implant; `ae_by_category` counts patients and events per category.
- Explant-free survival: Kaplan-Meier (`scipy.stats.ecdf` on `CensoredData`)
  of the time from implant to explant of the index implant, censored at the
  last known follow-up (the latest completed visit, at least the implant
  date). Reported at 1, 2 and 5 years, None where nobody is followed that long.
- SDs are sample SDs (ddof=1); statistics of an empty set are None.

Queries: a fixed handful of `values_list()` queries whatever the cohort size
(no per-patient queries); the arithmetic is done with pandas/NumPy. One request that
shows several analyses of a cohort (the dashboard) reads it once: `outcome_cohort`,
passed as `prepared=` to each (never cached across requests, so never stale).

Modules: `query` (parameters, validated), `analysis` (loading and statistics),
`text` (the paragraph and the table), `attrition` (the waterfall per timepoint),
`survival` (cumulative incidence of explant
per cause with death competing, IPG longevity per model; its docstring says how each
is censored); every public name is here.
"""

from .attrition import attrition
from .figures import EXCLUSION_REASONS, KM_YEARS, SUMMARY_KEYS
from .query import GROUP_BY_CHOICES, LAST, PARAMS, OutcomeQuery, OutcomeQueryError, outcome_query_clean
from .text import TABLE_ROWS, outcome_paragraph, outcome_table, prom_paragraph, prom_table

# The analyses load pandas and SciPy (about 120 MB per process, issue 21): their names are
# imported on first use (PEP 562), so a process that only serves forms, exports or the
# API's schema never loads them. (`attrition` is imported above: a submodule of that name
# would otherwise take its place here; it loads them inside.)
_ANALYSES = {
    "Prepared": "analysis", "km_curve": "analysis", "outcome_cohort": "analysis",
    "outcome_report": "analysis", "outcome_summary": "analysis", "wilcoxon_p": "analysis",
    "wilson_interval": "analysis", "explant_incidence": "survival", "ipg_longevity": "survival",
}


def __getattr__(name: str):
    if name not in _ANALYSES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{_ANALYSES[name]}", __name__), name)
    globals()[name] = value  # once: later reads are plain attribute reads
    return value


__all__ = [
    "EXCLUSION_REASONS", "GROUP_BY_CHOICES", "KM_YEARS", "LAST", "PARAMS", "SUMMARY_KEYS", "TABLE_ROWS",
    "OutcomeQuery", "OutcomeQueryError", "Prepared",
    "attrition", "explant_incidence", "ipg_longevity", "km_curve", "outcome_cohort", "outcome_paragraph",
    "outcome_query_clean",
    "outcome_report", "outcome_summary", "outcome_table", "prom_paragraph", "prom_table", "wilcoxon_p",
    "wilson_interval",
]

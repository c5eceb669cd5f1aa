"""PROM outcomes of a cohort: change from baseline per score, the minimal important change,
and the holistic responder.

The cohort, index implant, baseline and follow-up follow services.outcomes (same
parameters, same access rule, same small-cell suppression); only the score differs:

- Scores: every PROM score (SCORES) of the baseline visit and of the follow-up visit,
  read from the visits' PROM sheets (services.proms.sql `visit_scores`: one query per
  chunk of CHUNK patients, one row per visit holding answers), each
  chunk reduced at once to one row per patient: memory follows the patients and the chunk,
  not the answers.
- Follow-up, per score: `last` = the latest completed visit after the index implant's date
  (linked to it or to no implant, not baseline or end of trial) where the score is
  computable; `m<N>` = the completed m<N> visit of the index implant.
- Change = follow-up - baseline: mean ± SD (ddof=1) and the paired tests (Wilcoxon
  signed-rank, SciPy defaults, as for the NRS; paired t-test, `scipy.stats.ttest_rel`).
- Minimal important change (MIC, instruments.Mic with its citation): reached when the
  improvement in the score's direction is at least the MIC (PCS: a relative change).
- Holistic responder (Levy RM, Mekhail N, Abd-Elsayed A, et al. Holistic treatment response:
  an international expert panel definition and criteria for a new paradigm in the
  assessment of clinical outcomes of spinal cord stimulation. Neuromodulation
  2023;26(5):1015-1022; used in EVOKE, Mekhail N et al. Lancet Neurol 2020;19(2):123-134;
  domains after IMMPACT, Dworkin RH et al. Pain 2005;113(1-2):9-19): a patient with at least
  one score impaired at baseline (Score.impaired, cut-off and citation per score) who
  reaches the MIC in every such score. Evaluable: at least one impaired score at baseline
  and a follow-up value for each of them; the others are counted, never silently dropped.
- `pain_site`: patients with a pain score at that pain site at baseline.
- `value_set`: the EQ-5D-5L value set; by default the one of the cohort's sites' country
  (instruments.default_value_set), stated in the output (`value_set`, `value_set_note`).
- Investigators (services.deid): a cohort or group of fewer than `min_cell` patients, and
  a score cell of fewer than `min_cell` pairs, come back suppressed (figures null).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from django.db.models import Case, F, IntegerField, Max, Min, QuerySet, Value, When
from scipy import stats

from registry.models import BASELINE, TRIAL_END, UNSCHEDULED, PainScore, Visit, VisitStatus

from .. import access, deid
from ..outcomes import analysis as base
from ..outcomes.query import LAST, OutcomeQuery, outcome_query_clean
from .instruments import HIGHER_BETTER, SCORES, check_value_set, default_value_set, value_set_note
from .sql import visit_scores

HOLISTIC_DEFINITION = (
    "Holistic responder: minimal important change in every PROM score impaired at baseline "
    "(at least one impaired); Levy RM, Mekhail N, Abd-Elsayed A, et al. Neuromodulation "
    "2023;26(5):1015-1022 (EVOKE; domains after IMMPACT, Dworkin RH et al. Pain 2005;113:9-19).")

SCORE_KEYS = (
    "score", "instrument", "label", "direction", "n_baseline", "n_paired",
    "baseline_mean", "baseline_sd", "followup_mean", "followup_sd", "change_mean", "change_sd",
    "wilcoxon_p", "ttest_p", "mic", "mic_citation", "mic_relative", "n_mic", "mic_rate",
    "mic_rate_ci95", "impaired_rule", "n_impaired", "suppressed",
)


# --- loading ------------------------------------------------------------------------


CHUNK = 10000  # patients per query of visit scores: memory bounded by the chunk, not the registry


def _cohort(query: OutcomeQuery, scope: QuerySet) -> pd.DataFrame:
    """The cohort patients (index patient_id) with site, etiology and their index implant."""
    patients = base._frame(
        scope.values_list("id", "site__code", "etiology").order_by(),
        {"patient_id": base.INT, "site": base.TEXT, "etiology": base.TEXT},
    ).set_index("patient_id")
    implants = base._frame(
        base._implants_matching(query).filter(**base._of_patients(scope))
        .values_list("id", "patient_id", "therapy", "implant_date").order_by(),
        {"implant_id": base.INT, "patient_id": base.INT, "therapy": base.TEXT, "implant_date": base.DATE},
    )
    implants = implants.sort_values(["patient_id", "implant_date", "implant_id"])
    index = implants.drop_duplicates("patient_id", keep="first").set_index("patient_id")
    return patients.join(index, how="inner").sort_index()


def _visit_scores(query: OutcomeQuery, scope: QuerySet, value_set: str, low: int, high: int) -> pd.DataFrame:
    """One row per completed visit holding answers of the patients with ids in [low, high]:
    patient, implant, date, kind and every score (computed by the database in one grouped
    query over their answers, services.proms.sql.visit_scores)."""
    visits = Visit.objects.filter(status=VisitStatus.COMPLETED, patient_id__gte=low, patient_id__lte=high,
                                  **base._of_patients(scope)).exclude(timepoint=TRIAL_END)
    if query.timepoint != LAST:
        visits = visits.filter(timepoint__in=[BASELINE, query.timepoint])
    kind = Case(When(timepoint=BASELINE, then=Value(0)), When(timepoint=UNSCHEDULED, then=Value(2)),
                default=Value(1), output_field=IntegerField())
    codes = list(SCORES)
    # The chunk's sheets by a range of their key: without it the planner hashed the whole
    # sheet table once per chunk (3 of the 5 s at 100,000 patients). The bounds are a query
    # of their own: as subqueries the planner scanned the visit key from its end for them.
    # Of `id + 0`, not `id`: min()/max() of the key itself are planned as a walk of the key's
    # index from each end, filtering on the patient range: a million visits per chunk at
    # 100,000 patients (0.17 s a chunk, EXPLAIN ANALYZE), not the chunk's 80,000.
    bounds = visits.order_by().aggregate(low=Min(F("pk") + 0), high=Max(F("pk") + 0))
    with_sheets = visits.filter(prom_sheet__visit_id__gte=bounds["low"] or 0,
                                prom_sheet__visit_id__lte=bounds["high"] or -1)
    return base._frame(
        visit_scores(with_sheets, value_set).annotate(kind=kind)
        .values_list("id", "patient_id", "implant_id", "date_done", "kind", *codes).order_by(),
        {"visit_id": base.INT, "patient_id": base.INT, "visit_implant_id": base.FLOAT,
         "date_done": base.DATE, "kind": base.INT, **{c: base.FLOAT for c in codes}},
        arrays=True)


def _load_pairs(query: OutcomeQuery, scope_base: QuerySet, value_set: str, chunk: int | None = None,
                cohort: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(cohort, pairs): the visit scores are read per chunk of `chunk` cohort patients and
    reduced at once to one row per patient, so memory follows the patients, not the visits.
    `cohort`: the outcome cohort's patients already read in this request (Prepared)."""
    chunk = chunk or CHUNK
    scope = base._patient_scope(scope_base, query)
    if cohort is None:
        cohort = _cohort(query, scope)
    else:
        cohort = cohort[["site", "etiology", "implant_id", "therapy", "implant_date"]].sort_index()
    if query.pain_site is not None:
        with_site = PainScore.objects.filter(
            visit__timepoint=BASELINE, visit__status=VisitStatus.COMPLETED, pain_site=query.pain_site,
            **base._of_patients(scope, "visit__patient"))
        cohort = cohort[cohort.index.isin(set(with_site.values_list("visit__patient_id", flat=True)))]
    ids = cohort.index.to_numpy()
    parts = []
    for start in range(0, len(ids), chunk):
        part = cohort.iloc[start:start + chunk]
        low, high = int(ids[start]), int(ids[min(start + chunk, len(ids)) - 1])
        # Visits of patients outside the chunk's part of the cohort (ids between) are left
        # out by _pairs itself: no filtered copy of the chunk's rows.
        parts.append(_pairs(part, _visit_scores(query, scope, value_set, low, high), query.timepoint))
    pairs = pd.concat(parts) if parts else _pairs(cohort, _visit_scores(query, scope, value_set, 0, -1),
                                                  query.timepoint)
    return cohort, pairs


def _pairs(patients: pd.DataFrame, visits: pd.DataFrame, timepoint: str) -> pd.DataFrame:
    """One row per cohort patient: `<score>_b` (baseline) and `<score>_f` (follow-up).

    The picks of `outcomes.analysis.follow_up_rows` (the same visits kept, the same
    order, the last per patient), made on arrays: one sort of the chunk's visits and one
    pass per score, no frame merged, copied or de-duplicated per score (at 100,000
    patients pandas did that ~200 times: most of the PROM outcomes' time, issue 21)."""
    n = len(patients)
    row = patients.index.get_indexer(visits["patient_id"].to_numpy())  # -1: not in the cohort
    kind = visits["kind"].to_numpy()
    visit_id = visits["visit_id"].to_numpy()
    date_done = visits["date_done"].to_numpy()
    # Baseline: the last entered (highest visit id) per patient.
    base = np.flatnonzero((kind == 0) & (row >= 0))
    base = base[np.lexsort((visit_id[base], row[base]))]
    base = base[_last_of_each(row[base])]
    follow = np.flatnonzero((kind != 0) & (row >= 0))
    at = row[follow]
    implant_id = patients["implant_id"].to_numpy(dtype=float)[at]
    visit_implant = visits["visit_implant_id"].to_numpy(dtype=float)[follow]
    linked = visit_implant == implant_id
    if timepoint == LAST:
        implant_date = _dates(patients["implant_date"])[at]
        keep = (linked | np.isnan(visit_implant)) & (date_done[follow] > implant_date)
    else:
        keep = linked
    follow = follow[keep]
    # Latest by date, on one day a scheduled timepoint after an unscheduled visit, then
    # the one entered last: the order of follow_up_rows.
    follow = follow[np.lexsort((visit_id[follow], kind[follow] == 1, date_done[follow], row[follow]))]
    out = {}
    for code in SCORES:
        values = visits[code].to_numpy(dtype=float)
        before = np.full(n, np.nan)
        before[row[base]] = values[base]
        scored = follow[~np.isnan(values[follow])]
        scored = scored[_last_of_each(row[scored])]
        after = np.full(n, np.nan)
        after[row[scored]] = values[scored]
        out[f"{code}_b"], out[f"{code}_f"] = before, after
    return pd.DataFrame(out, index=patients.index)


def _dates(dates: pd.Series) -> np.ndarray:
    """The dates as datetime64[ns] values (NaT where missing)."""
    return base.as_dates(dates).to_numpy(dtype="datetime64[ns]")


def _last_of_each(groups: np.ndarray) -> np.ndarray:
    """Mask of the last element of each run of equal values (`groups` sorted)."""
    last = np.ones(len(groups), dtype=bool)
    last[:-1] = groups[1:] != groups[:-1]
    return last


# --- statistics -----------------------------------------------------------------------


def _improvement(code: str, before: np.ndarray, after: np.ndarray) -> np.ndarray:
    _, score = SCORES[code]
    return after - before if score.direction == HIGHER_BETTER else before - after


def _mic_reached(code: str, before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Direction-aware MIC, vectorised (as instruments.Mic.reached)."""
    _, score = SCORES[code]
    improvement = _improvement(code, before, after)
    if score.mic.relative:
        with np.errstate(divide="ignore", invalid="ignore"):
            pct = np.where(before != 0, improvement / np.abs(before) * 100, -np.inf)
        return pct >= score.mic.value
    return improvement >= score.mic.value - 1e-9


def _impaired(code: str, values: np.ndarray) -> np.ndarray:
    """Impaired at baseline (Score.impaired, vectorised); False where unknown."""
    _, score = SCORES[code]
    if score.impaired_cutoff is None:
        return np.zeros(len(values), dtype=bool)
    with np.errstate(invalid="ignore"):
        if score.direction == HIGHER_BETTER:
            hit = values < score.impaired_cutoff
        elif score.impaired_strict:
            hit = values > score.impaired_cutoff
        else:
            hit = values >= score.impaired_cutoff
    return hit & ~np.isnan(values)


def ttest_p(before: np.ndarray, after: np.ndarray) -> float | None:
    """Two-sided paired t-test; None with fewer than 2 pairs or no variance of the change."""
    diff = np.asarray(after, dtype=float) - np.asarray(before, dtype=float)
    if len(diff) < 2 or np.allclose(diff, diff[0]):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return base._num(stats.ttest_rel(after, before).pvalue)


def _score_cell(code: str, pairs: pd.DataFrame, min_cell: int) -> dict:
    instrument, score = SCORES[code]
    before_all = pairs[f"{code}_b"].to_numpy(dtype=float)
    after_all = pairs[f"{code}_f"].to_numpy(dtype=float)
    both = ~np.isnan(before_all) & ~np.isnan(after_all)
    before, after = before_all[both], after_all[both]
    out = dict.fromkeys(SCORE_KEYS)
    out.update(score=code, instrument=instrument.code, label=score.label, direction=score.direction,
               mic=score.mic.value if score.mic else None,
               mic_citation=score.mic.citation if score.mic else None,
               mic_relative=bool(score.mic and score.mic.relative),
               impaired_rule=score.impaired_citation or None, suppressed=False)
    n = int(both.sum())
    if 0 < n < min_cell:
        out["suppressed"] = True
        return out
    change = after - before
    out.update(
        n_baseline=int((~np.isnan(before_all)).sum()), n_paired=n,
        baseline_mean=base._mean(before), baseline_sd=base._sd(before),
        followup_mean=base._mean(after), followup_sd=base._sd(after),
        change_mean=base._mean(change), change_sd=base._sd(change),
        wilcoxon_p=base.wilcoxon_p(before, after), ttest_p=ttest_p(before, after),
        n_impaired=int(_impaired(code, before_all).sum()) if score.impaired_cutoff is not None else None,
    )
    if score.mic:
        reached = int(_mic_reached(code, before, after).sum())
        out.update(n_mic=reached, mic_rate=reached / n if n else None,
                   mic_rate_ci95=base.wilson_interval(reached, n))
    return out


def _holistic(pairs: pd.DataFrame) -> dict:
    domains = [c for c, (_, s) in SCORES.items() if s.mic and s.impaired_cutoff is not None]
    n = len(pairs)
    impaired = np.zeros((n, len(domains)), dtype=bool)
    followed = np.zeros((n, len(domains)), dtype=bool)
    reached = np.zeros((n, len(domains)), dtype=bool)
    for j, code in enumerate(domains):
        before = pairs[f"{code}_b"].to_numpy(dtype=float)
        after = pairs[f"{code}_f"].to_numpy(dtype=float)
        impaired[:, j] = _impaired(code, before)
        followed[:, j] = ~np.isnan(after)
        with np.errstate(invalid="ignore"):
            reached[:, j] = _mic_reached(code, before, after) & followed[:, j]
    any_impaired = impaired.any(axis=1)
    evaluable = any_impaired & (followed | ~impaired).all(axis=1)
    responder = evaluable & (reached | ~impaired).all(axis=1)
    k, m = int(responder.sum()), int(evaluable.sum())
    return {
        "definition": HOLISTIC_DEFINITION, "domains": domains,
        "n_evaluable": m, "responders": k, "rate": k / m if m else None,
        "rate_ci95": base.wilson_interval(k, m),
        "excluded_not_impaired": int((~any_impaired).sum()),
        "excluded_no_followup": int((any_impaired & ~evaluable).sum()),
        "suppressed": False,
    }


def _cell(pairs: pd.DataFrame, min_cell: int) -> dict:
    n = len(pairs)
    if 0 < n < min_cell:
        return {"n_patients": None, "scores": [], "holistic": {
            "definition": HOLISTIC_DEFINITION, "suppressed": True}, "suppressed": True}
    holistic = _holistic(pairs)
    if 0 < holistic["n_evaluable"] < min_cell:
        holistic = {"definition": HOLISTIC_DEFINITION, "suppressed": True}
    return {"n_patients": n, "scores": [_score_cell(c, pairs, min_cell) for c in SCORES],
            "holistic": holistic, "suppressed": False}


def prom_outcomes(*, user=None, patients: QuerySet | None = None, query: OutcomeQuery | None = None,
                  value_set: str | None = None, prepared: base.Prepared | None = None, **params) -> dict:
    """PROM outcomes of the cohort the parameters select (those of services.outcomes), or of
    the `prepared` cohort of `outcomes.outcome_cohort` (read once for the whole dashboard):
    {"query", "value_set", "value_set_note", "timepoint", "overall": cell, "by_therapy": [...],
    and with group_by "group_by", "groups": [...]}. A cell: {"n_patients", "scores": [one per
    score, keys SCORE_KEYS], "holistic": {...}, "suppressed"}.
    Raises OutcomeQueryError on bad parameters, ValueError on an unknown value set."""
    if prepared is not None:
        if query is not None or params or patients is not None or user is not None:
            raise ValueError("Give either `prepared` or the cohort's parameters, not both.")
        query, min_cell, scope_base, user = prepared.query, prepared.min_cell, prepared.scope, prepared.user
        known = prepared.cohort.patients
    else:
        if query is not None and params:
            raise ValueError("Give either `query` or separate parameters, not both.")
        query = query or outcome_query_clean(**params)
        min_cell = 1
        if user is not None:
            for param, message in deid.refused_outcome_filters(user, query.as_dict()).items():
                raise base.OutcomeQueryError(param, getattr(query, param), message)
            min_cell = deid.min_cell(user)
        scope_base = base._base_patients(patients, user)
        base._check_sites(query, user)
        known = None
    if value_set in (None, ""):
        value_set = _default_value_set(query, scope_base, user)
    value_set = check_value_set(value_set)
    cohort, pairs = _load_pairs(query, scope_base, value_set, cohort=known)
    out = {"query": query.as_dict(), "value_set": value_set, "value_set_note": value_set_note(value_set),
           "timepoint": query.timepoint, "overall": _cell(pairs, min_cell)}
    out["by_therapy"] = _groups(pairs, cohort["therapy"], min_cell)
    if query.group_by:
        out["group_by"] = query.group_by
        out["groups"] = _groups(pairs, cohort[query.group_by], min_cell)
    return out


def _default_value_set(query: OutcomeQuery, scope_base: QuerySet, user) -> str:
    """The value set of the country of the cohort's patients' sites; for a cohort without
    patients, of the sites the user sees (or chose with `site`), as the exports do."""
    countries = set(base._patient_scope(scope_base, query).order_by()
                    .values_list("site__country", flat=True).distinct())
    if not countries and user is not None:
        sites = access.sites_for(user)
        if query.site:
            sites = sites.filter(code__in=query.site)
        countries = set(sites.values_list("country", flat=True))
    return default_value_set(countries)


def _groups(pairs: pd.DataFrame, values: pd.Series, min_cell: int) -> list[dict]:
    return [{"group": str(value), **_cell(pairs[(values == value).to_numpy()], min_cell)}
            for value in sorted(values.dropna().unique())]

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
  baseline score), `excluded_no_followup` (a baseline but no follow-up score).
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
(no per-patient queries); the arithmetic is done with pandas/NumPy.
"""

from __future__ import annotations

import datetime
import math
import warnings
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from django.core.exceptions import EmptyResultSet
from django.db import connections
from django.db.models import Case, IntegerField, Max, QuerySet, Value, When
from scipy import stats

from registry.models import (
    BASELINE,
    TRIAL_END,
    UNSCHEDULED,
    AdverseEvent,
    AeCategory,
    Diagnosis,
    Etiology,
    Implant,
    PainScore,
    PainSite,
    Patient,
    Recall,
    Site,
    Therapy,
    Visit,
    VisitStatus,
    timepoint_label,
    timepoint_months,
)
from registry.services import access

LAST = "last"
GROUP_BY_CHOICES = ("therapy", "etiology", "site")
KM_YEARS = (1, 2, 5)
DAYS_PER_YEAR = 365.25
SATISFIED_MIN = 4

# Every key of a summary, in reporting order (API serializer and tests use it).
SUMMARY_KEYS = (
    "n_patients", "male", "withdrawn", "age_mean", "age_sd",
    "excluded_no_baseline", "excluded_no_followup", "excluded_zero_baseline",
    "n_paired", "n_responder_evaluable",
    "followup_years_median", "followup_years_min", "followup_years_max",
    "nrs_baseline_mean", "nrs_baseline_sd", "nrs_followup_mean", "nrs_followup_sd",
    "nrs_reduction_pct_mean", "nrs_reduction_of_means_pct",
    "responders", "responder_rate", "responder_rate_ci95", "wilcoxon_p",
    "satisfied", "n_satisfaction", "patients_with_ae", "ae_rate", "ae_by_category",
    "explants", "explant_free", "explant_free_at_risk",
)


class OutcomeQueryError(ValueError):
    """A bad cohort parameter; names the parameter and the value."""

    def __init__(self, param: str, value, message: str):
        self.param = param
        self.value = value
        super().__init__(message)


@dataclass(frozen=True)
class OutcomeQuery:
    """A validated cohort and analysis choice (see `outcome_query_clean`)."""

    therapy: tuple[str, ...] = ()
    etiology: tuple[str, ...] = ()
    diagnosis: tuple[str, ...] = ()
    site: tuple[str, ...] = ()
    implant_year_from: int | None = None
    implant_year_to: int | None = None
    pain_site: str | None = None
    recall: str = Recall.AVG_7D
    timepoint: str = LAST
    threshold: float = 50
    group_by: str | None = None
    extra: dict = field(default_factory=dict, compare=False)

    def as_dict(self) -> dict:
        data = asdict(self)
        data.pop("extra")
        for key in ("therapy", "etiology", "diagnosis", "site"):
            data[key] = list(data[key])
        return data


PARAMS = (
    "therapy", "etiology", "diagnosis", "site", "implant_year_from", "implant_year_to",
    "pain_site", "recall", "timepoint", "threshold", "group_by",
)


def _codes(param: str, raw, allowed: Iterable[str], *, upper: bool = False) -> tuple[str, ...]:
    if raw in (None, "", [], ()):
        return ()
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    values = []
    allowed = list(allowed)
    for item in items:
        code = str(item).strip()
        code = code.upper() if upper else code.lower()
        if not code:
            continue
        if code not in allowed:
            raise OutcomeQueryError(
                param, item, f"Unknown {param} '{item}'; expected one of {', '.join(allowed)}."
            )
        if code not in values:
            values.append(code)
    return tuple(values)


def _year(param: str, raw) -> int | None:
    if raw in (None, ""):
        return None
    try:
        year = int(str(raw).strip())
    except ValueError:
        raise OutcomeQueryError(param, raw, f"{param} must be a year such as 2015, not '{raw}'.") from None
    if not 1900 <= year <= 2100:
        raise OutcomeQueryError(param, raw, f"{param} must be between 1900 and 2100, not {year}.")
    return year


def outcome_query_clean(**raw) -> OutcomeQuery:
    """Validate cohort parameters given as Python values or strings (query
    string, command line): comma-separated codes, years, `last` or `m<N>`,
    a threshold in (0, 100]. Refuses unknown parameters and values with an
    OutcomeQueryError naming the parameter and the value. Site codes are
    checked for their form here and against the database in the summary."""
    unknown = sorted(set(raw) - set(PARAMS))
    if unknown:
        raise OutcomeQueryError(
            unknown[0], raw[unknown[0]],
            f"Unknown parameter '{unknown[0]}' (given '{raw[unknown[0]]}'); expected one of "
            f"{', '.join(PARAMS)}.",
        )
    sites = ()
    if raw.get("site") not in (None, "", [], ()):
        items = raw["site"].split(",") if isinstance(raw["site"], str) else list(raw["site"])
        sites = tuple(dict.fromkeys(str(s).strip().upper() for s in items if str(s).strip()))
        for code in sites:
            if not code.isalnum() or len(code) > 8:
                raise OutcomeQueryError("site", code, f"'{code}' is not a site code (e.g. NIJ).")
    year_from = _year("implant_year_from", raw.get("implant_year_from"))
    year_to = _year("implant_year_to", raw.get("implant_year_to"))
    if year_from and year_to and year_from > year_to:
        raise OutcomeQueryError(
            "implant_year_to", year_to,
            f"implant_year_to ({year_to}) is before implant_year_from ({year_from}).",
        )
    pain_sites = _codes("pain_site", raw.get("pain_site"), PainSite.values)
    if len(pain_sites) > 1:
        raise OutcomeQueryError("pain_site", raw.get("pain_site"), "Give one pain site at a time.")
    recall_raw = raw.get("recall")
    recall = _codes("recall", recall_raw, Recall.values) if recall_raw not in (None, "") else ()
    if len(recall) > 1:
        raise OutcomeQueryError("recall", recall_raw, "Give one recall period.")
    timepoint = str(raw.get("timepoint") or LAST).strip().lower()
    if timepoint != LAST and not timepoint_months(timepoint):
        raise OutcomeQueryError(
            "timepoint", raw.get("timepoint"),
            f"Unknown timepoint '{raw.get('timepoint')}'; use 'last' or m<N> such as m12.",
        )
    threshold_raw = raw.get("threshold")
    threshold = 50.0
    if threshold_raw not in (None, ""):
        try:
            threshold = float(str(threshold_raw).strip().rstrip("%"))
        except ValueError:
            raise OutcomeQueryError(
                "threshold", threshold_raw,
                f"threshold must be a percentage such as 50, not '{threshold_raw}'.",
            ) from None
        if not (0 < threshold <= 100) or math.isnan(threshold):
            raise OutcomeQueryError(
                "threshold", threshold_raw, f"threshold must be above 0 and at most 100, not {threshold_raw}."
            )
    group_by = raw.get("group_by") or None
    if group_by is not None:
        group_by = str(group_by).strip().lower()
        if group_by not in GROUP_BY_CHOICES:
            raise OutcomeQueryError(
                "group_by", raw.get("group_by"),
                f"Unknown group_by '{raw.get('group_by')}'; expected one of {', '.join(GROUP_BY_CHOICES)}.",
            )
    return OutcomeQuery(
        therapy=_codes("therapy", raw.get("therapy"), Therapy.values, upper=True),
        etiology=_codes("etiology", raw.get("etiology"), Etiology.values),
        diagnosis=_codes("diagnosis", raw.get("diagnosis"), Diagnosis.values),
        site=sites,
        implant_year_from=year_from,
        implant_year_to=year_to,
        pain_site=pain_sites[0] if pain_sites else None,
        recall=recall[0] if recall else Recall.AVG_7D,
        timepoint=timepoint,
        threshold=int(threshold) if float(threshold).is_integer() else threshold,
        group_by=group_by,
    )


# --- loading ------------------------------------------------------------------


def _base_patients(patients: QuerySet | None, user) -> QuerySet:
    if patients is None and user is None:
        raise ValueError("Give `user` (scoped by the access rule) or an already scoped `patients`.")
    qs = patients if patients is not None else Patient.objects.all()
    if user is not None:
        qs = access.visible(qs, user)
    return qs


def _implants_matching(query: OutcomeQuery) -> QuerySet:
    qs = Implant.objects.filter(implant_date__isnull=False)
    if query.therapy:
        qs = qs.filter(therapy__in=query.therapy)
    if query.implant_year_from:
        qs = qs.filter(implant_date__gte=datetime.date(query.implant_year_from, 1, 1))
    if query.implant_year_to:
        qs = qs.filter(implant_date__lte=datetime.date(query.implant_year_to, 12, 31))
    return qs


def _check_sites(query: OutcomeQuery, user=None) -> None:
    if not query.site:
        return
    # Checked against the sites the user may see: otherwise "unknown" versus an
    # empty cohort would tell a nurse which other site codes exist.
    sites = access.sites_for(user) if user is not None else Site.objects.all()
    known = set(sites.filter(code__in=query.site).values_list("code", flat=True))
    for code in query.site:
        if code not in known:
            raise OutcomeQueryError("site", code, f"Unknown site '{code}'.")


def _patient_scope(base: QuerySet, query: OutcomeQuery) -> QuerySet:
    """Visible patients matching the patient-level filters (implants not yet considered)."""
    qs = base
    if query.etiology:
        qs = qs.filter(etiology__in=query.etiology)
    if query.diagnosis:
        qs = qs.filter(diagnosis__in=query.diagnosis)
    if query.site:
        qs = qs.filter(site__code__in=query.site)
    return qs


def _of_patients(scope: QuerySet, path: str = "patient") -> dict:
    """Filter rows of other tables to the patient scope. No filter at all when the scope is
    every patient (a data manager, no filters): cheaper than a semi-join over the registry.
    Rows of patients outside the cohort are dropped when the frames are joined."""
    if not scope.query.where:
        return {}
    return {f"{path}__in": scope.values("id")}


INT, FLOAT, DATE, TEXT = "int", "float", "date", "text"


def _frame(queryset: QuerySet, columns: dict[str, str]) -> pd.DataFrame:
    """A frame from a `values_list` queryset (columns in the same order), built column by
    column with known types. The rows are fetched with a plain cursor: Django's per-row
    converters and pandas' type inference cost more than the query over a million rows.
    FLOAT columns take NULL as NaN, DATE columns as NaT; INT columns must not be NULL."""
    try:
        sql, params = queryset.query.get_compiler(using=queryset.db).as_sql()
    except EmptyResultSet:  # e.g. a user who may see no site
        rows = []
    else:
        with connections[queryset.db].cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
    table = np.array(rows, dtype=object) if rows else np.empty((0, len(columns)), dtype=object)
    frame = {}
    for i, (name, kind) in enumerate(columns.items()):
        values = table[:, i]
        if kind == INT:
            frame[name] = values.astype(np.int64)
        elif kind == FLOAT:
            frame[name] = pd.Series(values, dtype=object).astype(float).to_numpy()
        elif kind == DATE:  # date objects (PostgreSQL) or ISO strings (SQLite)
            frame[name] = pd.to_datetime(pd.Series(values, dtype=object))
        else:
            frame[name] = pd.Series(values, dtype=object)
    return pd.DataFrame(frame)


def _days(later: pd.Series, earlier: pd.Series) -> pd.Series:
    return (pd.to_datetime(later) - pd.to_datetime(earlier)).dt.days.astype(float)


@dataclass
class Cohort:
    """One row per cohort patient, plus the events, ready for `_summarise`."""

    patients: pd.DataFrame  # index patient_id
    events: pd.DataFrame  # patient_id, category


def _load(query: OutcomeQuery, base: QuerySet) -> Cohort:
    scope = _patient_scope(base, query)
    # Cohort = scope patients with a matching implant: the inner join below (in pandas,
    # so PostgreSQL scans each table once instead of planning a semi-join per query).
    patients = _frame(
        scope.values_list("id", "sex", "birth_year", "etiology", "diagnosis", "site__code",
                          "consent_status").order_by(),
        {"patient_id": INT, "sex": TEXT, "birth_year": INT, "etiology": TEXT, "diagnosis": TEXT,
         "site": TEXT, "consent_status": TEXT},
    ).set_index("patient_id")
    implants = _frame(
        _implants_matching(query).filter(**_of_patients(scope))
        .values_list("id", "patient_id", "therapy", "implant_date", "explant_date").order_by(),
        {"implant_id": INT, "patient_id": INT, "therapy": TEXT, "implant_date": DATE, "explant_date": DATE},
    )
    # Index implant: the earliest matching one (ties: the lower id, i.e. entered first).
    implants = implants.sort_values(["patient_id", "implant_date", "implant_id"])
    index = implants.drop_duplicates("patient_id", keep="first").set_index("patient_id")
    patients = patients.join(index, how="inner")

    completed = Visit.objects.filter(status=VisitStatus.COMPLETED, **_of_patients(scope))
    if query.timepoint == LAST:
        # Every completed visit: the scored ones give the follow-up, all give the last contact.
        loaded = completed.exclude(timepoint=TRIAL_END)
    else:
        loaded = completed.filter(timepoint__in=[BASELINE, query.timepoint])
        if query.pain_site is None:
            loaded = loaded.filter(nrs__isnull=False)
    # The timepoint as a small code (0 baseline, 1 scheduled follow-up, 2 unscheduled):
    # a million short strings cost more to fetch and compare than integers.
    kind = Case(When(timepoint=BASELINE, then=Value(0)), When(timepoint=UNSCHEDULED, then=Value(2)),
                default=Value(1), output_field=IntegerField())
    visits = _frame(
        loaded.annotate(kind=kind).values_list(
            "id", "patient_id", "implant_id", "date_done", "nrs", "satisfaction", "kind").order_by(),
        {"visit_id": INT, "patient_id": INT, "visit_implant_id": FLOAT, "date_done": DATE,
         "score": FLOAT, "satisfaction": FLOAT, "kind": INT},
    )
    if query.timepoint == LAST:
        contacts = visits.groupby("patient_id")["date_done"].max()
    else:
        contacts = pd.Series(dict(
            completed.values("patient_id").annotate(last=Max("date_done"))
            .values_list("patient_id", "last").order_by()), dtype="object")
    # reindex: assigning a Series to an empty frame would adopt the Series' rows.
    patients["last_visit"] = pd.to_datetime(contacts).reindex(patients.index)
    if query.pain_site is not None:
        scores = _frame(
            PainScore.objects.filter(visit__in=loaded.values("id"), pain_site=query.pain_site,
                                     recall=query.recall)
            .values_list("visit_id", "score").order_by(),
            {"visit_id": INT, "pain_score": FLOAT},
        )
        visits = visits.drop(columns="score").merge(scores, on="visit_id", how="inner")
        visits = visits.rename(columns={"pain_score": "score"})
    visits = visits[visits["score"].notna()]

    is_baseline = visits["kind"] == 0
    baseline = visits[is_baseline].drop_duplicates("patient_id")
    patients["baseline"] = baseline.set_index("patient_id")["score"].reindex(patients.index)

    follow = visits[~is_baseline].merge(
        patients[["implant_id", "implant_date"]].reset_index(), on="patient_id"
    )
    linked = follow["visit_implant_id"] == follow["implant_id"]
    if query.timepoint == LAST:
        keep = (linked | follow["visit_implant_id"].isna()) & (follow["date_done"] > follow["implant_date"])
    else:
        keep = linked
    follow = follow[keep].copy()
    # Latest by date; on the same day a scheduled timepoint wins over an unscheduled
    # visit, then the one entered last.
    follow["scheduled"] = follow["kind"] == 1
    follow = follow.sort_values(["patient_id", "date_done", "scheduled", "visit_id"])
    last = follow.drop_duplicates("patient_id", keep="last").set_index("patient_id")
    last = last.reindex(patients.index)
    patients["followup"] = last["score"]
    patients["followup_date"] = last["date_done"]
    patients["satisfaction"] = last["satisfaction"]

    events = _frame(
        AdverseEvent.objects.filter(**_of_patients(scope))
        .values_list("patient_id", "implant_id", "category").order_by(),
        {"patient_id": INT, "event_implant_id": FLOAT, "category": TEXT},
    )
    events = events.merge(patients[["implant_id"]].reset_index(), on="patient_id")
    events = events[events["event_implant_id"].isna() | (events["event_implant_id"] == events["implant_id"])]
    return Cohort(patients=patients, events=events[["patient_id", "category"]])


# --- statistics ---------------------------------------------------------------


def _num(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _mean(values: np.ndarray) -> float | None:
    return float(np.mean(values)) if len(values) else None


def _sd(values: np.ndarray) -> float | None:
    return float(np.std(values, ddof=1)) if len(values) > 1 else None


def wilson_interval(successes: int, trials: int) -> list[float] | None:
    """95 % Wilson score interval of a proportion, None without trials."""
    if trials < 1:
        return None
    ci = stats.binomtest(int(successes), int(trials)).proportion_ci(
        confidence_level=0.95, method="wilson")
    return [float(ci.low), float(ci.high)]


def wilcoxon_p(before: np.ndarray, after: np.ndarray) -> float | None:
    """Two-sided Wilcoxon signed-rank p with SciPy's defaults; None when every
    difference is zero or there are no pairs (SciPy cannot test that)."""
    before = np.asarray(before, dtype=float)
    after = np.asarray(after, dtype=float)
    if len(before) < 1 or not np.any(before != after):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # tiny samples: SciPy warns, p is still defined
        p = stats.wilcoxon(before, after).pvalue
    return _num(p)


def km_curve(times: np.ndarray, explanted: np.ndarray) -> tuple[list[float], list[float]]:
    """Kaplan-Meier explant-free survival: (times in years, survival), a step
    function starting at (0, 1)."""
    if len(times) == 0:
        return [], []
    data = stats.CensoredData(uncensored=times[explanted], right=times[~explanted])
    sf = stats.ecdf(data).sf
    xs = [0.0] + [float(t) for t in sf.quantiles]
    ys = [1.0] + [float(p) for p in sf.probabilities]
    return xs, ys


def _explant_free(times: np.ndarray, explanted: np.ndarray) -> tuple[dict, dict]:
    estimates, at_risk = {}, {}
    if len(times):
        sf = stats.ecdf(stats.CensoredData(uncensored=times[explanted], right=times[~explanted])).sf
    for years in KM_YEARS:
        key = f"{years}y"
        at_risk[key] = int(np.sum(times >= years))
        # Beyond the longest follow-up the curve is not estimated.
        estimates[key] = float(sf.evaluate(years)) if len(times) and times.max() >= years else None
    return estimates, at_risk


def _summarise(cohort: Cohort, threshold: float) -> dict:
    p = cohort.patients
    n = len(p)
    ages = (pd.to_datetime(p["implant_date"]).dt.year - p["birth_year"]).to_numpy(dtype=float)
    has_base = p["baseline"].notna()
    has_follow = p["followup"].notna()
    paired = p[has_base & has_follow]
    before = paired["baseline"].to_numpy(dtype=float)
    after = paired["followup"].to_numpy(dtype=float)
    evaluable = before > 0
    reduction = (before[evaluable] - after[evaluable]) / before[evaluable] * 100
    # Exact comparison on the integer scale (no floating point edge at the threshold).
    responder = (before[evaluable] - after[evaluable]) * 100 >= threshold * before[evaluable]
    years = (_days(paired["followup_date"], paired["implant_date"]) / DAYS_PER_YEAR).to_numpy()
    base_mean, follow_mean = _mean(before), _mean(after)
    satisfaction = paired["satisfaction"].dropna()
    n_evaluable = int(evaluable.sum())
    responders = int(responder.sum())

    events = cohort.events[cohort.events["patient_id"].isin(p.index)]
    patients_with_ae = int(events["patient_id"].nunique())
    by_category = {}
    for category, rows in events.groupby("category", sort=True):
        by_category[category] = {"patients": int(rows["patient_id"].nunique()), "events": len(rows)}

    explanted = p["explant_date"].notna().to_numpy()
    end = p["explant_date"].where(p["explant_date"].notna(), p["last_visit"])
    end = pd.to_datetime(end).fillna(pd.to_datetime(p["implant_date"]))
    times = np.maximum(_days(end, p["implant_date"]).to_numpy() / DAYS_PER_YEAR, 0.0)
    explant_free, at_risk = _explant_free(times, explanted)

    return {
        "n_patients": n,
        "male": int((p["sex"] == "M").sum()),
        "withdrawn": int((p["consent_status"] == "withdrawn").sum()),
        "age_mean": _mean(ages),
        "age_sd": _sd(ages),
        "excluded_no_baseline": int((~has_base).sum()),
        "excluded_no_followup": int((has_base & ~has_follow).sum()),
        "excluded_zero_baseline": int((~evaluable).sum()),
        "n_paired": len(paired),
        "n_responder_evaluable": n_evaluable,
        "followup_years_median": float(np.median(years)) if len(years) else None,
        "followup_years_min": float(np.min(years)) if len(years) else None,
        "followup_years_max": float(np.max(years)) if len(years) else None,
        "nrs_baseline_mean": base_mean,
        "nrs_baseline_sd": _sd(before),
        "nrs_followup_mean": follow_mean,
        "nrs_followup_sd": _sd(after),
        "nrs_reduction_pct_mean": _mean(reduction),
        "nrs_reduction_of_means_pct": (base_mean - follow_mean) / base_mean * 100
        if base_mean else None,
        "responders": responders,
        "responder_rate": responders / n_evaluable if n_evaluable else None,
        "responder_rate_ci95": wilson_interval(responders, n_evaluable),
        "wilcoxon_p": wilcoxon_p(before, after),
        "satisfied": int((satisfaction >= SATISFIED_MIN).sum()),
        "n_satisfaction": len(satisfaction),
        "patients_with_ae": patients_with_ae,
        "ae_rate": patients_with_ae / n if n else None,
        "ae_by_category": by_category,
        "explants": int(explanted.sum()),
        "explant_free": explant_free,
        "explant_free_at_risk": at_risk,
    }


def _group_values(cohort: Cohort, group_by: str) -> pd.Series:
    return cohort.patients[group_by]


def _subset(cohort: Cohort, mask) -> Cohort:
    patients = cohort.patients[mask]
    return Cohort(patients=patients, events=cohort.events[cohort.events["patient_id"].isin(patients.index)])


def _groups(cohort: Cohort, query: OutcomeQuery, group_by: str) -> list[dict]:
    values = _group_values(cohort, group_by)
    groups = []
    for value in sorted(values.dropna().unique()):
        summary = _summarise(_subset(cohort, values == value), query.threshold)
        groups.append({"group": str(value), **summary})
    return groups


def _prepare(*, patients, user, query, params) -> tuple[OutcomeQuery, Cohort]:
    if query is not None and params:
        raise ValueError("Give either `query` or separate parameters, not both.")
    query = query or outcome_query_clean(**params)
    base = _base_patients(patients, user)
    _check_sites(query, user)
    return query, _load(query, base)


def outcome_summary(*, user=None, patients: QuerySet | None = None, query: OutcomeQuery | None = None,
                    **params) -> dict:
    """The outcome figures of a cohort (keys: SUMMARY_KEYS).

    Scoped by the access rule when `user` is given; otherwise `patients` must be
    an already scoped queryset (commands use the whole registry on purpose).
    Parameters: therapy, etiology, diagnosis, site (codes or lists of codes),
    implant_year_from/to, pain_site (+ recall), timepoint ('last' or m<N>),
    threshold (%, default 50), group_by (therapy|etiology|site).
    With group_by the result is {"group_by", "overall", "groups": [...]} where
    each group carries "group" plus the summary keys.
    Instead of separate parameters, a cleaned `query` (outcome_query_clean) may be given.
    Refuses bad parameters with OutcomeQueryError (parameter and value named).
    """
    query, cohort = _prepare(patients=patients, user=user, query=query, params=params)
    overall = _summarise(cohort, query.threshold)
    if not query.group_by:
        return overall
    return {"group_by": query.group_by, "overall": overall,
            "groups": _groups(cohort, query, query.group_by)}


def outcome_report(*, user=None, patients: QuerySet | None = None, query: OutcomeQuery | None = None,
                   max_pairs: int = 400, **params) -> dict:
    """What the dashboard shows: the summary, responders by therapy, the
    per-patient baseline/follow-up pairs (at most `max_pairs`, an evenly spread
    sample for large cohorts), the Kaplan-Meier curve and the paragraph."""
    query, cohort = _prepare(patients=patients, user=user, query=query, params=params)
    summary = _summarise(cohort, query.threshold)
    p = cohort.patients
    paired = p[p["baseline"].notna() & p["followup"].notna()].sort_index()
    if len(paired) > max_pairs:
        paired = paired.iloc[np.linspace(0, len(paired) - 1, max_pairs).astype(int)]
    explanted = p["explant_date"].notna().to_numpy()
    end = pd.to_datetime(p["explant_date"].where(p["explant_date"].notna(), p["last_visit"]))
    end = end.fillna(pd.to_datetime(p["implant_date"]))
    times = np.maximum(_days(end, p["implant_date"]).to_numpy() / DAYS_PER_YEAR, 0.0)
    km_x, km_y = km_curve(times, explanted)
    report = {
        "query": query.as_dict(),
        "summary": summary,
        "by_therapy": _groups(cohort, query, "therapy"),
        "pairs": [(float(b), float(f)) for b, f in zip(paired["baseline"], paired["followup"], strict=True)],
        "pairs_shown": len(paired),
        "km": {"years": km_x, "survival": km_y},
        "paragraph": outcome_paragraph(summary, timepoint=query.timepoint, threshold=query.threshold),
    }
    if query.group_by:
        report["groups"] = _groups(cohort, query, query.group_by)
    return report


# --- text ---------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.0f} %"


def _p_text(p: float | None) -> str:
    if p is None:
        return "p not computable"
    if p < 0.001:
        return "p < 0.001"
    if p < 0.01:
        return "p < 0.01"
    return f"p = {p:.2f}"


def _ms(mean, sd) -> str:
    if mean is None:
        return "n/a"
    return f"{mean:.1f} ± {sd:.1f}" if sd is not None else f"{mean:.1f}"


def _number(n: int) -> str:
    words = ["no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    return words[n] if 0 <= n < len(words) else str(n)


def outcome_paragraph(summary: dict, *, timepoint: str = LAST, threshold: float = 50) -> str:
    """A results paragraph in the style of the first seed paper, from a summary."""
    s = summary
    n = s["n_patients"]
    if n == 0:
        return "No patients match this cohort."
    parts = []
    age = ""
    if s["age_mean"] is not None:
        sd = f" ± {s['age_sd']:.0f}" if s["age_sd"] is not None else ""
        age = f", {s['age_mean']:.0f}{sd} years"
    parts.append(f"{n} patient{'s' if n != 1 else ''} (M = {s['male']}{age}) "
                 f"{'were' if n != 1 else 'was'} included.")
    excluded = []
    if s["excluded_no_baseline"]:
        excluded.append(f"{s['excluded_no_baseline']} without a baseline NRS")
    if s["excluded_no_followup"]:
        excluded.append(f"{s['excluded_no_followup']} without a follow-up NRS")
    if excluded:
        parts.append(f"{n - s['n_paired']} were excluded from the NRS analysis ({', '.join(excluded)}).")
    if s["excluded_zero_baseline"]:
        parts.append(f"{s['excluded_zero_baseline']} with a baseline NRS of 0 could not be classified "
                     "as responder or not.")
    if s["n_paired"]:
        if timepoint == LAST:
            span = f"{s['followup_years_min']:.0f}–{s['followup_years_max']:.0f} years"
            where = f"At last follow-up ({span})"
        else:
            where = f"At the {timepoint_label(timepoint)} follow-up"
        k, m = s["responders"], s["n_responder_evaluable"]
        ci = s["responder_rate_ci95"]
        ci_text = f"; 95 % CI {ci[0] * 100:.0f}–{ci[1] * 100:.0f} %" if ci else ""
        threshold_text = f"{threshold:g}"
        # The reduction of the means is undefined when every paired baseline is 0.
        reduction = s["nrs_reduction_of_means_pct"]
        change = (f"an average decrease in NRS of {reduction:.0f} %" if reduction is not None
                  else "no computable average decrease in NRS")
        parts.append(
            f"{where}, {_pct(s['responder_rate'])} ({k}/{m}) of patients were responders "
            f"(≥ {threshold_text} % NRS reduction{ci_text}) with {change} "
            f"({_ms(s['nrs_baseline_mean'], s['nrs_baseline_sd'])} "
            f"to {_ms(s['nrs_followup_mean'], s['nrs_followup_sd'])}) ({_p_text(s['wilcoxon_p'])}, "
            "Wilcoxon signed-rank)."
        )
    if s["n_satisfaction"]:
        if s["satisfied"] == s["n_satisfaction"]:
            parts.append(f"All patients with a rating ({s['satisfied']}/{s['n_satisfaction']}) were "
                         "satisfied with their implant.")
        else:
            parts.append(f"{_pct(s['satisfied'] / s['n_satisfaction'])} ({s['satisfied']}/"
                         f"{s['n_satisfaction']}) of patients were satisfied with their implant.")
    ae = s["patients_with_ae"]
    if ae == 0:
        parts.append("No complications were recorded.")
    else:
        labels = dict(AeCategory.choices)
        kinds = ", ".join(
            labels.get(code, code).lower() + (f" ({row['patients']})" if ae > 1 else "")
            for code, row in s["ae_by_category"].items()
        )
        subject = "A complication was present in one patient" if ae == 1 else \
            f"Complications were present in {_number(ae)} patients"
        parts.append(f"{subject} ({_pct(s['ae_rate'])}, {ae}/{n}): {kinds}.")
    if s["explants"]:
        parts.append(f"{s['explants']} implant{'s were' if s['explants'] != 1 else ' was'} explanted.")
    return " ".join(parts)


TABLE_ROWS = [
    ("n_patients", "Patients", "{:d}"),
    ("male", "Men", "{:d}"),
    ("withdrawn", "Withdrawn", "{:d}"),
    ("age_mean", "Age at implant, mean", "{:.1f}"),
    ("age_sd", "Age at implant, SD", "{:.1f}"),
    ("excluded_no_baseline", "Excluded: no baseline score", "{:d}"),
    ("excluded_no_followup", "Excluded: no follow-up score", "{:d}"),
    ("excluded_zero_baseline", "Not classifiable: baseline 0", "{:d}"),
    ("n_paired", "Paired baseline/follow-up", "{:d}"),
    ("followup_years_median", "Follow-up years, median", "{:.1f}"),
    ("followup_years_min", "Follow-up years, min", "{:.1f}"),
    ("followup_years_max", "Follow-up years, max", "{:.1f}"),
    ("nrs_baseline_mean", "NRS baseline, mean", "{:.2f}"),
    ("nrs_baseline_sd", "NRS baseline, SD", "{:.2f}"),
    ("nrs_followup_mean", "NRS follow-up, mean", "{:.2f}"),
    ("nrs_followup_sd", "NRS follow-up, SD", "{:.2f}"),
    ("nrs_reduction_pct_mean", "NRS reduction %, mean of patients", "{:.1f}"),
    ("nrs_reduction_of_means_pct", "NRS reduction %, of the means", "{:.1f}"),
    ("responders", "Responders", "{:d}"),
    ("n_responder_evaluable", "Responder denominator", "{:d}"),
    ("responder_rate", "Responder rate", "{:.1%}"),
    ("wilcoxon_p", "Wilcoxon p", "{:.2g}"),
    ("satisfied", "Satisfied (4-5)", "{:d}"),
    ("n_satisfaction", "Satisfaction rated", "{:d}"),
    ("patients_with_ae", "Patients with an adverse event", "{:d}"),
    ("ae_rate", "Adverse event rate", "{:.1%}"),
    ("explants", "Explants", "{:d}"),
]


def outcome_table(summary: dict) -> list[tuple[str, str]]:
    """The summary as (label, formatted value) rows, for the dashboard and the command."""
    rows = []
    labels = dict(AeCategory.choices)
    for key, label, fmt in TABLE_ROWS:
        value = summary[key]
        rows.append((label, "-" if value is None else fmt.format(value)))
        if key == "responder_rate" and summary["responder_rate_ci95"]:
            low, high = summary["responder_rate_ci95"]
            rows.append(("Responder rate, 95 % CI (Wilson)", f"{low:.1%} - {high:.1%}"))
    for years, value in summary["explant_free"].items():
        at_risk = summary["explant_free_at_risk"][years]
        shown = "-" if value is None else f"{value:.1%}"
        rows.append((f"Explant-free at {years[:-1]} year(s), Kaplan-Meier", f"{shown} (at risk {at_risk})"))
    for code, row in summary["ae_by_category"].items():
        rows.append((f"AE: {labels.get(code, code)}",
                     f"{row['patients']} patient(s), {row['events']} event(s)"))
    return rows


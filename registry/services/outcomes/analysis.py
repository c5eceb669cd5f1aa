"""The analysis: a cohort's rows loaded in a fixed handful of queries, and its
statistics (see the package docstring for every definition)."""

from __future__ import annotations

import datetime
import io
import itertools
import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from django.core.exceptions import EmptyResultSet
from django.db import connections
from django.db.models import Case, IntegerField, Max, Q, QuerySet, Value, When
from scipy import stats

from registry.models import (
    BASELINE,
    TRIAL_END,
    UNSCHEDULED,
    AdverseEvent,
    Implant,
    PainScore,
    Patient,
    Site,
    Visit,
    VisitStatus,
)

from .. import access, deid
from ..datasets import pg
from ..missing import NO_REASON
from . import frames
from .figures import EXCLUSION_REASONS, KM_YEARS, SUMMARY_KEYS  # noqa: F401  (re-exported)
from .query import LAST, OutcomeQuery, OutcomeQueryError, outcome_query_clean
from .text import outcome_paragraph

DAYS_PER_YEAR = 365.25
SATISFIED_MIN = 4


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


def _frame(queryset: QuerySet, columns: dict[str, str], *, arrays: bool = False) -> pd.DataFrame:
    """A frame from a `values_list` queryset (columns in the same order), built column by
    column with known types. The rows are fetched with a plain cursor: Django's per-row
    converters and pandas' type inference cost more than the query over a million rows.
    FLOAT columns take NULL as NaN, DATE columns as NaT; INT columns must not be NULL."""
    try:
        sql, params = queryset.query.get_compiler(using=queryset.db).as_sql()
    except EmptyResultSet:  # e.g. a user who may see no site
        rows = []
    else:
        if pg.available(queryset.db):
            return _copied_frame(pg.Sql(sql, list(params)), queryset.db, columns, arrays)
        with connections[queryset.db].cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
    return _frame_of_rows(rows, columns)


def _frame_of_rows(rows: list, columns: dict[str, str]) -> pd.DataFrame:
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


class _Chunks(io.RawIOBase):
    """Chunks of bytes read as one file by pandas' parser, each let go once read."""

    def __init__(self, chunks):
        self._chunks, self._rest = chunks, memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._rest:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._rest = memoryview(chunk)
        n = min(len(buffer), len(self._rest))
        buffer[:n] = self._rest[:n]
        self._rest = self._rest[n:]
        return n


# Rows per text block of `_copied_frame`: few enough blocks that fetching them costs
# nothing, small enough that one block is a couple of MB.
BLOCK_ROWS = 50_000


def _csv_cell(kind: str, ref: str) -> str:
    if kind == TEXT:
        return f"""COALESCE('"' || replace({ref}::text, '"', '""') || '"', '')"""
    return f"COALESCE({ref}::text, '')"  # numbers; dates as ISO text (DateStyle ISO)


def _copied_frame(sql, db: str, columns: dict[str, str], arrays: bool = False) -> pd.DataFrame:
    """`_frame` on PostgreSQL: the rows written by the database as CSV text in blocks of
    `BLOCK_ROWS` lines, parsed by pandas' C parser into typed columns. No Python object per
    row or value (a million visits were 738 MB as tuples, issue 21) and a handful of values
    to fetch instead of a million rows (COPY hands psycopg one message per row: 2 s more
    for the attrition's million visits). `arrays`: rows of numbers and dates only come as
    their values, no text, in one message (`frames`): faster for the PROM chunks and the
    attrition's keys; not for the candidates, where the whole registry's rows in one
    message took more memory than parsing blocks (registry_bench: summary peak 285 -> 305
    MiB, no faster)."""
    if arrays and frames.numeric(columns):
        numbers = frames.frame(sql, db, columns)
        return _frame_of_rows([], columns) if numbers is None else numbers
    names = [f"c{i}" for i in range(len(columns))]
    line = " || ',' || ".join(_csv_cell(kind, f"t.{n}") for kind, n in zip(columns.values(), names,
                                                                        strict=True))
    blocks = pg.Sql(f"SELECT string_agg(u.line, E'\\n') FROM (SELECT {line} AS line, "
                    f"(row_number() OVER ()) / {BLOCK_ROWS} AS block FROM (").extend(sql)
    blocks.add(f") AS t({', '.join(names)})) AS u GROUP BY u.block")
    kinds = {INT: "int64", FLOAT: "float64", DATE: object, TEXT: object}
    # The blocks through COPY (binary: one message per block, the text verbatim), not a
    # result set: libpq would hold every block until the last is parsed (15 MB more at the
    # peak of a summary of 100,000 patients).
    statement = f"COPY ({pg.bound(blocks, db)}) TO STDOUT (FORMAT binary)"
    with connections[db].cursor() as cursor, pg.no_jit(cursor), cursor.cursor.copy(statement) as copy:
        copy.set_types(["text"])
        rows = copy.rows()
        first = next(rows, None)
        if first is None:
            return _frame_of_rows([], columns)

        def chunks():
            # One block at a time as bytes, each let go once parsed: the joined text of
            # every block (and its str and bytes copies) was most of a summary's peak.
            for (block,) in itertools.chain([first], rows):
                yield block.encode()
                yield b"\n"

        frame = pd.read_csv(io.BufferedReader(_Chunks(chunks())), header=None, names=list(columns),
                            keep_default_na=False, na_values=[""],
                            dtype={name: kinds[kind] for name, kind in columns.items()})
    for name, kind in columns.items():
        if kind == DATE:
            frame[name] = pd.to_datetime(frame[name], format="%Y-%m-%d")
        elif kind == TEXT:  # NULL as None, as the cursor path gives it
            frame[name] = frame[name].astype(object).where(frame[name].notna(), None)
    return frame


def as_dates(values):
    """`values` as datetime64: unchanged when they are (pandas' to_datetime would still box
    a tenth of them to decide on a cache: 0.27 s in the 13 calls of a summary of 20,000
    patients), else
    converted."""
    if isinstance(values, pd.Series) and pd.api.types.is_datetime64_any_dtype(values):
        return values
    return pd.to_datetime(values)


def _days(later: pd.Series, earlier: pd.Series) -> pd.Series:
    return (as_dates(later) - as_dates(earlier)).dt.days.astype(float)


# `_candidates` packs a visit into one bigint whose order is the pick's: day (signed) and
# scheduled-or-not in the high bits, then the id (below 2**39), the NRS (0-10, constraint
# visit_nrs_0_10) and the satisfaction (1-5, constraint visit_satisfaction_1_5; 7 = none).
ID_BITS, SCORE_BITS = 39, 7


def _candidates(loaded: QuerySet, columns: dict[str, str]) -> tuple[pd.DataFrame, pd.Series]:
    """PostgreSQL: (the scored visits `_load` can pick, the last contact per patient) in one
    pass over `loaded`: one hash aggregate per patient and implant, no sort of a million
    visits, no array per visit. A group's picks: the first baseline entered (lowest id);
    the latest follow-up by day, a scheduled timepoint before an unscheduled visit, then
    the one entered last (the greatest [day, scheduled, id], the id deciding: unique).
    `_load` keeps, per patient, the latest follow-up after the index implant's date among
    those of that implant (or of none); the date rule only drops earlier visits, so a
    group's latest is its pick whenever it has one. The last contact: the latest day of
    any visit. (A baseline's date is not read: the baseline is picked by entry.)"""
    try:
        inner = pg.subquery(loaded.values_list("id", "patient_id", "implant_id", "date_done", "nrs",
                                               "satisfaction", "timepoint").order_by())
    except EmptyResultSet:
        return _frame_of_rows([], columns), pd.Series([], dtype="datetime64[ns]")
    low = f"* {2 ** SCORE_BITS} + v.nrs * 8 + COALESCE(v.satisfaction, 7)"
    high = (f"(((v.date_done - DATE '1970-01-01')::bigint * 2 + CASE WHEN v.timepoint = %s THEN 0 "
            f"ELSE 1 END) * {2 ** ID_BITS} + v.id)")
    grouped = pg.Sql(
        "SELECT v.patient_id, v.implant_id, max(v.date_done) AS last, "
        f"min(v.id::bigint {low}) FILTER (WHERE v.nrs IS NOT NULL AND v.timepoint = %s) AS first, "
        f"max({high} {low}) FILTER (WHERE v.nrs IS NOT NULL AND v.timepoint <> %s) AS latest FROM (",
        [BASELINE, UNSCHEDULED, BASELINE]).extend(inner)
    grouped.add(") AS v(id, patient_id, implant_id, date_done, nrs, satisfaction, timepoint) GROUP BY 1, 2")
    key, visit = "x.key", f"(x.key >> {SCORE_BITS})"
    picked = pg.Sql(
        f"SELECT {visit} & {2 ** ID_BITS - 1}, g.patient_id, g.implant_id, "
        f"CASE WHEN NOT x.base THEN DATE '1970-01-01' + ({visit} >> {ID_BITS + 1})::int END, "
        f"({key} >> 3) & 15, NULLIF({key} & 7, 7), "
        f"CASE WHEN x.base THEN 0 WHEN (({visit} >> {ID_BITS}) & 1) = 1 THEN 1 ELSE 2 END, g.last FROM (")
    picked.extend(grouped).add(") AS g CROSS JOIN LATERAL (VALUES (true, g.first), (false, g.latest)) "
                               "AS x(base, key) WHERE x.key IS NOT NULL OR NOT x.base")
    # visit_id is NULL in a group without a follow-up score (it still has a last contact).
    rows = _copied_frame(picked, loaded.db, {**columns, "visit_id": FLOAT, "last": DATE})
    contacts = rows.groupby("patient_id")["last"].max()
    visits = rows[rows["visit_id"].notna()].drop(columns="last").reset_index(drop=True)
    return visits.astype({"visit_id": np.int64}), contacts


@dataclass
class Cohort:
    """One row per cohort patient, plus the events, ready for `_summarise`."""

    patients: pd.DataFrame  # index patient_id
    events: pd.DataFrame  # patient_id, category


def follow_up_rows(patients: pd.DataFrame, follow: pd.DataFrame, timepoint: str) -> pd.DataFrame:
    """The follow-up visits that count for each cohort patient (`follow`: non-baseline
    visit rows), in order, so that the last row per patient is the one reported: the
    visits of the patient's implant (for the last follow-up, also visits on no implant
    after its date); latest by date, on the same day a scheduled timepoint before an
    unscheduled visit, then the one entered last. NRS and PROM outcomes both use it."""
    follow = follow.merge(patients[["implant_id", "implant_date"]].reset_index(), on="patient_id")
    linked = follow["visit_implant_id"] == follow["implant_id"]
    if timepoint == LAST:
        keep = (linked | follow["visit_implant_id"].isna()) & (follow["date_done"] > follow["implant_date"])
    else:
        keep = linked
    follow = follow[keep].copy()
    follow["scheduled"] = follow["kind"] == 1
    return follow.sort_values(["patient_id", "date_done", "scheduled", "visit_id"])


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
    visit_columns = {"visit_id": INT, "patient_id": INT, "visit_implant_id": FLOAT, "date_done": DATE,
                     "score": FLOAT, "satisfaction": FLOAT, "kind": INT}
    fields = ("id", "patient_id", "implant_id", "date_done", "nrs", "satisfaction", "kind")
    # PostgreSQL, last follow-up on NRS (the whole-registry summary: a million visits):
    # only the candidates are loaded, and the last contact is counted by the database.
    reduced = query.timepoint == LAST and query.pain_site is None and pg.available(loaded.db)
    if reduced:
        visits, contacts = _candidates(loaded, visit_columns)
    else:
        visits = _frame(loaded.annotate(kind=kind).values_list(*fields).order_by(), visit_columns)
    if reduced:
        pass
    elif query.timepoint == LAST:
        contacts = visits.groupby("patient_id")["date_done"].max()
    else:
        contacts = pd.Series(dict(
            completed.values("patient_id").annotate(last=Max("date_done"))
            .values_list("patient_id", "last").order_by()), dtype="object")
    # reindex: assigning a Series to an empty frame would adopt the Series' rows.
    patients["last_visit"] = as_dates(contacts).reindex(patients.index)
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
    # The first baseline entered (visit id order) when a patient has several.
    baseline = visits[is_baseline].sort_values("visit_id").drop_duplicates("patient_id")
    patients["baseline"] = baseline.set_index("patient_id")["score"].reindex(patients.index)

    follow = follow_up_rows(patients, visits[~is_baseline], query.timepoint)
    last = follow.drop_duplicates("patient_id", keep="last").set_index("patient_id")
    last = last.reindex(patients.index)
    patients["followup"] = last["score"]
    patients["followup_date"] = last["date_done"]
    patients["satisfaction"] = last["satisfaction"]

    _missing_reasons(patients, query, scope)

    events = _frame(
        AdverseEvent.objects.filter(**_of_patients(scope))
        .values_list("patient_id", "implant_id", "category").order_by(),
        {"patient_id": INT, "event_implant_id": FLOAT, "category": TEXT},
    )
    events = events.merge(patients[["implant_id"]].reset_index(), on="patient_id")
    events = events[events["event_implant_id"].isna() | (events["event_implant_id"] == events["implant_id"])]
    return Cohort(patients=patients, events=events[["patient_id", "category"]])



def _missing_reasons(patients: pd.DataFrame, query: OutcomeQuery, scope: QuerySet) -> None:
    """`baseline_reason` and `followup_reason` of each patient: why the score is missing,
    from the visits that carry a reason (services.missing): the NRS's own reason on a
    completed visit (primary NRS only: a pain-site score has none of its own), else the
    reason the visit was not done. The follow-up's is that of the timepoint asked for,
    or, for 'last', of the latest follow-up of the index implant with a reason. Without
    one: NO_REASON. One query, over the few visits that carry a reason."""
    with_reason = Q(visit_missing__gt="")
    if query.pain_site is None:
        with_reason |= Q(nrs_missing__gt="", status=VisitStatus.COMPLETED)
    rows = _frame(
        Visit.objects.filter(with_reason, **_of_patients(scope))
        .exclude(timepoint__in=[TRIAL_END, UNSCHEDULED])
        .values_list("patient_id", "implant_id", "timepoint", "target_date", "nrs_missing",
                     "visit_missing").order_by(),
        {"patient_id": INT, "visit_implant_id": FLOAT, "timepoint": TEXT, "target_date": DATE,
         "nrs_missing": TEXT, "visit_missing": TEXT},
    )
    if query.pain_site is None:
        rows["reason"] = rows["nrs_missing"].where(rows["nrs_missing"].fillna("") != "",
                                                   rows["visit_missing"])
    else:
        rows["reason"] = rows["visit_missing"]
    base = rows[rows["timepoint"] == BASELINE].drop_duplicates("patient_id")
    patients["baseline_reason"] = (base.set_index("patient_id")["reason"].reindex(patients.index)
                                   .fillna(NO_REASON))
    follow = rows[rows["timepoint"] != BASELINE].merge(
        patients[["implant_id"]].reset_index(), on="patient_id")
    linked = follow["visit_implant_id"] == follow["implant_id"]
    if query.timepoint == LAST:
        follow = follow[linked | follow["visit_implant_id"].isna()]
    else:
        follow = follow[linked & (follow["timepoint"] == query.timepoint)]
    follow = follow.sort_values(["patient_id", "target_date"]).drop_duplicates("patient_id", keep="last")
    patients["followup_reason"] = (follow.set_index("patient_id")["reason"].reindex(patients.index)
                                   .fillna(NO_REASON))


def _by_reason(reasons: pd.Series) -> dict[str, int]:
    counts = reasons.value_counts()
    return {code: int(counts.get(code, 0)) for code in EXCLUSION_REASONS}


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
    ages = (as_dates(p["implant_date"]).dt.year - p["birth_year"]).to_numpy(dtype=float)
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
    end = as_dates(end).fillna(as_dates(p["implant_date"]))
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
        # The excluded above, by why their score is missing (services.missing).
        "excluded_by_reason": {"no_baseline": _by_reason(p.loc[~has_base, "baseline_reason"]),
                               "no_followup": _by_reason(p.loc[has_base & ~has_follow,
                                                               "followup_reason"])},
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
        "suppressed": False,
    }


def _suppressed() -> dict:
    """A summary of a cell too small to show (services.deid.min_cell): every figure null,
    `suppressed` true, so the reader is told rather than shown a gap."""
    out = {key: None for key in SUMMARY_KEYS}
    out.update(ae_by_category={}, explant_free={f"{y}y": None for y in KM_YEARS},
               explant_free_at_risk={f"{y}y": None for y in KM_YEARS}, suppressed=True)
    return out


def _cell(cohort: Cohort, threshold: float, min_cell: int) -> dict:
    """The summary of a cohort, or `_suppressed()` if it has fewer than `min_cell` patients."""
    if 0 < len(cohort.patients) < min_cell:
        return _suppressed()
    return _summarise(cohort, threshold)


def _group_values(cohort: Cohort, group_by: str) -> pd.Series:
    return cohort.patients[group_by]


def _subset(cohort: Cohort, mask) -> Cohort:
    patients = cohort.patients[mask]
    return Cohort(patients=patients, events=cohort.events[cohort.events["patient_id"].isin(patients.index)])


def _groups(cohort: Cohort, query: OutcomeQuery, group_by: str, min_cell: int = 1) -> list[dict]:
    values = _group_values(cohort, group_by)
    groups = []
    for value in sorted(values.dropna().unique()):
        summary = _cell(_subset(cohort, values == value), query.threshold, min_cell)
        groups.append({"group": str(value), **summary})
    return groups


@dataclass
class Prepared:
    """One request's cohort, read once (`outcome_cohort`) and shared by the analyses of
    that request (the dashboard: summary, PROM outcomes, survival, attrition); never kept
    across requests, so it cannot go stale."""

    query: OutcomeQuery
    cohort: Cohort
    scope: QuerySet  # the visible patients matching the patient-level filters
    min_cell: int
    user: object = None
    # Per-request results one analysis computes for another (survival's follow-up ends).
    shared: dict = field(default_factory=dict)


def outcome_cohort(*, user=None, patients: QuerySet | None = None, query: OutcomeQuery | None = None,
                   **params) -> Prepared:
    """The cohort of `outcome_summary` (same parameters, scoping and refusals), loaded once
    for several analyses of one request: pass it as `prepared=` to `outcome_summary`,
    `outcome_report`, `explant_incidence`, `ipg_longevity`, `attrition` and
    `proms.outcomes.prom_outcomes`."""
    if query is not None and params:
        raise ValueError("Give either `query` or separate parameters, not both.")
    query = query or outcome_query_clean(**params)
    min_cell = 1
    if user is not None:
        # Investigators: no filter on the real implant year, no cell under the limit.
        refused = deid.refused_outcome_filters(user, query.as_dict())
        for param, message in refused.items():
            raise OutcomeQueryError(param, getattr(query, param), message)
        min_cell = deid.min_cell(user)
    base = _base_patients(patients, user)
    _check_sites(query, user)
    return Prepared(query=query, cohort=_load(query, base), scope=_patient_scope(base, query),
                    min_cell=min_cell, user=user)


def _prepare(*, patients, user, query, params, prepared: Prepared | None = None) -> Prepared:
    if prepared is None:
        return outcome_cohort(user=user, patients=patients, query=query, **params)
    if query is not None or params or patients is not None or user is not None:
        raise ValueError("Give either `prepared` or the cohort's parameters, not both.")
    return prepared


def outcome_summary(*, user=None, patients: QuerySet | None = None, query: OutcomeQuery | None = None,
                    prepared: Prepared | None = None, **params) -> dict:
    """The outcome figures of a cohort (keys: SUMMARY_KEYS).

    Scoped by the access rule when `user` is given; otherwise `patients` must be
    an already scoped queryset (commands use the whole registry on purpose).
    Parameters: therapy, etiology, diagnosis, site (codes or lists of codes),
    implant_year_from/to, pain_site (+ recall), timepoint ('last' or m<N>),
    threshold (%, default 50), group_by (therapy|etiology|site).
    With group_by the result is {"group_by", "overall", "groups": [...]} where
    each group carries "group" plus the summary keys.
    Instead of separate parameters, a cleaned `query` (outcome_query_clean) may be given,
    or instead of all of them the `prepared` cohort of `outcome_cohort`.
    Refuses bad parameters with OutcomeQueryError (parameter and value named).
    For a `user` who does not see real dates (services.deid): implant_year_from/to are
    refused (OutcomeQueryError), and the overall cohort or a group of fewer than
    `deid.min_cell(user)` patients comes back suppressed (`suppressed` true, figures null).
    """
    prepared = _prepare(patients=patients, user=user, query=query, params=params, prepared=prepared)
    query, cohort, min_cell = prepared.query, prepared.cohort, prepared.min_cell
    overall = _cell(cohort, query.threshold, min_cell)
    if not query.group_by:
        return overall
    return {"group_by": query.group_by, "overall": overall,
            "groups": _groups(cohort, query, query.group_by, min_cell)}


def outcome_report(*, user=None, patients: QuerySet | None = None, query: OutcomeQuery | None = None,
                   max_pairs: int = 400, prepared: Prepared | None = None, **params) -> dict:
    """What the dashboard shows: the summary, responders by therapy, the
    per-patient baseline/follow-up pairs (at most `max_pairs`, an evenly spread
    sample for large cohorts), the Kaplan-Meier curve and the paragraph (`prepared`: as
    for `outcome_summary`)."""
    prepared = _prepare(patients=patients, user=user, query=query, params=params, prepared=prepared)
    query, cohort, min_cell = prepared.query, prepared.cohort, prepared.min_cell
    summary = _cell(cohort, query.threshold, min_cell)
    p = cohort.patients
    if summary["suppressed"]:
        p = p.iloc[0:0]  # no per-patient pairs or survival curve of a suppressed cohort
    paired = p[p["baseline"].notna() & p["followup"].notna()].sort_index()
    if len(paired) > max_pairs:
        paired = paired.iloc[np.linspace(0, len(paired) - 1, max_pairs).astype(int)]
    explanted = p["explant_date"].notna().to_numpy()
    end = as_dates(p["explant_date"].where(p["explant_date"].notna(), p["last_visit"]))
    end = end.fillna(as_dates(p["implant_date"]))
    times = np.maximum(_days(end, p["implant_date"]).to_numpy() / DAYS_PER_YEAR, 0.0)
    km_x, km_y = km_curve(times, explanted)
    report = {
        "query": query.as_dict(),
        "summary": summary,
        "by_therapy": _groups(cohort, query, "therapy", min_cell),
        "pairs": [(float(b), float(f)) for b, f in zip(paired["baseline"], paired["followup"], strict=True)],
        "pairs_shown": len(paired),
        "km": {"years": km_x, "survival": km_y},
        "paragraph": outcome_paragraph(summary, timepoint=query.timepoint, threshold=query.threshold),
    }
    if query.group_by:
        report["groups"] = _groups(cohort, query, query.group_by, min_cell)
    return report

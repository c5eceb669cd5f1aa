"""Time-to-event analyses of a cohort: cumulative incidence of explant per cause and
IPG longevity per model.

Cumulative incidence of explant (`explant_incidence`): per patient the index implant
(as in the outcome summary, same filters), time from its implant date to
- the explant: an event of its coded cause (`Implant.explant_reason_code`; loss of
  efficacy and pain resolved are events like the others, never censorings);
- death before an explant: a competing event (the patient can no longer be
  explanted), so the curves are Aalen-Johansen cumulative incidence functions, not
  1 - Kaplan-Meier (which would overstate the incidence when patients die);
- otherwise censored: at the date of the withdrawal, transfer out of the registry or
  completed follow-up in effect today (the last day the registry knew of the patient);
  for a patient lost to follow-up or still active at the last completed visit (at
  least the implant date). An explant or death after the end of follow-up is not
  counted (censored at the end). A patient whose consent was withdrawn (without a
  disposition row) ends at the withdrawal date.

IPG longevity (`ipg_longevity`): per IPG component of the cohort's index implants
(a replaced IPG is a new component from its own implanted date), Kaplan-Meier of the
time from its start to its removal for battery depletion (the event); removal for
another reason is a censoring at the removal, an IPG still in place is censored at
the patient's end of follow-up as above (death included: a dead patient's IPG did not
deplete). Grouped per manufacturer and model.

Estimators, in NumPy (checked against lifelines and a hand computation in
tests/services/test_survival.py):
- Kaplan-Meier S(t) = prod_{t_j <= t} (1 - d_j / n_j);
- Aalen-Johansen CIF_k(t) = sum_{t_j <= t} S(t_j-) d_kj / n_j with S the all-cause
  (explant or death) Kaplan-Meier survival;
n_j = at risk at t_j (time >= t_j: a censoring at t_j is still at risk at t_j).
Times in years (365.25 days). Values at 1, 2 and 5 years are None beyond the longest
follow-up. A cohort of fewer than `deid.min_cell(user)` patients (an IPG model with
fewer components) is suppressed for an investigator, as for the outcome summary.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from django.db.models import QuerySet

from registry.models import DeviceComponent, Disposition, Implant
from registry.models.choices import ComponentKind, DispositionStatus, RemovalReason

from .analysis import (
    DATE,
    DAYS_PER_YEAR,
    INT,
    KM_YEARS,
    TEXT,
    Prepared,
    _frame,
    _of_patients,
    _prepare,
    as_dates,
)
from .query import OutcomeQuery

DEATH = "death"
CENSORED = ""

INCIDENCE_CENSORING = (
    "Time from implant to explant, per coded explant cause (loss of efficacy is an event); "
    "death before an explant is a competing event (Aalen-Johansen cumulative incidence); "
    "withdrawn, transferred-out and completed patients are censored at that date, lost and "
    "active patients at their last completed visit; events after the end of follow-up are "
    "not counted.")
LONGEVITY_CENSORING = (
    "Kaplan-Meier time from IPG implant to removal for battery depletion (the event); "
    "removal for another reason is censored at the removal; an IPG in place is censored at "
    "the end of the patient's follow-up (death, withdrawal, transfer out, completion: their "
    "date; lost or active: the last completed visit).")


# --- the estimators -----------------------------------------------------------------


def _at_risk(times: np.ndarray, at: np.ndarray) -> np.ndarray:
    """n_j: subjects with time >= t_j (exact counts, by binary search)."""
    return (len(times) - np.searchsorted(np.sort(times), at, side="left")).astype(float)


def _counts(times: np.ndarray, at: np.ndarray) -> np.ndarray:
    """How many of `times` equal each of `at` (sorted, unique)."""
    values, counts = np.unique(times, return_counts=True)
    out = np.zeros(len(at), dtype=float)
    out[np.searchsorted(at, values)] = counts
    return out


def kaplan_meier(times, events) -> tuple[np.ndarray, np.ndarray]:
    """(event times, survival just after each), `events` true for an event."""
    times, events = np.asarray(times, dtype=float), np.asarray(events, dtype=bool)
    at = np.unique(times[events])
    n = _at_risk(times, at)
    d = _counts(times[events], at)
    return at, np.cumprod(1.0 - d / n) if len(at) else np.array([])


def aalen_johansen(times, causes) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(event times, {cause: cumulative incidence just after each}); `causes` holds the
    cause of each subject's event, CENSORED ("") for a censoring."""
    times = np.asarray(times, dtype=float)
    causes = np.asarray(causes, dtype=object)
    observed = causes != CENSORED
    at = np.unique(times[observed])
    n = _at_risk(times, at)
    d = _counts(times[observed], at)
    survival = np.cumprod(1.0 - d / n) if len(at) else np.array([])
    before = np.concatenate([[1.0], survival[:-1]])  # S(t_j-)
    incidence = {}
    for cause in sorted(set(causes[observed])):
        d_k = _counts(times[causes == cause], at)
        incidence[cause] = np.cumsum(before * d_k / n)
    return at, incidence


def _at(at: np.ndarray, values: np.ndarray, years: float, start: float, longest: float):
    if longest < years:
        return None
    done = at <= years
    return float(values[done][-1]) if done.any() else start


def _curve(at: np.ndarray, values: np.ndarray, start: float) -> dict:
    return {"years": [0.0] + [float(t) for t in at], "values": [start] + [float(v) for v in values]}


# --- loading --------------------------------------------------------------------------


def _follow_up_end(patients: pd.DataFrame, scope: QuerySet, shared: dict | None = None) -> pd.DataFrame:
    """Per cohort patient: death date (or NaT) and end of follow-up (or NaT), from the
    disposition in effect today; a withdrawn consent without one ends at its date.
    Computed once per request (`shared`: the Prepared cohort's) for the incidence and the
    longevity."""
    if shared is not None and "follow_up_end" in shared:
        return shared["follow_up_end"]
    rows = _frame(
        Disposition.objects.filter(**_of_patients(scope))
        .values_list("patient_id", "status", "date", "transferred_to_id", "pk").order_by(),
        {"patient_id": INT, "status": TEXT, "date": DATE, "to": TEXT, "pk": INT})
    latest = rows.sort_values(["patient_id", "date", "pk"]).drop_duplicates("patient_id", keep="last")
    latest = latest.set_index("patient_id").reindex(patients.index)
    status = latest["status"]
    death = latest["date"].where(status == DispositionStatus.DECEASED)
    ending = status.isin([DispositionStatus.WITHDRAWN, DispositionStatus.COMPLETED]) | (
        (status == DispositionStatus.TRANSFERRED) & latest["to"].isna())
    lost = status == DispositionStatus.LOST
    # The scope's withdrawn patients (the cohort's are among them): no list of ids to send.
    withdrawn = _frame(
        scope.filter(consent_status="withdrawn", withdrawal_date__isnull=False)
        .values_list("id", "withdrawal_date").order_by(),
        {"patient_id": INT, "withdrawal_date": DATE}).set_index("patient_id")["withdrawal_date"]
    withdrawn = as_dates(withdrawn.reindex(patients.index))
    no_row = status.isna()
    has_end = ending | (no_row & withdrawn.notna())
    end = as_dates(latest["date"].where(ending | lost)).where(~no_row, withdrawn)
    last_visit = as_dates(patients["last_visit"]).fillna(as_dates(patients["implant_date"]))
    # Censored at the ending date (withdrawn, transferred out, completed), else at the
    # last completed visit (lost: never after the loss; active).
    censor = last_visit.where(~has_end, end)
    censor = censor.where(~lost, pd.concat([last_visit, end], axis=1).min(axis=1))
    ends = pd.DataFrame({"death": as_dates(death), "end": end, "censor": censor},
                        index=patients.index)
    if shared is not None:
        shared["follow_up_end"] = ends
    return ends


def _years(later: pd.Series, earlier: pd.Series) -> np.ndarray:
    days = (as_dates(later) - as_dates(earlier)).dt.days.to_numpy(dtype=float)
    return np.maximum(days, 0.0) / DAYS_PER_YEAR


def _cohort(user, patients, query, params, prepared: Prepared | None):
    prepared = _prepare(patients=patients, user=user, query=query, params=params, prepared=prepared)
    return prepared.query, prepared.cohort.patients, prepared


def _implants_of(scope: QuerySet) -> QuerySet:
    """The implants of the scope's patients (the cohort's index implants among them): a
    join, no list of ids for PostgreSQL to plan."""
    return Implant.objects.filter(implant_date__isnull=False, **_of_patients(scope))


def explant_times(p: pd.DataFrame, scope: QuerySet,
                  shared: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(years from implant, cause or DEATH or CENSORED) per cohort patient."""
    if p.empty:
        return np.array([]), np.array([], dtype=object)
    reasons = _frame(_implants_of(scope).values_list("pk", "explant_reason_code").order_by(),
                     {"implant_id": INT, "reason": TEXT}).set_index("implant_id")["reason"].fillna("")
    reason = p["implant_id"].map(reasons).fillna(RemovalReason.OTHER)
    ends = _follow_up_end(p, scope, shared)
    explant = as_dates(p["explant_date"])
    limit = ends["end"]
    explant_counts = explant.notna() & (limit.isna() | (explant <= limit)) & (
        ends["death"].isna() | (explant <= ends["death"]))
    death_counts = ~explant_counts & ends["death"].notna()
    when = ends["censor"].where(~explant_counts, explant)
    when = when.where(~death_counts, ends["death"])
    causes = np.where(explant_counts, reason.astype(str), np.where(death_counts, DEATH, CENSORED))
    return _years(when, p["implant_date"]), causes.astype(object)


# --- the analyses ---------------------------------------------------------------------


def explant_incidence(*, user=None, patients: QuerySet | None = None,
                      query: OutcomeQuery | None = None, prepared: Prepared | None = None, **params) -> dict:
    """Cumulative incidence of explant per cause, death competing (module docstring).
    Same parameters, scoping and refusals as `outcome_summary` (group_by ignored), or
    its `prepared` cohort."""
    query, p, prepared = _cohort(user, patients, query, params, prepared)
    min_cell = prepared.min_cell
    n = len(p)
    result = {"query": query.as_dict(), "n_patients": n, "method": "Aalen-Johansen",
              "censoring": INCIDENCE_CENSORING, "suppressed": 0 < n < min_cell}
    if result["suppressed"]:
        return {**result, "n_patients": None, "censored": None, "causes": []}
    times, causes = explant_times(p, prepared.scope, prepared.shared)
    at, incidence = aalen_johansen(times, causes)
    longest = float(times.max()) if n else 0.0
    labels = {**dict(RemovalReason.choices), DEATH: "Death (competing)"}
    result["censored"] = int(np.sum(causes == CENSORED))
    result["causes"] = [
        {"cause": cause, "label": labels.get(cause, cause), "competing": cause == DEATH,
         "events": int(np.sum(causes == cause)),
         "incidence": {f"{y}y": _at(at, values, y, 0.0, longest) for y in KM_YEARS},
         "curve": _curve(at, values, 0.0)}
        for cause, values in sorted(incidence.items(), key=lambda item: (item[0] == DEATH, item[0]))]
    result["at_risk"] = {f"{y}y": int(np.sum(times >= y)) for y in KM_YEARS}
    return result


def ipg_times(p: pd.DataFrame, scope: QuerySet, shared: dict | None = None) -> pd.DataFrame:
    """One row per IPG of the cohort's index implants: model, years, depleted."""
    ipgs = _frame(
        DeviceComponent.objects.filter(kind=ComponentKind.IPG, **_of_patients(scope, "implant__patient"))
        .values_list("implant_id", "implant__patient_id", "manufacturer", "model", "implanted_on",
                     "implant__implant_date", "removed_on", "removal_reason").order_by("pk"),
        {"implant_id": INT, "patient_id": INT, "manufacturer": TEXT, "model": TEXT, "implanted_on": DATE,
         "implant_date": DATE, "removed_on": DATE, "reason": TEXT})
    ipgs = ipgs[ipgs["implant_id"].isin(p["implant_id"])].reset_index(drop=True)
    if ipgs.empty or p.empty:
        return pd.DataFrame({"model": [], "years": [], "depleted": []})
    ends = _follow_up_end(p, scope, shared)
    start = ipgs["implanted_on"].fillna(ipgs["implant_date"])
    death = ipgs["patient_id"].map(ends["death"])
    end = ipgs["patient_id"].map(ends["end"])
    censor = ipgs["patient_id"].map(ends["censor"])
    # In place: censored at death, else the end of follow-up (censor) - whichever first.
    in_place = as_dates(death).where(death.notna() & ((censor.isna()) | (death <= censor)), censor)
    removed = as_dates(ipgs["removed_on"])
    counted = removed.notna() & (end.isna() | (removed <= end))
    when = in_place.where(~counted, removed)
    when = when.where(when >= start, start)
    names = (ipgs["manufacturer"].fillna("") + " " + ipgs["model"].fillna("")).str.strip()
    return pd.DataFrame({"model": names.replace("", "(model not recorded)"),
                         "years": _years(when, start),
                         "depleted": (counted & (ipgs["reason"] == RemovalReason.BATTERY_DEPLETION))
                         .to_numpy()})


def ipg_longevity(*, user=None, patients: QuerySet | None = None,
                  query: OutcomeQuery | None = None, prepared: Prepared | None = None, **params) -> dict:
    """Kaplan-Meier IPG longevity per model (module docstring). Same parameters, scoping
    and refusals as `outcome_summary` (group_by ignored), or its `prepared` cohort."""
    query, p, prepared = _cohort(user, patients, query, params, prepared)
    min_cell = prepared.min_cell
    rows = ipg_times(p, prepared.scope, prepared.shared)
    models = []
    for name, group in sorted(rows.groupby("model"), key=lambda item: item[0]):
        n = len(group)
        entry = {"model": name, "n_ipgs": n, "suppressed": 0 < n < min_cell}
        if entry["suppressed"]:
            models.append({**entry, "n_ipgs": None, "depletions": None, "median_years": None,
                           "survival": {f"{y}y": None for y in KM_YEARS}, "curve": None})
            continue
        times, events = group["years"].to_numpy(float), group["depleted"].to_numpy(bool)
        at, survival = kaplan_meier(times, events)
        below = np.nonzero(survival <= 0.5)[0]
        longest = float(times.max())
        models.append({**entry, "depletions": int(events.sum()),
                       "median_years": float(at[below[0]]) if len(below) else None,
                       "survival": {f"{y}y": _at(at, survival, y, 1.0, longest) for y in KM_YEARS},
                       "curve": _curve(at, survival, 1.0)})
    return {"query": query.as_dict(), "method": "Kaplan-Meier", "censoring": LONGEVITY_CENSORING,
            "models": models}

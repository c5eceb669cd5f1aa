"""The attrition waterfall: what became of a cohort at each follow-up timepoint.

Per protocol timepoint (the site's protocol, else the registry default; months after
the index implant, as the schedule places them), over the cohort of the outcome
summary (same filters and scoping):
- `due`: patients whose target date (implant date + months) is on or before today;
  the others are `not_yet_due` and drop out of that timepoint's waterfall;
- `ended`: of the due, those whose follow-up had ended by the target date, by the
  disposition in effect that day (withdrawn, lost to follow-up, deceased, transferred
  out of the registry, follow-up completed; a withdrawn consent without a disposition
  counts as withdrawn). A transfer to another site of this registry does not end it;
- `active` = due - ended; of the active: `done` (the visit completed), `missed` per
  recorded reason (`Visit.visit_missing`, "" = none given), `not_applicable`, `open`
  (scheduled, or no visit row: not yet recorded).
For a user who does not see real dates (services.deid) a count from 1 to
`min_cell - 1` is shown as None (a small cell), and the whole waterfall of a cohort
under `min_cell` is suppressed.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING

from django.db.models import BigIntegerField, Case, QuerySet, Value, When
from django.db.models.functions import Cast, Substr

from registry.models import (
    Disposition,
    DispositionStatus,
    FollowUpProtocol,
    ProtocolTimepoint,
    Site,
    Visit,
    VisitStatus,
)

from .query import OutcomeQuery

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from .analysis import Prepared

# NumPy, pandas and the analysis are imported where they are used: the package imports
# `attrition` by name, and a process that never draws a waterfall should not load them.

# The visit statuses other than open, as the codes the visits are read with.
STATE = {VisitStatus.COMPLETED: 0, VisitStatus.MISSED: 1, VisitStatus.NOT_APPLICABLE: 2}
# A visit is read as one integer: (implant id * MONTHS_SPAN + months) * 4 + its state code
# (months of a protocol timepoint are a PositiveSmallIntegerField: below 2**15).
MONTHS_SPAN = 1 << 15

ENDED = (DispositionStatus.WITHDRAWN, DispositionStatus.LOST, DispositionStatus.DECEASED,
         DispositionStatus.TRANSFERRED, DispositionStatus.COMPLETED)


def _protocols(site_ids) -> dict[int, list[int]]:
    """Months of each site's protocol (its own, else the default)."""
    default = FollowUpProtocol.objects.filter(is_default=True).values_list("pk", flat=True).first()
    own = dict(Site.objects.filter(pk__in=list(site_ids)).values_list("pk", "protocol_id"))
    months: dict[int, list[int]] = {}
    for protocol_id, month in ProtocolTimepoint.objects.values_list("protocol_id", "months"):
        months.setdefault(protocol_id, []).append(month)
    return {site: sorted(months.get(protocol or default, [])) for site, protocol in own.items()}


def _days(values) -> np.ndarray:
    """Day numbers (since 1970-01-01) of dates (datetime64 or date objects)."""
    import numpy as np
    import pandas as pd

    values = pd.Series(values)
    if not pd.api.types.is_datetime64_any_dtype(values):
        values = pd.to_datetime(values)
    return values.to_numpy().astype("datetime64[D]").astype(np.int64)


class _Months:
    """`dates.add_months(day, months)` of fixed day numbers for one offset after another,
    vectorised: the same day of the month `months` later, clamped to that month's end.
    Each day is split into (month, day of month) once; an offset is then a lookup in the
    first days of the few months the days span (not four datetime conversions of every
    day per timepoint)."""

    def __init__(self, days: np.ndarray):
        import numpy as np

        days = days.astype("datetime64[D]")
        month = days.astype("datetime64[M]")
        self.day = (days - month.astype("datetime64[D]")).astype(np.int64)  # 0-based
        self.month = month.astype(np.int64)  # months since 1970-01
        self.low = int(self.month.min()) if len(days) else 0
        self.high = int(self.month.max()) if len(days) else 0

    def add(self, months: int, take: np.ndarray) -> np.ndarray:
        """The targets of the days at `take`, `months` later."""
        import numpy as np

        firsts = (np.arange(self.low + months, self.high + months + 2).astype("datetime64[M]")
                  .astype("datetime64[D]").astype(np.int64))
        at = self.month[take] - self.low
        first = firsts[at]
        return first + np.minimum(self.day[take], firsts[at + 1] - first - 1)


def _waterfall(p: pd.DataFrame, site_of: dict, protocols: dict, dispositions: pd.DataFrame,
               withdrawn: dict, visits: pd.DataFrame, missed: pd.DataFrame,
               today: datetime.date) -> dict[int, dict]:
    """The counts per protocol month over the cohort (arrays over the patients, one
    timepoint at a time). Follow-up ended by the target day: the disposition in effect
    that day (the last by date, then entry, on or before it) if it ends follow-up (a
    transfer to another site of the registry does not); else a withdrawn consent dated on
    or before it."""
    import numpy as np
    import pandas as pd

    pid = p.index.to_numpy(dtype=np.int64)
    implant_id = p["implant_id"].to_numpy(dtype=np.int64)
    targets = _Months(_days(p["implant_date"]))
    # Each patient's site as a small index (the repeats per timepoint are counted per site).
    site = pd.Series(pid).map(site_of).to_numpy(dtype=np.int64)
    site_ids, site_at = np.unique(site, return_inverse=True)
    site_index = {int(s): i for i, s in enumerate(site_ids)}
    withdrawal = pd.Series(withdrawn, dtype=object).reindex(pid)
    has_withdrawal = withdrawal.notna().to_numpy()
    withdrawal_day = np.where(has_withdrawal, _days(withdrawal.where(has_withdrawal, today)),
                              np.iinfo(np.int64).max)
    today_day = _days([today])[0]
    span = 1 << 24  # more days than any date holds
    held = dispositions["patient_id"].to_numpy(dtype=np.int64) * span + _days(dispositions["date"])
    held_pid = dispositions["patient_id"].to_numpy(dtype=np.int64)
    held_status = dispositions["status"].to_numpy(dtype=object)
    held_ends = np.isin(held_status, list(ENDED)) & ~(
        (held_status == DispositionStatus.TRANSFERRED) & dispositions["to"].notna().to_numpy())
    # The ending statuses as codes 1.. (ENDED's order), 0 = follow-up not ended: counted
    # with one bincount per timepoint instead of a comparison of strings per status.
    codes = {status: i + 1 for i, status in enumerate(ENDED)}
    held_code = np.array([codes.get(status, 0) for status in held_status], dtype=np.int64)
    held_code = np.where(held_ends, held_code, 0)
    # The visits by (month, implant) in one sorted array, looked up by binary search per
    # timepoint (no frame per month; a million visits at 100,000 patients).
    key = visits["key"].to_numpy(dtype=np.int64)
    order = np.argsort(key >> 2, kind="stable")
    sorted_key = key[order]
    last = np.ones(len(sorted_key), dtype=bool)  # one per implant and month (no visits: none)
    last[:-1] = sorted_key[1:] >> 2 != sorted_key[:-1] >> 2
    visit_at, visit_state = sorted_key[last] >> 2, sorted_key[last] & 3
    del order
    # The missed visits' reasons by their (implant, month), looked up for the missed found.
    missed_order = np.argsort(missed["key"].to_numpy(dtype=np.int64) >> 2, kind="stable")
    missed_at = missed["key"].to_numpy(dtype=np.int64)[missed_order] >> 2
    missed_reason = missed["reason"].to_numpy(dtype=object)[missed_order]
    sites_of_month: dict[int, list[int]] = {}
    for site_id, months_of in protocols.items():
        for months in months_of:
            sites_of_month.setdefault(months, []).append(site_id)
    table: dict[int, dict] = {}
    for months in sorted(sites_of_month):
        # A site's protocol lists a month once or more; each listing counts (as the schedule).
        times = np.zeros(len(site_ids), dtype=np.int64)
        for site_id in sites_of_month[months]:
            if site_id in site_index:
                times[site_index[site_id]] += 1
        repeat = times[site_at]
        if not repeat.any():
            continue
        take = np.repeat(np.arange(len(pid)), repeat)
        target = targets.add(months, take)
        due = target <= today_day
        ended = np.zeros(len(take), dtype=np.int64)
        if len(held):
            at = np.searchsorted(held, pid[take] * span + target, side="right") - 1
            at0 = np.maximum(at, 0)
            ended = np.where((at >= 0) & (held_pid[at0] == pid[take]), held_code[at0], 0)
        ended = np.where((ended == 0) & (withdrawal_day[take] <= target), codes[DispositionStatus.WITHDRAWN],
                         ended)
        ended = np.where(due, ended, 0)
        active = due & (ended == 0)
        ended_counts = np.bincount(ended, minlength=len(ENDED) + 1)
        wanted = implant_id[take][active] * MONTHS_SPAN + months
        at = np.minimum(np.searchsorted(visit_at, wanted), max(len(visit_at) - 1, 0))
        found = (visit_at[at] == wanted) if len(visit_at) else np.zeros(len(wanted), dtype=bool)
        state = np.where(found, visit_state[at] if len(visit_at) else -1, -1)
        # (clipped: a visit marked missed between the two reads has no reason row)
        found_missed = np.minimum(np.searchsorted(missed_at, wanted[state == STATE[VisitStatus.MISSED]]),
                                  max(len(missed_at) - 1, 0))
        reasons = pd.Series(missed_reason[found_missed] if len(missed_at) else [None] * len(found_missed),
                            dtype=object).fillna("")
        done = int((state == STATE[VisitStatus.COMPLETED]).sum())
        not_applicable = int((state == STATE[VisitStatus.NOT_APPLICABLE]).sum())
        n_active = int(active.sum())
        table[months] = {
            "due": int(due.sum()), "not_yet_due": int((~due).sum()),
            "ended": {s: int(ended_counts[codes[s]]) for s in ENDED},
            "active": n_active, "done": done,
            "missed": {str(k): int(v) for k, v in reasons.value_counts().items()},
            "not_applicable": not_applicable,
            "open": n_active - done - len(reasons) - not_applicable}
    return table


def attrition(*, user=None, patients: QuerySet | None = None, query: OutcomeQuery | None = None,
              today: datetime.date | None = None, prepared: Prepared | None = None, **params) -> dict:
    """The waterfall per timepoint (module docstring). Same parameters, scoping and
    refusals as `outcome_summary` (group_by, timepoint and threshold play no part), or its
    `prepared` cohort."""
    from .analysis import DATE, FLOAT, INT, TEXT, _frame, _of_patients, _prepare

    today = today or datetime.date.today()
    prepared = _prepare(patients=patients, user=user, query=query, params=params, prepared=prepared)
    query, min_cell, scope = prepared.query, prepared.min_cell, prepared.scope
    p = prepared.cohort.patients
    ids = [int(i) for i in p.index]
    enrolled = len(ids)
    result = {"query": query.as_dict(), "suppressed": 0 < enrolled < min_cell,
              "statuses": {s: DispositionStatus(s).label for s in ENDED},
              "min_cell": min_cell}
    if result["suppressed"]:
        return {**result, "enrolled": None, "timepoints": []}
    # Rows of the scope's patients (the cohort's among them), joined in SQL: no list of ids.
    info = dict(scope.values_list("pk", "site_id").order_by()) if ids else {}
    withdrawn = dict(scope.filter(consent_status="withdrawn")
                     .values_list("pk", "withdrawal_date").order_by()) if ids else {}
    dispositions = _frame(
        Disposition.objects.filter(**_of_patients(scope))
        .values_list("patient_id", "status", "date", "transferred_to_id", "pk").order_by(),
        {"patient_id": INT, "status": TEXT, "date": DATE, "to": FLOAT, "pk": INT},
    ).sort_values(["patient_id", "date", "pk"]).reset_index(drop=True)
    protocols = _protocols(set(info.values()))
    timepoints = sorted({f"m{months}" for months_of in protocols.values() for months in months_of})
    # Only the visits that count as other than open (a scheduled visit is open, as no row);
    # each as one integer (implant, month, state: MONTHS_SPAN) and the reason of a missed
    # visit only: a million visits as four values, two of them strings, cost seconds and
    # ~100 MB at 100,000 patients (issue 21).
    counted = Visit.objects.filter(timepoint__in=timepoints, implant__isnull=False, **_of_patients(scope))
    key = (Cast("implant_id", BigIntegerField()) * MONTHS_SPAN
           + Cast(Substr("timepoint", 2), BigIntegerField())) * 4 + Case(
        *(When(status=status, then=Value(code)) for status, code in STATE.items()),
        output_field=BigIntegerField())
    # The keys alone (numbers only: read as arrays, no text, `frames`), and the reasons of
    # the missed visits apart, by their key: one text per visit was half the read.
    visits = _frame(counted.filter(status__in=list(STATE)).annotate(key=key).values_list("key").order_by(),
                    {"key": INT}, arrays=True)
    missed = _frame(counted.filter(status=VisitStatus.MISSED).annotate(key=key)
                    .values_list("key", "visit_missing").order_by(), {"key": INT, "reason": TEXT})
    table = _waterfall(p, info, protocols, dispositions, withdrawn, visits, missed, today)

    def cell(count):
        return None if 0 < count < min_cell else count

    timepoints = []
    for months in sorted(table):
        row = table[months]
        timepoints.append({
            "timepoint": f"m{months}", "due": cell(row["due"]), "not_yet_due": cell(row["not_yet_due"]),
            "ended": {status: cell(n) for status, n in row["ended"].items()},
            "ended_total": cell(sum(row["ended"].values())),
            "active": cell(row["active"]), "done": cell(row["done"]),
            "missed": {reason: cell(n) for reason, n in sorted(row["missed"].items())},
            "missed_total": cell(sum(row["missed"].values())),
            "not_applicable": cell(row["not_applicable"]), "open": cell(row["open"])})
    return {**result, "enrolled": cell(enrolled), "timepoints": timepoints}

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

from django.db.models import QuerySet

from registry.models import (
    Disposition,
    DispositionStatus,
    FollowUpProtocol,
    Patient,
    ProtocolTimepoint,
    Site,
    Visit,
    VisitStatus,
)

from ..dates import add_months
from .analysis import _base_patients, _of_patients, _patient_scope, _prepare
from .query import OutcomeQuery

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


def _ended_on(rows: list[tuple], withdrawn_on, day: datetime.date) -> str:
    """The status that had ended follow-up by `day`, or "" (rows sorted by date, pk)."""
    current = ""
    for status, date, to in rows:
        if date > day:
            break
        current = status if status in ENDED and not (
            status == DispositionStatus.TRANSFERRED and to is not None) else ""
    if not current and withdrawn_on and withdrawn_on <= day:
        current = DispositionStatus.WITHDRAWN
    return current


def attrition(*, user=None, patients: QuerySet | None = None, query: OutcomeQuery | None = None,
              today: datetime.date | None = None, **params) -> dict:
    """The waterfall per timepoint (module docstring). Same parameters, scoping and
    refusals as `outcome_summary` (group_by, timepoint and threshold play no part)."""
    today = today or datetime.date.today()
    query, cohort, min_cell = _prepare(patients=patients, user=user, query=query, params=params)
    scope = _patient_scope(_base_patients(patients, user), query)
    p = cohort.patients
    ids = [int(i) for i in p.index]
    enrolled = len(ids)
    result = {"query": query.as_dict(), "suppressed": 0 < enrolled < min_cell,
              "statuses": {s: DispositionStatus(s).label for s in ENDED},
              "min_cell": min_cell}
    if result["suppressed"]:
        return {**result, "enrolled": None, "timepoints": []}
    info = dict(Patient.objects.filter(pk__in=ids).values_list(
        "pk", "site_id").order_by()) if ids else {}
    withdrawn = dict(Patient.objects.filter(pk__in=ids, consent_status="withdrawn")
                     .values_list("pk", "withdrawal_date").order_by()) if ids else {}
    dispositions: dict[int, list[tuple]] = {}
    for patient_id, status, date, to in (
            Disposition.objects.filter(**_of_patients(scope)).order_by("patient_id", "date", "pk")
            .values_list("patient_id", "status", "date", "transferred_to_id")):
        dispositions.setdefault(patient_id, []).append((status, date, to))
    implant_of = {int(pid): int(iid) for pid, iid in zip(p.index, p["implant_id"], strict=True)}
    visits = {}
    for implant_id, timepoint, status, reason in (
            Visit.objects.filter(implant_id__in=list(implant_of.values()))
            .values_list("implant_id", "timepoint", "status", "visit_missing").order_by()):
        visits[(implant_id, timepoint)] = (status, reason)
    protocols = _protocols(set(info.values()))
    table: dict[int, dict] = {}
    for pid, implant_date in zip(ids, p["implant_date"], strict=True):
        implant_date = implant_date.date()
        for months in protocols.get(info[pid], []):
            row = table.setdefault(months, {"due": 0, "not_yet_due": 0, "ended": dict.fromkeys(ENDED, 0),
                                            "active": 0, "done": 0, "missed": {}, "not_applicable": 0,
                                            "open": 0})
            target = add_months(implant_date, months)
            if target > today:
                row["not_yet_due"] += 1
                continue
            row["due"] += 1
            ended = _ended_on(dispositions.get(pid, []), withdrawn.get(pid), target)
            if ended:
                row["ended"][ended] += 1
                continue
            row["active"] += 1
            status, reason = visits.get((implant_of[pid], f"m{months}"), (None, ""))
            if status == VisitStatus.COMPLETED:
                row["done"] += 1
            elif status == VisitStatus.MISSED:
                row["missed"][reason] = row["missed"].get(reason, 0) + 1
            elif status == VisitStatus.NOT_APPLICABLE:
                row["not_applicable"] += 1
            else:
                row["open"] += 1

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

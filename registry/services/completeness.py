"""The completeness report: per site, timepoint and instrument, how many values were
expected, how many are there, why the others are missing, and the open queries.

What counts:
- **Expected**: every due visit of the timepoint (completed, missed, not applicable, or
  still scheduled after its window closed; unscheduled visits are extra and not
  counted). Satisfaction and PGIC are expected after the implant only (not at baseline
  or the end of the trial, as the visit's validation says); each PROM instrument where
  the site's protocol schedules it for the patient's diagnosis (PromSchedule.due_at).
- **Done**: the value is there (a PROM: at least one item answered at the visit; one too
  incomplete to score is an open query of the check `prom_items_missing`).
- **Missing, by reason**: the value's own reason (`nrs_missing`, ...; a PROM's: its items'
  `value_missing` when no item is answered) for a completed visit, the visit's reason
  (`visit_missing`) for a visit not done, else `none` ("no value, no reason": the gap the
  data manager has to chase). expected = done + missing.
- **Open queries**: the live queries on that value at those visits (on the visit's
  field or its reason, on the PROM instrument or one of its items).

Who sees what: nurses and data managers their sites' rows with the open queries;
investigators the counts only (no queries: they never see them), and a row about fewer
than `deid.min_cell` expected values is suppressed (its numbers null), as outcome
cohorts are, so that a small site's row does not describe a patient.

Every figure comes from aggregate queries (GROUP BY in the database), a fixed number of
them whatever the number of patients, sites or timepoints.
"""

import dataclasses

from django.core.exceptions import ValidationError
from django.db.models import (
    Case,
    CharField,
    Count,
    F,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.utils import timezone

from registry.models import (
    FollowUpProtocol,
    MissingReason,
    PromAnswer,
    Site,
    Visit,
    VisitStatus,
)
from registry.models.instruments import INSTRUMENTS
from registry.models.queries import LIVE_STATUSES
from registry.models.visits import BASELINE, TIMEPOINT_RE, TRIAL_END, UNSCHEDULED, timepoint_sort_key

from . import access, deid, queries
from .missing import NO_REASON, NO_REASON_LABEL

REASONS = [*MissingReason.values, NO_REASON]
REASON_LABELS = {**dict(MissingReason.choices), NO_REASON: NO_REASON_LABEL}

# The visit's own values: instrument code -> (label, value field, reason field, after the implant only).
VALUES = {
    "nrs": ("NRS pain", "nrs", "nrs_missing", False),
    "satisfaction": ("Satisfaction", "satisfaction", "satisfaction_missing", True),
    "pgic": ("PGIC", "pgic", "pgic_missing", True),
    "opioid_mme": ("Opioid use (MME/day)", "opioid_mme", "opioid_mme_missing", False),
}
INSTRUMENT_LABELS = {**{code: v[0] for code, v in VALUES.items()},
                     **{code: i.name for code, i in INSTRUMENTS.items()}}
ORDER = list(INSTRUMENT_LABELS)
BEFORE_IMPLANT = (BASELINE, TRIAL_END)
NOT_DONE = (VisitStatus.MISSED, VisitStatus.NOT_APPLICABLE)


@dataclasses.dataclass
class Row:
    site: str
    timepoint: str
    instrument: str
    expected: int | None = 0
    done: int | None = 0
    missing: dict[str, int] | None = dataclasses.field(
        default_factory=lambda: dict.fromkeys(REASONS, 0))
    open_queries: int | None = 0
    suppressed: bool = False

    @property
    def label(self) -> str:
        return INSTRUMENT_LABELS[self.instrument]

    @property
    def missing_total(self) -> int | None:
        return None if self.missing is None else sum(self.missing.values())

    @property
    def done_percent(self) -> float | None:
        if not self.expected or self.done is None:
            return None
        return round(100 * self.done / self.expected, 1)

    def as_dict(self) -> dict:
        return {"site": self.site, "timepoint": self.timepoint, "instrument": self.instrument,
                "label": self.label, "expected": self.expected, "done": self.done,
                "done_percent": self.done_percent, "missing": self.missing,
                "missing_total": self.missing_total, "open_queries": self.open_queries,
                "suppressed": self.suppressed}


@dataclasses.dataclass
class Report:
    rows: list[Row]
    shows_queries: bool
    min_cell: int

    def as_dict(self) -> dict:
        return {"reasons": [{"code": c, "label": str(REASON_LABELS[c])} for c in REASONS],
                "shows_queries": self.shows_queries, "min_cell": self.min_cell,
                "rows": [r.as_dict() for r in self.rows]}


def completeness_params_clean(user, *, site=None, timepoint=None) -> dict:
    """The report's filters checked: `site` a site code the user sees, `timepoint`
    baseline, trial_end or m<N>. A ValidationError names the parameter and its value."""
    errors = {}
    found = None
    if site not in (None, ""):
        found = access.sites_for(user).filter(code__iexact=str(site)).first()
        if found is None:
            errors["site"] = f"No site '{site}' among your sites."
    if timepoint not in (None, ""):
        timepoint = str(timepoint)
        if not TIMEPOINT_RE.match(timepoint) or timepoint == UNSCHEDULED:
            errors["timepoint"] = (f"'{timepoint}' is not a timepoint; use baseline, trial_end "
                                   "or m<months> (m3, m12).")
    else:
        timepoint = None
    if errors:
        raise ValidationError(errors)
    return {"site": found, "timepoint": timepoint}


def _due_visits(user, site, timepoint) -> QuerySet:
    today = timezone.localdate()
    qs = access.visible(Visit.objects.all(), user).exclude(timepoint=UNSCHEDULED).filter(
        Q(status__in=(VisitStatus.COMPLETED, *NOT_DONE))
        | Q(status=VisitStatus.SCHEDULED, window_end__lt=today))
    if site is not None:
        qs = qs.filter(patient__site=site)
    if timepoint is not None:
        qs = qs.filter(timepoint=timepoint)
    return qs


def _reason_of(value_field: str, reason_field: str):
    # "" = done; else the value's reason, the visit's reason, or none.
    return Case(
        When(**{f"{value_field}__isnull": False}, then=Value("")),
        When(~Q(**{reason_field: ""}), status=VisitStatus.COMPLETED, then=F(reason_field)),
        When(~Q(visit_missing=""), then=F("visit_missing")),
        default=Value(NO_REASON), output_field=CharField())


def _add(rows: dict, site: str, timepoint: str, instrument: str) -> Row:
    key = (site, timepoint, instrument)
    if key not in rows:
        rows[key] = Row(site, timepoint, instrument)
    return rows[key]


def _value_counts(rows: dict, visits: QuerySet) -> None:
    for code, (_label, value_field, reason_field, after_implant) in VALUES.items():
        qs = visits.exclude(timepoint__in=BEFORE_IMPLANT) if after_implant else visits
        grouped = (qs.annotate(reason=_reason_of(value_field, reason_field))
                   .values_list("patient__site__code", "timepoint", "reason")
                   .annotate(n=Count("pk")).order_by())
        for site, timepoint, reason, n in grouped:
            row = _add(rows, site, timepoint, code)
            row.expected += n
            if reason == "":
                row.done += n
            else:
                row.missing[reason if reason in row.missing else NO_REASON] += n


def _schedules_by_site(sites: dict[int, str]) -> dict[int, list]:
    """Each site's PROM schedule rows (its protocol's, or the default's), in two queries."""
    protocols = {p.pk: p for p in FollowUpProtocol.objects.prefetch_related("prom_schedules")}
    default = next((p for p in protocols.values() if p.is_default), None)
    default_rows = list(default.prom_schedules.all()) if default else []
    out = {}
    for pk, protocol_id in Site.objects.filter(pk__in=list(sites)).values_list("pk", "protocol_id"):
        own = list(protocols[protocol_id].prom_schedules.all()) if protocol_id in protocols else []
        out[pk] = own or default_rows  # as proms.schedules_for: no PROM rows, the default's
    return out


def _prom_counts(rows: dict, visits: QuerySet) -> None:
    # Visits by what decides the PROMs due (site, timepoint, diagnosis) and how they went.
    groups = list(visits.values_list("patient__site_id", "patient__site__code", "timepoint",
                                     "patient__diagnosis", "status", "visit_missing")
                  .annotate(n=Count("pk")).order_by())
    if not groups:
        return
    schedules = _schedules_by_site({g[0]: g[1] for g in groups})
    completed_visits = visits.filter(status=VisitStatus.COMPLETED)
    group = ("visit__patient__site_id", "visit__timepoint", "visit__patient__diagnosis", "instrument")
    answered = {}
    for site_id, timepoint, diagnosis, code, n in (
            PromAnswer.objects.filter(visit__in=completed_visits, value__isnull=False)
            .values_list(*group).annotate(n=Count("visit_id", distinct=True)).order_by()):
        answered[(site_id, timepoint, diagnosis, code)] = n
    # Instruments with item reasons only (no answer at all): missing for that reason (the
    # first item's, alphabetically, if the items give several).
    explained: dict[tuple, dict[str, int]] = {}
    for *key, why in (PromAnswer.objects.filter(visit__in=completed_visits)
                      .values("visit_id", *group).annotate(values=Count("value"),
                                                           why=Min("value_missing"))
                      .filter(values=0).values_list(*group, "why").order_by()):
        counts = explained.setdefault(tuple(key), {})
        counts[why] = counts.get(why, 0) + 1
    completed = {}
    for site_id, site_code, timepoint, diagnosis, status, reason, n in groups:
        for schedule in schedules.get(site_id, []):
            if schedule.instrument not in INSTRUMENTS or not schedule.due_at(timepoint, diagnosis):
                continue
            row = _add(rows, site_code, timepoint, schedule.instrument)
            row.expected += n
            if status == VisitStatus.COMPLETED:
                key = (site_id, timepoint, diagnosis, schedule.instrument)
                completed[key] = (row, completed.get(key, (row, 0))[1] + n)
            elif status in NOT_DONE and reason in MissingReason.values:
                row.missing[reason] += n
            else:
                row.missing[NO_REASON] += n
    for key, (row, n) in completed.items():
        done = min(answered.get(key, 0), n)
        row.done += done
        left = n - done
        for why, count in explained.get(key, {}).items():
            if why in row.missing:
                taken = min(count, left)
                row.missing[why] += taken
                left -= taken
        row.missing[NO_REASON] += left


VALUE_OF_FIELD = {**{v[1]: code for code, v in VALUES.items()},
                  **{v[2]: code for code, v in VALUES.items()},
                  **{f"prom:{code}": code for code in INSTRUMENTS}}


def _query_counts(rows: dict, user, site, timepoint) -> None:
    live = queries.queries_for(user).filter(status__in=LIVE_STATUSES)
    if site is not None:
        live = live.filter(patient__site=site)
    on_visits = queries.with_timepoint(live.filter(record_type="visit"))
    answer = PromAnswer.objects.filter(pk=OuterRef("record_id"))
    on_items = live.filter(record_type="prom_item").annotate(
        timepoint=Subquery(answer.values("visit__timepoint")[:1]),
        instrument=Subquery(answer.values("instrument")[:1]))
    if timepoint is not None:
        on_visits = on_visits.filter(timepoint=timepoint)
        on_items = on_items.filter(timepoint=timepoint)
    for site_code, tp, field, n in (on_visits.values_list("patient__site__code", "timepoint", "field")
                                    .annotate(n=Count("pk")).order_by()):
        code = VALUE_OF_FIELD.get(field)
        if code is not None and tp and tp != UNSCHEDULED:
            _add(rows, site_code, tp, code).open_queries += n
    for site_code, tp, code, n in (on_items.values_list("patient__site__code", "timepoint", "instrument")
                                   .annotate(n=Count("pk")).order_by()):
        if tp and tp != UNSCHEDULED and code in INSTRUMENTS:
            _add(rows, site_code, tp, code).open_queries += n


def completeness_report(user, *, site: Site | None = None, timepoint: str | None = None) -> Report:
    """The report for `user`'s sites (`site`, `timepoint`: from completeness_params_clean)."""
    rows: dict = {}
    if access.role_name(user) is None:
        return Report([], shows_queries=False, min_cell=deid.min_cell(user))
    visits = _due_visits(user, site, timepoint)
    _value_counts(rows, visits)
    _prom_counts(rows, visits)
    shows = queries.sees_queries(user)
    if shows:
        _query_counts(rows, user, site, timepoint)
    smallest = deid.min_cell(user)
    ordered = sorted(rows.values(), key=lambda r: (r.site, timepoint_sort_key(r.timepoint),
                                                   ORDER.index(r.instrument)))
    for row in ordered:
        if not shows:
            row.open_queries = None
        if row.expected < smallest:
            row.expected = row.done = row.missing = None
            row.suppressed = True
    return Report(ordered, shows_queries=shows, min_cell=smallest)


def completeness_totals(report: Report) -> list[dict]:
    """Per instrument over the report's rows (the plot): done and missing by reason;
    suppressed rows left out."""
    totals: dict[str, dict] = {}
    for row in report.rows:
        if row.suppressed:
            continue
        total = totals.setdefault(row.instrument, {"instrument": row.instrument, "label": row.label,
                                                   "expected": 0, "done": 0,
                                                   "missing": dict.fromkeys(REASONS, 0)})
        total["expected"] += row.expected
        total["done"] += row.done
        for reason, n in row.missing.items():
            total["missing"][reason] += n
    return [totals[code] for code in ORDER if code in totals]

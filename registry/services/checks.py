"""Data checks: named rules whose findings open queries, and close them once fixed.

A rule (`CheckRule`) finds anomalies among the patients in scope, each a `Finding` on
one field of one record. `checks_run` compares the findings with the rule's live
queries: a new finding opens exactly one query (`rule` = the rule's name, opened by
the system user); a finding that already has a live query opens nothing (re-running is
a no-op, also concurrently: the database holds one live query per finding); a live
query whose finding is gone is closed with a note ("fixed"). A query a data manager
closed or cancelled by hand stays closed while the finding stands: she has accepted
the value (a real 7-point NRS drop), and asking again every night would bury the
queries that matter.

Runs: after each save of a clinical record in the admin (`checks_after_save`, scoped
to the record's patient), after an import (the imported patients), nightly (Celery
beat, task `registry.tasks.run_data_checks`) and by `manage.py run_data_checks
[--site CODE]`. More rules (PROMs with items missing beyond their scoring rule) plug
in with `rule_register`.
"""

import dataclasses
from collections.abc import Callable, Iterable
from decimal import Decimal

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Q, QuerySet, Window
from django.db.models.functions import Lag

from registry.models import (
    AdverseEvent,
    DataQuery,
    Implant,
    Patient,
    QueryStatus,
    Site,
    Visit,
    VisitStatus,
)

from . import queries
from .audit import system_user

NRS_JUMP = 6  # points between consecutive visits of one implant
MME_CEILING = Decimal("500")  # MME/day
BATCH = 2000


@dataclasses.dataclass(frozen=True)
class Finding:
    record: object  # the row, loaded with what its query key needs
    field: str
    text: str

    @property
    def key(self) -> tuple[str, int, str]:
        return (queries.record_type_of(self.record).name, self.record.pk, self.field)


Scope = QuerySet | None  # patients in scope; None: every patient


@dataclasses.dataclass(frozen=True)
class CheckRule:
    name: str
    why: str  # why the rule exists (shown in the admin and the docs)
    find: Callable[[Scope], Iterable[Finding]]


RULES: dict[str, CheckRule] = {}


def rule_register(rule: CheckRule) -> CheckRule:
    """The hook for more rules (the PROM rule: items missing beyond the scoring rule)."""
    RULES[rule.name] = rule
    return rule


def _in_scope(queryset: QuerySet, scope: Scope, path: str = "patient") -> QuerySet:
    return queryset if scope is None else queryset.filter(**{f"{path}__in": scope})


def _visits(scope: Scope) -> QuerySet:
    return _in_scope(Visit.objects.select_related("patient", "implant"), scope)


# ------------------------------------------------------------------ the rules


def _completed_without_nrs(scope):
    qs = _visits(scope).filter(status=VisitStatus.COMPLETED, nrs__isnull=True, nrs_missing="")
    for visit in qs.iterator(chunk_size=BATCH):
        yield Finding(visit, "nrs", f"The visit of {visit.date_done} is completed but has no NRS. "
                                    "Enter the NRS, or the reason it is missing.")


rule_register(CheckRule(
    "visit_completed_without_nrs",
    "The NRS is the registry's primary outcome: a completed visit without it (and without "
    "a reason why) drops the patient from the responder analysis unexplained.",
    _completed_without_nrs))


def _nrs_jumps(scope):
    base = _in_scope(Visit.objects.filter(status=VisitStatus.COMPLETED, nrs__isnull=False,
                                          implant__isnull=False, date_done__isnull=False), scope)
    rows = base.annotate(previous=Window(Lag("nrs"), partition_by=[F("implant_id")],
                                         order_by=[F("date_done").asc(), F("pk").asc()]))
    jumps = {}
    for pk, nrs, previous in rows.values_list("pk", "nrs", "previous").iterator(chunk_size=BATCH):
        if previous is not None and abs(nrs - previous) >= NRS_JUMP:
            jumps[pk] = (previous, nrs)
    for visit in Visit.objects.select_related("patient", "implant").filter(pk__in=list(jumps)):
        previous, nrs = jumps[visit.pk]
        yield Finding(visit, "nrs", f"NRS went from {previous} to {nrs} since the previous visit "
                                    f"of {visit.implant.ref} (a change of {NRS_JUMP} or more). "
                                    "Please confirm both values.")


rule_register(CheckRule(
    "nrs_jump",
    f"A change of {NRS_JUMP} or more points between two consecutive visits of one implant is "
    "rare in chronic neuropathic pain and is often a typing slip (3 entered as 9) or the scale "
    "read the wrong way round; confirming it protects the responder rates.",
    _nrs_jumps))


def _follow_up_after_explant(scope):
    qs = _visits(scope).filter(date_done__gt=F("implant__explant_date")).exclude(
        timepoint="baseline")
    for visit in qs.iterator(chunk_size=BATCH):
        yield Finding(visit, "date_done", (
            f"The visit is dated {visit.date_done}, after {visit.implant.ref} was explanted "
            f"({visit.implant.explant_date}). Is the date or the implant wrong?"))


rule_register(CheckRule(
    "follow_up_after_explant",
    "After the explant there is no stimulation to follow up: a follow-up dated later belongs "
    "to another implant, carries a wrong date, or the explant date is wrong; each skews the "
    "outcome at that timepoint.",
    _follow_up_after_explant))


def _mme_over_ceiling(scope):
    for visit in _visits(scope).filter(opioid_mme__gt=MME_CEILING).iterator(chunk_size=BATCH):
        yield Finding(visit, "opioid_mme", (
            f"Opioid use of {visit.opioid_mme} MME/day is above {MME_CEILING}. Please confirm "
            "(a unit slip, mg instead of MME, or a daily dose counted twice?)."))


rule_register(CheckRule(
    "mme_over_500",
    f"More than {MME_CEILING} MME/day is far above the 90 MME/day the CDC guideline (2022) "
    "asks to avoid; in this population it is nearly always a unit or conversion slip, and "
    "one such value moves a cohort's mean opioid use visibly.",
    _mme_over_ceiling))


def _serious_without_criterion(scope):
    qs = _in_scope(AdverseEvent.objects.select_related("patient"), scope).filter(
        serious=True, serious_criterion="")
    for event in qs.iterator(chunk_size=BATCH):
        yield Finding(event, "serious_criterion", (
            "The event is marked serious but no seriousness criterion is given "
            "(ISO 14155: death, life-threatening, permanent impairment, hospitalisation, "
            "intervention)."))


rule_register(CheckRule(
    "serious_ae_without_criterion",
    "ISO 14155 (3.45) defines a serious adverse event by its criterion, and the criterion "
    "decides how fast it must be reported; a serious event without one cannot be classified "
    "or reported correctly.",
    _serious_without_criterion))


def far_outside_window(visit) -> bool:
    """Done beyond twice its window: further from the target than twice the window reaches
    on that side (a window of +/-30 days: more than 60 days early or late)."""
    if not (visit.date_done and visit.window_start and visit.window_end):
        return False
    target = visit.target_date or visit.window_start + (visit.window_end - visit.window_start) / 2
    if visit.date_done > visit.window_end:
        return visit.date_done - target > 2 * (visit.window_end - target)
    if visit.date_done < visit.window_start:
        return target - visit.date_done > 2 * (target - visit.window_start)
    return False


def _far_outside_window(scope):
    # Outside the window at all is a plain comparison (indexed); how far, in Python.
    qs = _visits(scope).filter(status=VisitStatus.COMPLETED, date_done__isnull=False).filter(
        Q(date_done__lt=F("window_start")) | Q(date_done__gt=F("window_end")))
    for visit in qs.iterator(chunk_size=BATCH):
        if far_outside_window(visit):
            yield Finding(visit, "date_done", (
                f"The {visit.timepoint} visit was done on {visit.date_done}, far outside its window "
                f"({visit.window_start} to {visit.window_end}). Is the date or the timepoint "
                "wrong?"))


rule_register(CheckRule(
    "visit_far_outside_window",
    "A visit somewhat outside its window is still that timepoint (flagged in the admin); one "
    "beyond twice its window is usually another timepoint or a mistyped date, and would put "
    "its scores at the wrong time in every outcome.",
    _far_outside_window))


# The models' own validation, as the import validator runs it (clean_fields, then clean):
# rows saved before a rule existed, or written in bulk, are held to today's rules.
# The related rows are read with the record: the rules read the patient's site (its day).
CLEANED = (
    (Patient, ("site",)),
    (Implant, ("patient__site",)),
    (Visit, ("patient__site", "implant")),
    (AdverseEvent, ("patient__site", "implant")),
)


def record_errors(obj, *, stored: bool = False) -> dict[str, list[str]]:
    """The validation messages of `obj` by field ("" for the record), as the import
    validator and the admin form would give them. `stored`: a row read from the database,
    whose foreign keys the database holds to exist (not asked again, one query each)."""
    found: dict = {}
    exclude = [f.name for f in obj._meta.concrete_fields
               if f.is_relation and (f.blank or not f.null)] if stored else None
    for check in (lambda: obj.clean_fields(exclude=exclude), obj.clean):
        try:
            check()
        except ValidationError as exc:
            found = exc.update_error_dict(found)
    return {("" if name == NON_FIELD_ERRORS else name): [str(m) for m in ValidationError(msgs)]
            for name, msgs in found.items()}


def _invalid_records(scope):
    for model, related in CLEANED:
        path = "pk" if model is Patient else "patient"
        qs = _in_scope(model.objects.select_related(*related), scope, path)
        for obj in qs.iterator(chunk_size=BATCH):
            for field, messages in record_errors(obj, stored=True).items():
                yield Finding(obj, field, " ".join(messages))


rule_register(CheckRule(
    "record_invalid",
    "The same validation as the admin form and the import: rows entered before a rule was "
    "added, or changed in bulk, are checked against today's rules.",
    _invalid_records))


# ------------------------------------------------------------------ running them


@dataclasses.dataclass
class CheckRun:
    findings: int = 0
    opened: int = 0
    closed: int = 0
    by_rule: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)

    def summary(self) -> str:
        return (f"{self.findings} finding(s), {self.opened} query(ies) opened, "
                f"{self.closed} closed as fixed")


FIXED_NOTE = "Closed by the data check '{rule}': it no longer finds the anomaly (fixed)."


def checks_run(*, sites: Iterable[Site] | None = None, patients: Iterable[int] | None = None,
               rules: Iterable[str] | None = None) -> CheckRun:
    """Run the rules (default: all) over the patients of `sites`, or the `patients` (pks),
    or everyone; open a query per new finding, close the live queries whose finding is
    gone. Acts as the system user. Unknown rule names raise ValueError."""
    names = list(rules) if rules is not None else list(RULES)
    unknown = [n for n in names if n not in RULES]
    if unknown:
        raise ValueError(f"Unknown data check(s): {', '.join(unknown)}; known: {', '.join(RULES)}")
    scope: Scope = None
    if patients is not None:
        scope = Patient.objects.filter(pk__in=list(patients))
    elif sites is not None:
        scope = Patient.objects.filter(site__in=list(sites))
    actor = system_user()
    run = CheckRun()
    for name in names:
        counts = _run_rule(RULES[name], scope, actor)
        run.by_rule[name] = counts
        run.findings += counts["findings"]
        run.opened += counts["opened"]
        run.closed += counts["closed"]
    return run


def _run_rule(rule: CheckRule, scope: Scope, actor) -> dict[str, int]:
    found = {}
    for finding in rule.find(scope):
        found.setdefault(finding.key, finding)
    mine = _in_scope(DataQuery.objects.filter(rule=rule.name), scope)
    live = {(q.record_type, q.record_id, q.field): q for q in mine.live()}
    settled = set(mine.filter(status__in=(QueryStatus.CLOSED, QueryStatus.CANCELLED),
                              closed_by_check=False)
                  .values_list("record_type", "record_id", "field"))
    opened = closed = 0
    for key, finding in found.items():
        if key in live or key in settled:
            continue
        try:
            with transaction.atomic():
                queries.query_open(record=finding.record, field=finding.field, text=finding.text,
                                   actor=actor, rule=rule.name)
            opened += 1
        except IntegrityError:
            pass  # another run opened it in between (one_live_query_per_finding)
    for key, query in live.items():
        if key not in found:
            try:
                queries.query_close(query=query, text=FIXED_NOTE.format(rule=rule.name),
                                    actor=actor, by_check=True)
                closed += 1
            except ValidationError:
                pass  # closed by someone else in between
    return {"findings": len(found), "opened": opened, "closed": closed}


def _patient_of(obj) -> int | None:
    if isinstance(obj, Patient):
        return obj.pk
    if getattr(obj, "patient_id", None):
        return obj.patient_id
    parent = getattr(obj, "visit", None) or getattr(obj, "implant", None)  # a pain score, a revision
    return getattr(parent, "patient_id", None)


def checks_after_save(obj) -> CheckRun | None:
    """Re-run every rule for the patient of a just-saved clinical row (the admin calls it
    after the save and its inlines); None for rows of no patient."""
    patient_id = _patient_of(obj)
    if patient_id is None:
        return None
    return checks_run(patients=[patient_id])


def rules_documented() -> list[tuple[str, str]]:
    """(name, why) of every rule, for the admin and the docs."""
    return [(rule.name, rule.why) for rule in RULES.values()]


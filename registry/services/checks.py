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

Runs: after each save of a clinical record in the admin and after a questionnaire
submitted through the patient's link (`checks_after_save`, scoped to the record's
patient), after an import (the imported patients, without the rules the import
validator has just applied: `import_validated`), nightly (Celery beat, task
`registry.tasks.run_data_checks`) and by `manage.py run_data_checks [--site CODE]`.
More rules plug in with `rule_register`.

At registry scale (docs/benchmarks.md): `record_invalid` reads the patients in chunks
with the rows their clean() reads (implants, revisions, sites) already in place, and
the new findings of a run open their queries in batches (`queries.queries_open_many`),
with the same history rows as one at a time.
"""

import dataclasses
from collections.abc import Callable, Iterable
from decimal import Decimal

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Q, QuerySet, Window
from django.db.models.functions import Lag

from registry.models import (
    AdverseEvent,
    DataQuery,
    Implant,
    Patient,
    PromAnswer,
    QueryStatus,
    Revision,
    Site,
    Visit,
    VisitStatus,
)
from registry.models.base import pk_list

from . import queries
from .audit import system_user
from .proms import instruments

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
    # Everything the rule asks, the import validator has asked of every imported row
    # already (the same clean()): `checks_run(import_validated=True)` skips it.
    import_validated: bool = False


RULES: dict[str, CheckRule] = {}


def rule_register(rule: CheckRule) -> CheckRule:
    """The hook for more rules (a rule of another issue registers itself here)."""
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
    for visit in Visit.objects.select_related("patient", "implant").filter(pk__in=pk_list(jumps)):
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


def _prom_unscorable(scope):
    # Only (visit, instrument) groups with fewer rows (answers or reasons) than items can
    # miss a score without a reason for it: the
    # count is SQL, the instrument's own rule (Score.min_answered) is Python on those few.
    item_counts = Q()
    for code, instrument in instruments.INSTRUMENTS.items():
        item_counts |= Q(instrument=code, answered__lt=len(instrument.items))
    partial = (_in_scope(PromAnswer.objects.all(), scope, "visit__patient")
               .values("visit_id", "instrument").annotate(answered=Count("pk")).order_by()
               .filter(item_counts).values_list("visit_id", "instrument"))
    groups: dict[int, set[str]] = {}
    for visit_id, code in partial.iterator(chunk_size=BATCH):
        groups.setdefault(visit_id, set()).add(code)
    for start in range(0, len(groups), BATCH):
        ids = list(groups)[start:start + BATCH]
        answers: dict[tuple[int, str], dict[str, int | None]] = {}
        for visit_id, code, item, value in PromAnswer.objects.filter(visit_id__in=ids).values_list(
                "visit_id", "instrument", "item", "value"):
            if code in groups[visit_id]:
                answers.setdefault((visit_id, code), {})[item] = value  # None: a reason given
        visits = Visit.objects.select_related("patient", "implant").in_bulk(ids)
        for (visit_id, code), rows in sorted(answers.items()):
            given = {item: value for item, value in rows.items() if value is not None}
            definition = instruments.INSTRUMENTS[code]
            missing = [i.code for i in definition.items if i.code not in rows]
            # Every unanswered item has its reason (declined, ...): known, nothing to ask.
            if instruments.is_scorable(code, given) or not missing:
                continue
            unscored = [s.label for s in definition.scores
                        if s.compute(given, instruments.DEFAULT_VALUE_SET) is None]
            yield Finding(visits[visit_id], prom_field(code), (
                f"{definition.name}: {len(missing)} of {len(definition.items)} items are not "
                f"answered ({', '.join(missing)}), more than its scoring rule allows, so "
                f"{'; '.join(unscored)} cannot be scored. Enter the missing answers if the "
                "patient gave them."))


def prom_field(instrument: str) -> str:
    """The query field of a whole instrument at a visit ("prom:odi")."""
    return f"prom:{instrument}"


rule_register(CheckRule(
    "prom_items_missing",
    "A PROM with more items missing than its scoring rule allows (e.g. ODI: at least 8 of 10 "
    "sections; HADS: one missing item per subscale prorated) has no score, and the patient "
    "drops out of that outcome; often the answers exist on paper but were not all entered.",
    _prom_unscorable))


# The models' own validation, as the import validator runs it (clean_fields, then clean):
# rows saved before a rule existed, or written in bulk, are held to today's rules.
CLEANED = (Patient, Implant, Visit, AdverseEvent)
PATIENT_CHUNK = 500  # patients whose rows are checked together


def _foreign_keys(model) -> list[str]:
    return [f.name for f in model._meta.concrete_fields if f.is_relation]


def record_errors(obj, *, stored: bool = False) -> dict[str, list[str]]:
    """The validation messages of `obj` by field ("" for the record), as the import
    validator and the admin form would give them. `stored`: a row read from the
    database, whose foreign keys the database's own constraints keep valid (so their
    existence is not asked again, one query per key and row)."""
    found: dict = {}
    exclude = _foreign_keys(type(obj)) if stored else None
    for check in (lambda: obj.clean_fields(exclude=exclude), obj.clean):
        try:
            check()
        except ValidationError as exc:
            found = exc.update_error_dict(found)
    return {("" if name == NON_FIELD_ERRORS else name): [str(m) for m in ValidationError(msgs)]
            for name, msgs in found.items()}


def _cache(obj, field: str, value) -> None:
    """Set what `obj.<field>` returns (a foreign key's row), as select_related would."""
    type(obj)._meta.get_field(field).set_cached_value(obj, value)


def _chunk_rows(patients: list[Patient]) -> Iterable:
    """The rows of `patients` that clean() checks, each with the rows clean() reads already
    in place, as one set of objects per chunk: the patient (with her site) of each row,
    her implants (the overlap and first-implant rules), each implant's revisions (the
    explant date) and the implant of a visit or event. A few queries per chunk, not one
    per row, and one Patient object per patient, not one per row."""
    by_pk = {p.pk: p for p in patients}
    implants = list(Implant.objects.filter(patient_id__in=by_pk))
    revisions: dict[int, list] = {}
    for revision in Revision.objects.filter(implant__in=[i.pk for i in implants if i.explant_date]):
        revisions.setdefault(revision.implant_id, []).append(revision)
    of_patient: dict[int, list] = {pk: [] for pk in by_pk}
    for implant in implants:
        _cache(implant, "patient", by_pk[implant.patient_id])
        implant._prefetched_objects_cache = {"revisions": revisions.get(implant.pk, [])}
        of_patient[implant.patient_id].append(implant)
    for patient in patients:
        patient._prefetched_objects_cache = {"implants": of_patient[patient.pk]}
    implant_by_pk = {i.pk: i for i in implants}
    yield from patients
    yield from implants
    for model in (Visit, AdverseEvent):
        for obj in model.objects.filter(patient_id__in=by_pk).order_by("pk"):
            _cache(obj, "patient", by_pk[obj.patient_id])
            if obj.implant_id in implant_by_pk:  # (another patient's implant: read as stored)
                _cache(obj, "implant", implant_by_pk[obj.implant_id])
            yield obj


def _invalid_records(scope):
    patients = (scope if scope is not None else Patient.objects.all()).select_related("site")
    last = 0
    while True:
        chunk = list(patients.filter(pk__gt=last).order_by("pk")[:PATIENT_CHUNK])
        if not chunk:
            return
        last = chunk[-1].pk
        for obj in _chunk_rows(chunk):
            for field, messages in record_errors(obj, stored=True).items():
                yield Finding(obj, field, " ".join(messages))


rule_register(CheckRule(
    "record_invalid",
    "The same validation as the admin form and the import: rows entered before a rule was "
    "added, or changed in bulk, are checked against today's rules.",
    _invalid_records, import_validated=True))


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
               rules: Iterable[str] | None = None, import_validated: bool = False) -> CheckRun:
    """Run the rules (default: all) over the patients of `sites`, or the `patients` (pks),
    or everyone; open a query per new finding, close the live queries whose finding is
    gone. Acts as the system user. Unknown rule names raise ValueError.

    `import_validated`: the run right after an import, whose validator has just put every
    imported row through the same clean(): the rules that ask nothing more
    (`CheckRule.import_validated`: record_invalid) are skipped, their live queries left
    as they are (the nightly run re-checks them)."""
    names = list(rules) if rules is not None else list(RULES)
    unknown = [n for n in names if n not in RULES]
    if unknown:
        raise ValueError(f"Unknown data check(s): {', '.join(unknown)}; known: {', '.join(RULES)}")
    if import_validated:
        names = [n for n in names if not RULES[n].import_validated]
    scope: Scope = None
    if patients is not None:
        scope = Patient.objects.filter(pk__in=pk_list(patients))
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
    new = [finding for key, finding in found.items() if key not in live and key not in settled]
    for start in range(0, len(new), BATCH):
        opened += _open(new[start:start + BATCH], rule, actor)
    gone = [query.pk for key, query in live.items() if key not in found]
    for start in range(0, len(gone), BATCH):
        # A query closed by someone else in between is left as she left it.
        closed += len(queries.queries_close_many(gone[start:start + BATCH], actor=actor,
                                                 text=FIXED_NOTE.format(rule=rule.name)))
    return {"findings": len(found), "opened": opened, "closed": closed}


def _open(findings: list[Finding], rule: CheckRule, actor) -> int:
    """Open a query per finding: in one batch (a few queries for all, with the same
    history rows as one at a time), or, when another run opened some of them in between
    (one_live_query_per_finding refuses the batch), one by one, skipping those."""
    try:
        with transaction.atomic():
            return len(queries.queries_open_many(
                [(f.record, f.field, f.text) for f in findings], actor=actor, rule=rule.name))
    except IntegrityError:
        pass
    opened = 0
    for finding in findings:
        try:
            with transaction.atomic():
                queries.query_open(record=finding.record, field=finding.field, text=finding.text,
                                   actor=actor, rule=rule.name)
            opened += 1
        except (IntegrityError, ValidationError):
            pass  # another run opened it in between (the batch's checks passed: only that)
    return opened


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


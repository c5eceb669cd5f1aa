"""Data queries: open, answer, close, reopen, cancel; who sees them; the counts pages show.

Promises:
- Only nurses and data managers see queries, each only of her sites (`queries_for`);
  investigators and users without a role get none, not even counts.
- Data managers (and the data checks, acting as the system user) open, close, reopen and
  cancel; the nurses of the query's site answer. Anything else is refused
  (PermissionDenied), as is a step the status does not allow (ValidationError naming
  `status`).
- Every step writes a message to the thread and a history row of the query, both with
  the acting user and the message as the reason (services.audit).
- A query points at a record generically (`RECORD_TYPES`): a new kind of record (PROM
  items) registers itself with `record_type_register` and gets everything above.
"""

import dataclasses
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Case, CharField, Count, OuterRef, QuerySet, Subquery, Value, When
from django.utils import timezone

from registry.models import (
    AdverseEvent,
    DataQuery,
    Implant,
    Patient,
    PromAnswer,
    QueryAction,
    QueryMessage,
    QueryStatus,
    Role,
    Visit,
)
from registry.models.instruments import INSTRUMENTS
from registry.models.queries import LIVE_STATUSES

from . import access, inputs
from .audit import SYSTEM_USERNAME, attach_audit, bulk_create_audited, record_bulk_update, record_save

MAX_TEXT = 4000


@dataclasses.dataclass(frozen=True)
class RecordType:
    """How a query reaches a kind of record: its model, the patient, the key people read,
    the timepoint (visits), and which fields may be asked about."""

    name: str
    model: type
    patient_id: Callable[[object], int]
    key: Callable[[object], str]
    timepoint: Callable[[object], str] = lambda obj: ""
    # The fields a query may name; default: the model's concrete editable fields.
    fields: Callable[[object], set[str]] | None = None
    # select_related for loading records of this type.
    related: tuple[str, ...] = ()

    def field_names(self, obj) -> set[str]:
        if self.fields is not None:
            return self.fields(obj)
        return {f.name for f in self.model._meta.concrete_fields
                if f.editable and not f.primary_key and f.name not in ("version",)}


def _visit_key(visit: Visit) -> str:
    owner = visit.implant.ref if visit.implant_id else visit.patient.registry_id
    suffix = f" #{visit.pk}" if visit.timepoint == "unscheduled" else ""
    return f"{owner} {visit.timepoint}{suffix}"


RECORD_TYPES: dict[str, RecordType] = {}


def record_type_register(record_type: RecordType) -> None:
    """The hook for more kinds of records (PROM items: `prom_item`, keyed by the answer row,
    `field` the item code). Registering twice under one name replaces the first."""
    RECORD_TYPES[record_type.name] = record_type


record_type_register(RecordType("patient", Patient, lambda p: p.pk, lambda p: p.registry_id,
                                related=("site",)))
record_type_register(RecordType("implant", Implant, lambda i: i.patient_id, lambda i: i.ref,
                                related=("patient",)))
def _visit_fields(visit: Visit) -> set[str]:
    # The visit's own fields, and each PROM instrument as a whole ("prom:odi": the data
    # check on items missing beyond the scoring rule asks about the instrument, not an item).
    own = {f.name for f in Visit._meta.concrete_fields
           if f.editable and not f.primary_key and f.name != "version"}
    return own | {f"prom:{code}" for code in INSTRUMENTS}


def _prom_item_key(answer: PromAnswer) -> str:
    return f"{_visit_key(answer.visit)} {answer.instrument}.{answer.item}"


record_type_register(RecordType("visit", Visit, lambda v: v.patient_id, _visit_key,
                                timepoint=lambda v: v.timepoint, fields=_visit_fields,
                                related=("patient", "implant")))
# A PROM item answer: `field` is "value" (the answer) or "value_missing" (its reason).
record_type_register(RecordType(
    "prom_item", PromAnswer, lambda a: a.visit.patient_id, _prom_item_key,
    timepoint=lambda a: a.visit.timepoint, fields=lambda a: {"value", "value_missing"},
    related=("visit__patient", "visit__implant")))
record_type_register(RecordType(
    "adverse_event", AdverseEvent, lambda e: e.patient_id,
    lambda e: f"{e.patient.registry_id} AE #{e.pk}", related=("patient",)))


def record_type_of(obj) -> RecordType:
    for record_type in RECORD_TYPES.values():
        if type(obj) is record_type.model:
            return record_type
    raise LookupError(f"No query record type for {type(obj).__name__}")


# ------------------------------------------------------------------ who sees what


def sees_queries(user) -> bool:
    """Nurses and data managers; never investigators (queries hold free text and real times)."""
    return access.role_name(user) in (Role.NURSE, Role.DATA_MANAGER)


def queries_for(user) -> QuerySet:
    """The queries `user` may see: her sites' for nurses, all for data managers, none else."""
    if not sees_queries(user):
        return DataQuery.objects.none()
    return access.visible(DataQuery.objects.all(), user)


def with_timepoint(queryset: QuerySet) -> QuerySet:
    """Annotate `timepoint` (the visit's, for queries on visits; None otherwise)."""
    visit_timepoint = Subquery(Visit.objects.filter(pk=OuterRef("record_id")).values("timepoint")[:1])
    return queryset.annotate(timepoint=Case(When(record_type="visit", then=visit_timepoint),
                                            default=Value(None), output_field=CharField()))


@dataclasses.dataclass
class QueryCounts:
    open: int = 0  # waiting for the site
    answered: int = 0  # waiting for the data manager
    # What the user's role is asked to act on: open for nurses, answered for data managers.
    waiting_for_me: int = 0
    by_site: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)


def open_queries_for(user) -> QueryCounts:
    """The live query counts the site home page shows: open (waiting for the site) and
    answered (waiting for the data manager), in all and per site code; one query.
    Zero for users who do not see queries (investigators get no counts at all)."""
    counts = QueryCounts()
    rows = (queries_for(user).filter(status__in=LIVE_STATUSES)
            .values("patient__site__code", "status").annotate(n=Count("pk")).order_by())
    for row in rows:
        site = counts.by_site.setdefault(row["patient__site__code"], {"open": 0, "answered": 0})
        site[row["status"]] += row["n"]
        setattr(counts, row["status"], getattr(counts, row["status"]) + row["n"])
    counts.waiting_for_me = counts.answered if access.is_data_manager(user) else counts.open
    return counts


# ------------------------------------------------------------------ the steps


def _is_system(actor) -> bool:
    return getattr(actor, "username", None) == SYSTEM_USERNAME


def _may_manage(actor) -> bool:
    return _is_system(actor) or access.is_data_manager(actor)


def _may_answer(actor, query: DataQuery) -> bool:
    site_id = query.patient.site_id
    return access.role_name(actor) == Role.NURSE and site_id in access.member_site_ids(actor)


def _text(text: str, what: str) -> str:
    text = (text or "").strip()
    problem = inputs.value_problem("text", text)
    if problem:
        raise ValidationError({"text": problem})
    if not text:
        raise ValidationError({"text": f"Write the {what} (it goes into the query's thread)."})
    if len(text) > MAX_TEXT:
        raise ValidationError({"text": f"The {what} is {len(text)} characters long; at most "
                                       f"{MAX_TEXT}."})
    return text


def _message(query: DataQuery, *, actor, action: str, text: str) -> QueryMessage:
    message = QueryMessage(query=query, author=actor, action=action, text=text)
    return record_save(message, actor=actor, reason=f"Query {action}")


def _messages_many(pairs: list[tuple[DataQuery, str]], *, actor, action: str) -> None:
    """`_message` for many (query, text) at once, in bulk with the same history rows."""
    messages = []
    for query, text in pairs:
        message = QueryMessage(query=query, author=actor, action=action, text=text)
        attach_audit(message, actor=actor, reason=f"Query {action}")
        messages.append(message)
    bulk_create_audited(messages, QueryMessage, actor=actor)


def _step(query: DataQuery, *, actor, action: str, text: str, allowed: tuple[str, ...],
          change: Callable[[DataQuery], None]) -> DataQuery:
    with transaction.atomic():
        locked = DataQuery.objects.select_for_update().select_related("patient").get(pk=query.pk)
        if locked.status not in allowed:
            raise ValidationError({"status": (
                f"A query that is '{locked.status}' cannot be {QueryAction(action).label.lower()}; "
                f"only one that is {' or '.join(allowed)}.")}, code="status")
        change(locked)
        record_save(locked, actor=actor, reason=f"{QueryAction(action).label}: {text[:200]}")
        _message(locked, actor=actor, action=action, text=text)
    return locked


def _new_query(record, field: str, text: str, *, actor, rule: str, now) -> tuple[DataQuery, str]:
    """The unsaved query on `field` of `record` and its checked question text."""
    record_type = record_type_of(record)
    field = (field or "").strip()
    if field and field not in record_type.field_names(record):
        known = ", ".join(sorted(record_type.field_names(record)))
        raise ValidationError({"field": f"'{field}' is not a field of a {record_type.name}; "
                                        f"expected one of {known} (or empty for the record)."})
    text = _text(text, "question")
    return DataQuery(
        patient_id=record_type.patient_id(record), record_type=record_type.name,
        record_id=record.pk, record_key=record_type.key(record)[:80], field=field, rule=rule,
        status=QueryStatus.OPEN, opened_by=actor, opened_at=now), text


def query_open(*, record, field: str, text: str, actor, rule: str = "") -> DataQuery:
    """Open a query on `field` of `record` (a patient, implant, visit, adverse event or a
    registered record type). Data managers and the data checks only."""
    if not _may_manage(actor):
        raise PermissionDenied("Only data managers open queries.")
    query, text = _new_query(record, field, text, actor=actor, rule=rule, now=timezone.now())
    with transaction.atomic():
        record_save(query, actor=actor, reason=f"Opened: {text[:200]}")
        _message(query, actor=actor, action=QueryAction.OPEN, text=text)
    return query


def queries_open_many(items: list[tuple[object, str, str]], *, actor, rule: str = "") -> list[DataQuery]:
    """`query_open` for many (record, field, text) at once (the data checks' findings): the
    same checks, rows, messages and history rows (user `actor`, the same reasons), written
    in bulk (services.audit.bulk_create_audited): a few queries instead of ~20 per query.
    A live query of the same finding in the database refuses the whole batch
    (IntegrityError); nothing is written then."""
    if not _may_manage(actor):
        raise PermissionDenied("Only data managers open queries.")
    now = timezone.now()
    built = []
    for record, field, text in items:
        query, text = _new_query(record, field, text, actor=actor, rule=rule, now=now)
        # The keys point at rows just read, and the database holds the constraints.
        query.full_clean(exclude=["patient", "opened_by", "answered_by", "closed_by"],
                         validate_constraints=False)
        attach_audit(query, actor=actor, reason=f"Opened: {text[:200]}")
        built.append((query, text))
    if not built:
        return []
    with transaction.atomic():
        opened = bulk_create_audited([q for q, _ in built], DataQuery, actor=actor)
        _messages_many(built, actor=actor, action=QueryAction.OPEN)
    return opened


def query_answer(*, query: DataQuery, text: str, actor) -> DataQuery:
    """The site's answer (a nurse of the query's site): open -> answered."""
    if not _may_answer(actor, query):
        raise PermissionDenied("Only the nurses of the patient's site answer its queries.")
    text = _text(text, "answer")

    def change(q):
        q.status, q.answered_by, q.answered_at = QueryStatus.ANSWERED, actor, timezone.now()

    return _step(query, actor=actor, action=QueryAction.ANSWER, text=text,
                 allowed=(QueryStatus.OPEN, QueryStatus.ANSWERED), change=change)


def query_close(*, query: DataQuery, text: str, actor, by_check: bool = False) -> DataQuery:
    """Close (data managers; the checks when the anomaly is gone, `by_check`)."""
    if not _may_manage(actor):
        raise PermissionDenied("Only data managers close queries.")
    text = _text(text, "closing note")

    def change(q):
        q.status, q.closed_by, q.closed_at = QueryStatus.CLOSED, actor, timezone.now()
        q.closed_by_check = by_check

    return _step(query, actor=actor, action=QueryAction.CLOSE, text=text,
                 allowed=LIVE_STATUSES, change=change)


def queries_close_many(pks: list[int], *, text: str, actor) -> list[DataQuery]:
    """`query_close(by_check=True)` for many queries at once (the data checks' fixed
    findings): the same status change, closing message and history rows (user `actor`,
    the same reason), written in bulk. Queries no longer live when locked (closed or
    cancelled by someone in between) are left alone; returns those closed."""
    if not _may_manage(actor):
        raise PermissionDenied("Only data managers close queries.")
    text = _text(text, "closing note")
    now = timezone.now()
    reason = f"{QueryAction.CLOSE.label}: {text[:200]}"
    with transaction.atomic():
        locked = list(DataQuery.objects.select_for_update().filter(pk__in=pks, status__in=LIVE_STATUSES)
                      .order_by("pk"))
        for query in locked:
            query.status, query.closed_by, query.closed_at = QueryStatus.CLOSED, actor, now
            query.closed_by_check = True
            attach_audit(query, actor=actor, reason=reason)
        record_bulk_update(locked, DataQuery, ["status", "closed_by", "closed_at", "closed_by_check"],
                           actor=actor, reason=reason)
        _messages_many([(query, text) for query in locked], actor=actor, action=QueryAction.CLOSE)
    return locked


def query_reopen(*, query: DataQuery, text: str, actor) -> DataQuery:
    """Back to the site (data managers): an answer that does not settle it, or a closed
    query that turns out not to be settled."""
    if not _may_manage(actor):
        raise PermissionDenied("Only data managers reopen queries.")
    text = _text(text, "reason for reopening")

    def change(q):
        q.status, q.closed_by, q.closed_at, q.closed_by_check = QueryStatus.OPEN, None, None, False

    return _step(query, actor=actor, action=QueryAction.REOPEN, text=text,
                 allowed=(QueryStatus.ANSWERED, QueryStatus.CLOSED, QueryStatus.CANCELLED),
                 change=change)


def query_cancel(*, query: DataQuery, text: str, actor) -> DataQuery:
    """Withdraw a query asked in error (data managers)."""
    if not _may_manage(actor):
        raise PermissionDenied("Only data managers cancel queries.")
    text = _text(text, "reason for cancelling")

    def change(q):
        q.status, q.closed_by, q.closed_at = QueryStatus.CANCELLED, actor, timezone.now()

    return _step(query, actor=actor, action=QueryAction.CANCEL, text=text,
                 allowed=LIVE_STATUSES, change=change)


def record_of(query: DataQuery):
    """The record a query points at (None when it was deleted since)."""
    record_type = RECORD_TYPES.get(query.record_type)
    if record_type is None:
        return None
    return record_type.model.objects.filter(pk=query.record_id).first()


def record_load(*, record_type: str, record_id, user):
    """The record of `record_type` with pk `record_id` among those `user` may see, or a
    ValidationError naming the parameter (an unknown record and one at another site look
    the same)."""
    found = RECORD_TYPES.get(record_type)
    if found is None:
        raise ValidationError({"record_type": f"Unknown record type '{record_type}'; expected one "
                                              f"of {', '.join(RECORD_TYPES)}."})
    try:
        pk = int(record_id)
    except (TypeError, ValueError):
        raise ValidationError({"record_id": f"'{record_id}' is not a record id (a whole number)."}) \
            from None
    if not 0 < pk < 2**63:
        raise ValidationError({"record_id": f"'{record_id}' is not a record id."})
    qs = access.visible(found.model.objects.select_related(*found.related), user)
    record = qs.filter(pk=pk).first()
    if record is None:
        raise ValidationError({"record_id": f"No {record_type} {pk} at your sites."})
    return record


def live_queries_on(record) -> QuerySet:
    """The open or answered queries on `record` (for its admin page)."""
    record_type = record_type_of(record)
    return DataQuery.objects.live().filter(record_type=record_type.name, record_id=record.pk)


def queries_of_patient(patient) -> QuerySet:
    return DataQuery.objects.filter(patient=patient)


@dataclasses.dataclass(frozen=True)
class DigestQuery:
    """An open query as the site's digest lists it: the record and field, never the
    message text (free text may name the patient; e-mail leaves the registry)."""

    registry_id: str
    record_key: str
    field: str
    rule: str
    age_days: int
    admin_url: str


def digest_queries(site, *, now=None) -> list[DigestQuery]:
    """The site's queries waiting for the site (open), oldest first, for its daily digest."""
    from django.urls import reverse

    now = now or timezone.now()
    rows = (DataQuery.objects.filter(patient__site_id=site.pk, status=QueryStatus.OPEN)
            .order_by("opened_at", "pk")
            .values_list("pk", "patient__registry_id", "record_key", "field", "rule", "opened_at"))
    template = reverse("admin:registry_dataquery_change", args=[0]).replace("/0/", "/{}/")
    base = settings.SITE_URL.rstrip("/")
    return [DigestQuery(registry_id, key, field, rule, (now - opened).days,
                        base + template.format(pk))
            for pk, registry_id, key, field, rule, opened in rows]

"""Saving clinical rows with their audit trail, in every channel.

`record_save` and `record_delete` are the only way services write clinical
rows: they validate (`full_clean`), refuse stale edits (optimistic locking on
`version`), require a reason when data that was already complete is changed,
and put the acting user and the reason on the history row, also where there is
no request (commands, tasks, imports). Jobs that write many rows at once
(schedules, the missed-visit job, imports) use `bulk_create_audited` and
`record_bulk_update`, which write the same history rows.

This module is the only one that sets `version` or `updated_at` or calls
simple-history's bulk helpers (tests/test_architecture.py keeps it so).
"""

import contextvars
import enum
import operator

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import connection, models, transaction
from django.utils import timezone
from simple_history.utils import bulk_create_with_history, bulk_update_with_history

from registry.models import AdverseEvent, PromAnswer, Visit, VisitStatus
from registry.models.base import array_literal, unsaved_factory
from registry.models.events import CLOSED_OUTCOMES

SYSTEM_USERNAME = "registry-system"


class StaleEdit(ValidationError):
    """Someone else saved the record after this edit started."""


def system_user():
    """The user tasks and scheduled jobs act as (inactive: it cannot log in)."""
    User = get_user_model()
    user, _ = User.objects.get_or_create(
        username=SYSTEM_USERNAME,
        defaults={"is_active": False, "first_name": "Registry", "last_name": "scheduler"},
    )
    return user


def was_complete(row) -> bool:
    """Data that needs a reason to change (ICH E6(R3)): completed visits and
    closed adverse events."""
    if isinstance(row, Visit):
        return row.status == VisitStatus.COMPLETED
    if isinstance(row, AdverseEvent):
        return row.outcome in CLOSED_OUTCOMES
    if isinstance(row, PromAnswer):  # an answer given at a completed visit
        return row.visit.status == VisitStatus.COMPLETED
    return False


def attach_audit(instance, *, actor, reason: str = ""):
    """Set the history user and reason simple-history reads at save time."""
    instance._history_user = actor
    instance._change_reason = reason or ""


def record_save(instance, *, actor, reason: str = "", expected_version: int | None = None,
                exclude: list[str] | None = None, validate: bool = True, touch: bool = False):
    """Validate and save `instance` as `actor`, with history.

    Refuses (ValidationError) when the row changed since `expected_version` was
    read, or when a completed visit / closed event is changed without a reason.
    A save that changes no stored value writes nothing: no history row, no new
    version, no new `updated_at` - unless `touch` (a row hanging off this one
    changed, and this row's trail records it).
    """
    reason = (reason or "").strip()
    with transaction.atomic():
        validated = False
        if instance.pk:
            current = type(instance).objects.select_for_update().filter(pk=instance.pk).first()
            if current is not None:
                version = instance.version if expected_version is None else expected_version
                if current.version != version:
                    raise StaleEdit(
                        f"This {instance._meta.verbose_name} was changed by someone else "
                        "while you were editing it. Reload the page to see their change, "
                        "then enter yours again.",
                        code="stale",
                    )
                if validate:
                    # Values as they will be stored (a form or a service may pass text).
                    instance.full_clean(exclude=exclude)
                    validated = True
                if not touch and not _changed(current, instance):
                    instance.version = current.version
                    if hasattr(current, "updated_at"):
                        instance.updated_at = current.updated_at
                    return instance
                if was_complete(current) and not reason:
                    raise ValidationError(
                        {"__all__": "This record was already complete: give a reason for the change."},
                        code="reason_required",
                    )
                instance.version = current.version + 1
        if validate and not validated:
            instance.full_clean(exclude=exclude)
        attach_audit(instance, actor=actor, reason=reason)
        instance.save()
    return instance


def _changed(current, instance) -> bool:
    """Whether `instance` would store any value other than the row `current` holds
    (the bookkeeping fields `version` and `updated_at` aside)."""
    for field in instance._meta.concrete_fields:
        if field.primary_key or field.name in ("version", "updated_at"):
            continue
        if field.value_from_object(current) != field.value_from_object(instance):
            return True
    return False


# The user and reason of the record_delete under way, for the rows it cascades to.
_deleting: contextvars.ContextVar = contextvars.ContextVar("registry_deleting", default=None)


def record_delete(instance, *, actor, reason: str = ""):
    """Delete `instance` as `actor` with `reason`; the rows the delete cascades to
    (a patient's visits, pain scores, identifiers...) get the same user and reason
    in their history's deletion rows."""
    attach_audit(instance, actor=actor, reason=reason)
    token = _deleting.set((actor, reason))
    try:
        instance.delete()
    finally:
        _deleting.reset(token)


def cascade_audit(sender, instance, **kwargs):
    """pre_delete receiver (connected in apps.py): Django's collector loads the
    cascaded rows itself, so nobody set their history user and reason."""
    deleting = _deleting.get()
    if deleting is not None and not hasattr(instance, "_change_reason"):
        actor, reason = deleting
        attach_audit(instance, actor=actor, reason=reason)


def bulk_create_audited(objs: list, model, *, actor, reason: str = "", batch_size: int = 1000) -> list:
    """Insert many new rows of a clinical model with their creation history rows.

    The same rows simple-history's `bulk_create_with_history` writes (history
    type "+", `actor`, each row's own `_change_reason` or `reason`), but on
    PostgreSQL through `COPY ... FROM STDIN` into the model's table, with the ids
    reserved from its sequence first, and the history rows made from the rows
    just written by one `INSERT ... SELECT` (each row's user and reason its own): an import of
    10,000 patients writes ~400,000 rows, and Django's per-field INSERT
    preparation and psycopg's array dumping made that minutes instead of
    seconds. A fixed number of queries per call. Sets each object's pk.
    Other databases take simple-history's own path.
    """
    if not objs:
        return objs
    if connection.vendor != "postgresql":
        bulk_create_with_history(objs, model, batch_size=batch_size, default_user=actor,
                                 default_change_reason=reason)
        _after_bulk(model, objs)
        return objs
    now = timezone.now()
    fields = list(model._meta.concrete_fields)
    for field in fields:
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            for obj in objs:
                setattr(obj, field.attname, now)
    ids = _reserve_ids(model, len(objs))
    for obj, pk in zip(objs, ids, strict=True):
        obj.pk = pk
    _copy_rows(model, fields, _db_rows(objs, fields))
    # The history rows are the rows just written, read back by the server
    # (INSERT ... SELECT): the same tracked values, without building and sending
    # each row twice. Each row's (user, reason) is sent as its number in a short
    # list: one statement, also when every row has a reason of its own (the data
    # checks' queries).
    actor_id = getattr(actor, "pk", None)
    groups: dict[tuple, int] = {}
    numbers = [groups.setdefault((getattr(getattr(obj, "_history_user", None), "pk", actor_id),
                                  getattr(obj, "_change_reason", "") or reason or ""), len(groups))
               for obj in objs]
    # The pk range (implied by the join) lets the planner read only these rows by the pk
    # index: without it, with no statistics yet for rows just written, it hashed the
    # whole table for each batch (95,000 visits for the last 5,000; issue 21).
    pk = connection.ops.quote_name(model._meta.pk.column)
    source = (f"{connection.ops.quote_name(model._meta.db_table)} JOIN "
              "unnest(%(audit_pks)s::bigint[], %(audit_numbers)s::int[]) AS audit(audit_pk, audit_no) "
              f"ON {pk} = audit.audit_pk AND {pk} BETWEEN %(audit_low)s AND %(audit_high)s")
    sql = _creation_history_sql(model, source=source,
                                reason="(%(audit_reasons)s::text[])[audit.audit_no + 1]",
                                user="(%(audit_users)s::bigint[])[audit.audit_no + 1]")
    with connection.cursor() as cursor:
        cursor.execute(sql, {"audit_pks": array_literal(obj.pk for obj in objs),
                             "audit_low": ids[0], "audit_high": ids[-1],
                             "audit_numbers": array_literal(numbers),
                             "audit_reasons": array_literal(why for _user, why in groups),
                             "audit_users": array_literal(user for user, _why in groups),
                             "history_date": now})
    alias = connection.alias  # (the connection proxy's lookup, once: 100,000 objects)
    for obj in objs:
        obj._state.adding = False
        obj._state.db = alias
    _after_bulk(model, objs)
    return objs


def _after_bulk(model, objs: list) -> None:
    """Bulk writes send no signals: the PROM sheets of bulk-written answers follow here
    (services.proms.stored), as a saved answer's do by its signal."""
    if model is PromAnswer:
        from registry.services.proms.stored import sheets_refresh

        sheets_refresh(obj.visit_id for obj in objs)


def record_bulk_update(objs: list, model, fields: list[str], *, actor, reason: str = "",
                       batch_size: int = 1000) -> int:
    """Save `fields` of many existing rows of a clinical model, with history.

    Each row's `version` goes up by one (an edit form opened before is then
    refused as stale) and `updated_at` becomes now (bulk updates skip auto_now;
    `updated_since` reads it); both are saved with `fields`. One history row
    ("~") per object, by the object's own `_history_user` or `actor`, with its
    own `_change_reason` (attach_audit) or `reason`. Neither validates nor
    compares versions: the caller has locked the rows and checked them. Returns
    the number of rows updated.
    """
    now = timezone.now()
    for obj in objs:
        obj.version += 1
        obj.updated_at = now
    fields = list(dict.fromkeys([*fields, "version", "updated_at"]))
    updated = bulk_update_with_history(objs, model, fields, batch_size=batch_size, default_user=actor,
                                       default_change_reason=reason)
    _after_bulk(model, objs)
    return updated


def _reserve_ids(model, count: int) -> list[int]:
    pk = model._meta.pk.column
    with connection.cursor() as cursor:
        # The sequence looked up once (OFFSET 0 keeps the planner from inlining the
        # lookup into every row: 7x the time of nextval itself, 0.5 s per import).
        cursor.execute(
            "SELECT nextval(s.seq) FROM (SELECT pg_get_serial_sequence(%s, %s)::regclass AS seq"
            " OFFSET 0) AS s, generate_series(1, %s)",
            [model._meta.db_table, pk, count])
        return sorted(row[0] for row in cursor.fetchall())


def _db_rows(objs: list, fields: list):
    """The objects' values in `fields` order, as COPY writes them: read with one
    attrgetter per object; only JSON and choices fields need converting (_db_value)."""
    get = operator.attrgetter(*[f.attname for f in fields])
    convert = [(i, f) for i, f in enumerate(fields)
               if isinstance(f, models.JSONField) or f.choices]
    if len(fields) == 1:
        rows = ([get(obj)] for obj in objs)
    else:
        rows = (list(get(obj)) for obj in objs)
    plain = (str, int, type(None))  # choices' codes already as stored
    for row in rows:
        for i, field in convert:
            if row[i].__class__ not in plain:
                row[i] = _db_value(field, row[i])
        yield row


def _creation_history_sql(model, *, source: str, reason: str, user: str) -> str:
    """The INSERT ... SELECT writing the creation history rows ("+") of the rows of
    `model` that `source` (a FROM item with the model's columns) yields, from their
    stored values: the tracked columns simple-history's bulk path writes, history_date
    %(history_date)s, `reason` and `user` SQL over `source`, history ids from the
    history table's sequence in the rows' pk order."""
    quote = connection.ops.quote_name
    history_model = model.history.model
    tracked = [(history_model._meta.get_field(f.name).column, f.column)
               for f in history_model.tracked_fields]
    history_pk = history_model._meta.pk.column
    target = ", ".join(quote(h) for h, _ in tracked)
    values = ", ".join(quote(c) for _, c in tracked)
    sequence = f"pg_get_serial_sequence('{history_model._meta.db_table}', '{history_pk}')"
    return (f"INSERT INTO {quote(history_model._meta.db_table)} ({target}, {quote(history_pk)}, "
            "history_date, history_change_reason, history_type, history_user_id) "
            f"SELECT {values}, nextval({sequence}), %(history_date)s, {reason}, '+', {user} "
            f"FROM {source} ORDER BY {quote(model._meta.pk.column)}")


def create_from_select_audited(model, *, values: dict[str, str], source: str, order_by: str,
                               params: dict, actor, reason: str, count_by: str) -> dict:
    """Insert the rows the server makes from `source` (a FROM clause, with its WHERE),
    with their creation history rows, in one statement (PostgreSQL only): what
    bulk_create_audited writes for the same rows, without building them in Python.

    `values`: column -> SQL expression over `source`; every other field stores what an
    unsaved instance holds (its defaults), the auto_now fields and history_date now;
    the pk comes from the table's sequence, in `order_by` order. `reason`: the
    history reason, an SQL expression over the new row's columns. `params`: named
    parameters of the SQL pieces. Returns the number of new rows per value of the
    column `count_by`."""
    quote = connection.ops.quote_name
    now = timezone.now()
    template = unsaved_factory(model)()
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    defaults = next(_db_rows([template], fields))
    columns, selected = [], []
    for field, default in zip(fields, defaults, strict=True):
        columns.append(quote(field.column))
        if field.column in values:
            selected.append(values[field.column])
        elif getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            selected.append("%(history_date)s")
        else:
            name = f"default_{field.column}"
            params = {**params, name: default}
            selected.append(f"%({name})s::{field.cast_db_type(connection)}")
    history = _creation_history_sql(model, source="new", reason=reason,
                                    user="%(history_user)s::bigint")
    sql = (f"WITH new AS (INSERT INTO {quote(model._meta.db_table)} ({', '.join(columns)}) "
           f"SELECT {', '.join(selected)} FROM {source} ORDER BY {order_by} RETURNING *), "
           f"history AS ({history}) "
           f"SELECT {quote(count_by)}, count(*) FROM new GROUP BY 1")
    with transaction.atomic(), connection.cursor() as cursor:
        # For this statement only (a failure rolls the savepoint back, settings with
        # it): the planner's cost of 150,000 rows turns JIT on (~1 s of compiling),
        # and their sorts spilled to disk with the default work_mem.
        cursor.execute("SELECT current_setting('jit'), current_setting('work_mem'), "
                       "set_config('jit', 'off', true), set_config('work_mem', '64MB', true)")
        jit, work_mem, *_ = cursor.fetchone()
        cursor.execute(sql, {**params, "history_date": now,
                             "history_user": getattr(actor, "pk", None)})
        counts = dict(cursor.fetchall())
        cursor.execute("SELECT set_config('jit', %s, true), set_config('work_mem', %s, true)",
                       [jit, work_mem])
    return counts


def _db_value(field, value):
    if value is None:
        return None
    if isinstance(field, models.JSONField):
        return field.get_db_prep_save(value, connection)
    if isinstance(value, enum.Enum):  # choices members: store the code
        return value.value
    return value


def _copy_rows(model, fields, rows) -> None:
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in fields)
    # The wrapper's .cursor is psycopg's own cursor, which speaks COPY; its errors
    # are psycopg's, so they are mapped to Django's (callers catch IntegrityError).
    with connection.cursor() as cursor, connection.wrap_database_errors:
        with cursor.cursor.copy(f"COPY {quote(model._meta.db_table)} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

"""Pieces every clinical model shares: audit history, timestamps, optimistic locking."""

import datetime

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, models
from django.db.models import signals
from django.db.models.base import ModelState
from django.db.models.expressions import RawSQL
from django.utils import timezone
from simple_history.models import HistoricalRecords


def today_anywhere() -> datetime.date:
    """The latest calendar date at any site on Earth (UTC+14), for "not in the
    future" checks: the server's UTC date would refuse a visit done today in
    Amsterdam between midnight and 01:00 local time."""
    return (timezone.now() + datetime.timedelta(hours=14)).date()


def array_literal(values) -> str:
    """`values` (ints, dates, bools, text or None) as the text of a PostgreSQL array, to be
    sent as one string and cast (`%s::bigint[]`): psycopg dumps a Python list element by
    element in Python, ~0.5 s for 150,000 ints, where this join takes a tenth of it."""
    def element(value) -> str:
        if value is None:
            return "NULL"
        if value is True or value is False:
            return "t" if value else "f"
        if isinstance(value, str):
            return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return str(value)  # int, date (ISO)

    values = list(values)
    if values and all(type(v) is int for v in values):
        return "{" + ",".join(map(str, values)) + "}"
    return "{" + ",".join(map(element, values)) + "}"


def pk_list(pks):
    """The right-hand side of an `__in` of many pks: on PostgreSQL one array parameter
    (`IN (SELECT unnest(...))`) instead of one placeholder per pk. With 10,000 pks the
    placeholders cost the driver ~60 ms per query, and the planner, with no
    statistics yet for rows an import has just written, chose a nested loop over a
    10,000-row IN list (5 s per data check, issue 21)."""
    pks = list(pks)
    if connection.vendor == "postgresql":
        return RawSQL("SELECT unnest(%s::bigint[])", [array_literal(pks)])
    return pks


def history(**kwargs):
    """Audit trail for a clinical model (who, when in UTC, what, why).

    The actor column has no foreign-key constraint in the database: accounts are
    deactivated, never deleted (admin/accounts.py), so the constraint guarded nothing,
    and it cost one deferred check per history row at every commit (~280,000 for an
    import of 10,000 patients, issue 21). The ORM relation (history_user__username)
    and its index stay."""
    return HistoricalRecords(inherit=False, user_db_constraint=False, **kwargs)


class ClinicalModel(models.Model):
    """A row of clinical data: timestamped and versioned.

    `version` increases on every save through the services; a save that started
    from an older version is refused (no lost updates, see services.audit).
    """

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)
    version = models.PositiveIntegerField(default=1, editable=False)

    class Meta:
        abstract = True


def unsaved_factory(model):
    """A maker of unsaved `model` instances that are what `model(**values)` builds,
    without Model.__init__'s per-field walk (most of the time of building 100,000
    visits, issue 21): a copy of one instance's defaults, callable defaults called
    per instance, relations set through their descriptors as __init__ does.
    Plain __init__ when a pre_init/post_init receiver listens for the model.
    tests/services/test_import_speed.py compares both ways for every bundle model."""
    if signals.pre_init.has_listeners(model) or signals.post_init.has_listeners(model):
        return model
    template = {k: v for k, v in model().__dict__.items() if k != "_state"}
    fresh = [(f.attname, f.get_default) for f in model._meta.concrete_fields
             if f.has_default() and callable(f.default)]
    relations = {f.name for f in model._meta.concrete_fields if f.is_relation}
    # Many-to-one relations set as their descriptor sets them without routers (the id,
    # the cache, both rows' database): the descriptor's checks and router calls were a
    # fifth of building an import's 100,000 visits (issue 21).
    direct = {} if settings.DATABASE_ROUTERS else {
        f.name: (f.attname, f.remote_field.model._meta.concrete_model,
                 f.target_field.attname)
        for f in model._meta.concrete_fields
        if f.is_relation and f.many_to_one and len(f.related_fields) == 1}
    new = model.__new__

    def make(**values):
        obj = new(model)
        state = obj.__dict__
        state.update(template)
        for attname, default in fresh:
            state[attname] = default()
        obj._state = own = ModelState()
        for name, value in values.items():
            fast = direct.get(name)
            if fast is not None and value is None:
                state[fast[0]] = None
                own.fields_cache[name] = None
            elif fast is not None and isinstance(value, fast[1]) and (
                    own.db is None or value._state.db in (None, own.db)):
                own.db = own.db or value._state.db or DEFAULT_DB_ALIAS
                if value._state.db is None:
                    value._state.db = own.db
                state[fast[0]] = getattr(value, fast[2])
                own.fields_cache[name] = value
            elif name in relations:  # (the descriptor refuses what the fast path leaves)
                setattr(obj, name, value)
            else:  # a plain field: its name is its attname
                state[name] = value
        return obj

    return make

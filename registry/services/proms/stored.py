"""The PROM sheet (models.PromSheet): each visit's answers and scores in one derived row.

Written from the answers by the SQL that scored them on read before (services.proms.sql:
the same declarations, value sets and rounding), so a stored score is the computed score.
Read by the datasets, REDCap, FHIR and the PROM outcomes (issue 21: computing nine scores
from 24 M answers per request made every visit-level channel PROM-bound).

Kept in step with the answers:
- a saved or deleted PromAnswer (admin, ePRO, the answer service, a history revert, a
  cascade) rewrites its visit's sheet (signals below), once per block inside
  `sheets_deferred()` (the answer service writes an instrument's items in one);
- bulk writes (services.audit.bulk_create_audited / record_bulk_update: imports, the
  synthetic registry) send no signals and rewrite the sheets of their visits there;
- `manage.py prom_sheets --check` compares every sheet with its answers, `--rebuild`
  rewrites them all (after a change of a scoring rule: ALGORITHM_VERSION).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from weakref import WeakKeyDictionary

from django.db import connection, transaction
from django.db.models import Count, Max, Min, Q, QuerySet
from django.db.models.signals import post_delete, post_save

from registry.models import PromAnswer, PromSheet, Visit
from registry.models.instruments import INSTRUMENTS, SCORES, VALUE_SETS
from registry.models.proms import sheet_item, sheet_rows, sheet_score, sheet_updated

from .sql import ANSWERS, _answers_of, _scored

# Visits whose sheet is rewritten when the innermost `sheets_deferred()` block ends.
_pending: ContextVar[set[int] | None] = ContextVar("prom_sheets_pending", default=None)

CHUNK = 20_000  # visits per INSERT ... SELECT of a rebuild (bounded server memory)
IDS_PER_QUERY = 900  # SQLite's bound on parameters per statement is 999


def computed(visits: QuerySet) -> QuerySet:
    """Every sheet column of `visits` that hold answers, computed from their answers in one
    grouped query (a values() queryset: "pk" and the sheet's column names)."""
    columns = {}
    for code, instrument in INSTRUMENTS.items():
        of = Q(prom_answers__instrument=code)
        columns[sheet_rows(code)] = Count("prom_answers", filter=of)
        columns[sheet_updated(code)] = Max("prom_answers__updated_at", filter=of)
        for item in instrument.items:
            columns[sheet_item(code, item.code)] = Max(
                "prom_answers__value", filter=of & Q(prom_answers__item=item.code))
    for code, (instrument, score) in SCORES.items():
        for value_set in (VALUE_SETS if score.method == "index" else [None]):
            name = sheet_score(code, value_set) if value_set else code
            columns[name] = _scored(score, value_set, _answers_of(instrument, score, ANSWERS), ANSWERS)
    return visits.filter(prom_answers__isnull=False).order_by().annotate(**columns).values("pk", *columns)


def _insert_sql(visits: QuerySet) -> tuple[str, list]:
    """INSERT INTO the sheet the computed rows of `visits` (one statement, server side)."""
    compiler = computed(visits).query.get_compiler(connection.alias)
    sql, params = compiler.as_sql()
    # The select's own column order (values() with annotations may reorder).
    names = [alias for _, _, alias in compiler.select]
    columns = ", ".join(connection.ops.quote_name("visit_id" if name == "pk" else name) for name in names)
    table = connection.ops.quote_name(PromSheet._meta.db_table)
    return f"INSERT INTO {table} ({columns}) {sql}", list(params)


SENTINEL = -7_300_000  # stand-in visit ids of a remembered statement (never a real pk)


@lru_cache(maxsize=16)
def _insert_template(vendor: str, count: int) -> tuple[str, list, tuple[int, ...]]:
    """The statement for `count` visit ids, compiled once: building the ~100 score
    expressions took ~100 ms per call, 10x the statement itself, on every answer saved.
    Returns the SQL, its parameters and where the ids go among them."""
    ids = [SENTINEL - i for i in range(count)]
    sql, params = _insert_sql(Visit.objects.filter(pk__in=ids))
    places = tuple(i for i, value in enumerate(params) if isinstance(value, int) and value <= SENTINEL
                   and value > SENTINEL - count)
    if sorted(params[i] for i in places) != sorted(ids):  # pragma: no cover - a Django change
        raise RuntimeError("the PROM sheet statement's visit ids could not be placed")
    return sql, params, places


def _insert_ids(ids: list[int]) -> None:
    sql, template, places = _insert_template(connection.vendor, len(ids))
    params = list(template)
    by_sentinel = {SENTINEL - i: pk for i, pk in enumerate(ids)}
    for place in places:
        params[place] = by_sentinel[template[place]]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _insert(visits: QuerySet) -> None:
    sql, params = _insert_sql(visits)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def sheets_refresh(visit_ids: Iterable[int]) -> None:
    """Rewrite the sheets of these visits from their answers (a visit without answers is
    left without a sheet). A few statements per 900 visits."""
    ids = sorted({pk for pk in visit_ids if pk is not None})
    if not ids:
        return
    with transaction.atomic():
        for start in range(0, len(ids), IDS_PER_QUERY):
            chunk = ids[start:start + IDS_PER_QUERY]
            # No model delete: nothing cascades from a sheet, and collecting ~100 columns
            # per row first doubled the cost of an answer's save.
            PromSheet.objects.filter(visit_id__in=chunk)._raw_delete(connection.alias)
            _insert_ids(chunk)


def sheets_rebuild() -> int:
    """Rewrite every sheet (a migration's back-fill, a changed scoring rule); returns the
    number of sheets. By ranges of visit ids, so no statement holds the whole registry."""
    with transaction.atomic():
        PromSheet.objects.all()._raw_delete(connection.alias)
        top = PromAnswer.objects.aggregate(top=Max("visit_id"))["top"] or 0
        for low in range(0, top + 1, CHUNK):
            _insert(Visit.objects.filter(pk__gte=low, pk__lt=low + CHUNK))
    return PromSheet.objects.count()


def sheets_differing(visits: QuerySet | None = None) -> Iterator[tuple[int, str, object, object]]:
    """(visit id, column, stored, computed) for every difference between the stored sheets
    and the answers (a missing or surplus sheet is reported as column "sheet"). By ranges
    of CHUNK visit ids, so memory holds one range's sheets, not the registry's."""
    visits = Visit.objects.all() if visits is None else visits
    names = [f.attname for f in PromSheet._meta.concrete_fields if f.attname != "visit_id"]
    bounds = visits.order_by().aggregate(low=Min("pk"), high=Max("pk"))
    if bounds["low"] is None:
        return
    for low in range(bounds["low"], bounds["high"] + 1, CHUNK):
        part = visits.filter(pk__gte=low, pk__lt=low + CHUNK)
        stored = {row["visit_id"]: row for row in
                  PromSheet.objects.filter(visit__in=part.values("pk")).values("visit_id", *names)}
        for row in computed(part).iterator(chunk_size=2000):
            held = stored.pop(row["pk"], None)
            if held is None:
                yield row["pk"], "sheet", None, "missing"
                continue
            for name in names:
                if not _same(held[name], row[name]):
                    yield row["pk"], name, held[name], row[name]
        for pk in stored:
            yield pk, "sheet", "surplus", None


def _same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and abs(a - b) < 1e-9
    return a == b


@contextmanager
def sheets_deferred():
    """Rewrite the sheets of the answers saved or deleted in the block once, at its end
    (the outermost block, when blocks nest); nothing when the block raises (its
    transaction is rolled back with the answers)."""
    if _pending.get() is not None:
        yield
        return
    pending: set[int] = set()
    token = _pending.set(pending)
    try:
        yield
    finally:
        _pending.reset(token)
    sheets_refresh(pending)


def _answer_changed(sender, instance, **kwargs):
    if kwargs.get("raw"):  # loaddata: the fixture's sheets are rebuilt by the command
        return
    origin = kwargs.get("origin")  # what a delete started from
    from_answers = isinstance(origin, PromAnswer) or getattr(origin, "model", None) is PromAnswer
    if origin is not None and not from_answers:
        return  # the visit (or its patient) is deleted: its sheet goes with it (cascade)
    pending = _pending.get()
    if pending is not None:
        pending.add(instance.visit_id)
        return
    if origin is not None and not isinstance(origin, PromAnswer):
        # A queryset's delete removes all its rows before the first post_delete: the first
        # signal of a visit already sees what is left of its answers.
        done = _refreshed_by.setdefault(origin, set())
        if instance.visit_id in done:
            return
        done.add(instance.visit_id)
    sheets_refresh([instance.visit_id])


_refreshed_by: WeakKeyDictionary = WeakKeyDictionary()  # a queryset delete -> its visits done


def connect() -> None:
    """Connected once at start (RegistryConfig.ready)."""
    post_save.connect(_answer_changed, sender=PromAnswer, dispatch_uid="prom_sheet_save")
    post_delete.connect(_answer_changed, sender=PromAnswer, dispatch_uid="prom_sheet_delete")

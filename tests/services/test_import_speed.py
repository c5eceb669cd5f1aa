"""Issue 21: the import's fast paths must be the slow paths' twins.

- bulk scheduling gives the visits the per-implant scheduler gives (a grid of implant
  dates, explants and withdrawals, scheduled both ways);
- the validator's remembered field checks say what Model.clean_fields says (a grid of
  values), and its template-built instances are what Model(**values) builds;
- each stage of an import takes a number of queries that does not grow with the
  number of patients.
"""

import datetime
import importlib.util
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from registry.models import (
    AdverseEvent,
    ConsentStatus,
    DeviceComponent,
    Disposition,
    DispositionStatus,
    Implant,
    PainScore,
    Patient,
    ProgrammingSession,
    PromAnswer,
    Visit,
    VisitStatus,
)
from registry.models.base import array_literal, unsaved_factory
from registry.services import scheduling
from registry.services.audit import record_save, system_user
from registry.services.dates import add_months
from registry.services.disposition import disposition_record
from registry.services.imports import bundle_import
from registry.services.imports.checks import clean_fields_remembered
from registry.services.scheduling import implants_schedule_bulk
from tests.factories import make_implant, make_patient, make_site, make_visit

D = datetime.date
ROOT = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------- scheduling both ways

IMPLANT_DATES = [D(2016, 8, 31), D(2019, 12, 31), D(2020, 1, 31), D(2020, 2, 29), D(2021, 3, 15)]


def _schedule_rows(implant):
    return sorted(Visit.objects.filter(implant=implant).values_list(
        "timepoint", "target_date", "window_start", "window_end", "status", "visit_missing"))


@pytest.mark.django_db
@pytest.mark.parametrize("explant", [False, True])
@pytest.mark.parametrize("withdrawn", [False, True])
def test_bulk_scheduling_gives_the_visits_the_per_implant_scheduler_gives(site_a, explant, withdrawn):
    actor = system_user()
    compared = 0
    for implant_date in IMPLANT_DATES:
        extra = {}
        if explant:
            extra = {"explant_date": implant_date + datetime.timedelta(days=3 * 365 + 17),
                     "explant_reason_code": "loss_of_efficacy"}
        patient_kw = {"consent_date": D(2015, 1, 1)}
        if withdrawn:
            patient_kw.update(consent_status=ConsentStatus.WITHDRAWN,
                              withdrawal_date=implant_date + datetime.timedelta(days=2 * 365))
        one_by_one = make_patient(site_a, **patient_kw)
        in_bulk = make_patient(site_a, **patient_kw)
        implant_kw = {"therapy": "SCS", "trial_start": None, "trial_end": None,
                      "implant_date": implant_date, **extra}
        synced = make_implant(one_by_one, **implant_kw)  # implant_save: the per-implant scheduler
        bulk = Implant(patient=in_bulk, ref=f"{in_bulk.registry_id}-I1", **implant_kw)
        record_save(bulk, actor=actor, reason="import")  # as the importer: no schedule yet
        # A day before every window, so none is "closed before the import".
        implants_schedule_bulk(implants=[bulk], actor=actor, reason="import", today=D(2000, 1, 1))
        expected = _schedule_rows(synced)
        assert expected, implant_date
        assert _schedule_rows(bulk) == expected, (implant_date, explant, withdrawn)
        compared += len(expected)
    assert compared > 20


# The server's schedule (PostgreSQL) against the one built in Python, on the same implants:
# month ends and leap days, explants, withdrawals, deaths, visits already there, and two
# sites a day apart. At NOW it is already 16 June at Kiritimati (UTC+14) and still 14 June
# at Pago Pago (UTC-11): a window ending on 15 June is closed at one, open at the other.
NOW = datetime.datetime(2024, 6, 15, 10, 30, tzinfo=datetime.UTC)
GRID_DATES = [*IMPLANT_DATES, D(2023, 1, 30), D(2024, 1, 31), D(2024, 2, 29), D(2024, 3, 31)]
# Every day of four months at both sites: windows ending on each site's own day and around it.
DENSE = [D(2024, 2, 1) + datetime.timedelta(days=n) for n in range(121)]
STOPS = ["none", "explant", "withdrawn", "deceased", "visit there"]


class _Undo(Exception):
    pass


def _grid_implants(actor) -> dict[int, str]:
    """implant pk -> its kind of stop (STOPS), in the order made."""
    east = make_site("KIR", timezone="Pacific/Kiritimati")
    west = make_site("PPG", timezone="Pacific/Pago_Pago")
    ids = {}
    grid = []
    for n, implant_date in enumerate(GRID_DATES * len(STOPS)):
        # Inside the m12 window: a death ends it, an explant or a withdrawal does not.
        grid.append((implant_date, STOPS[n % len(STOPS)], (east, west)[n % 2],
                     add_months(implant_date, 12) + datetime.timedelta(days=n % 3)))
    grid += [(day, "none", site, None) for day in DENSE for site in (east, west)]
    # Stops on the first and last day of a window.
    m12 = next(tp for tp in scheduling.protocol_for(site=east).timepoints.all() if tp.months == 12)
    slot = scheduling.timepoint_slot(implant_date=D(2021, 3, 15), timepoint=m12)
    grid += [(D(2021, 3, 15), stop, east, day) for stop in ("explant", "withdrawn", "deceased")
             for day in (slot.start - datetime.timedelta(days=1), slot.start, slot.end)]
    for implant_date, stop, site, later in grid:
        patient = make_patient(site, consent_date=D(2015, 1, 1),
                               **({"consent_status": ConsentStatus.WITHDRAWN,
                                   "withdrawal_date": later} if stop == "withdrawn" else {}))
        if stop == "deceased":  # before the implant: recording it schedules her implants
            disposition_record(disposition=Disposition(patient=patient,
                                                       status=DispositionStatus.DECEASED,
                                                       date=later, death_cause="cancer",
                                                       death_device_relatedness="not_related",
                                                       death_procedure_relatedness="not_related"),
                               actor=actor, reason="test")
        implant = Implant(patient=patient, ref=f"{patient.registry_id}-I1", therapy="SCS",
                          implant_date=implant_date,
                          **({"explant_date": later, "explant_reason_code": "loss_of_efficacy"}
                             if stop == "explant" else {}))
        record_save(implant, actor=actor, reason="import")  # as the importer: no schedule yet
        if stop == "visit there":
            make_visit(patient, implant, timepoint="m3", date_done=implant_date + datetime.timedelta(
                days=92), nrs=4)
        ids[implant.pk] = stop
    return ids


def _scheduled(path, implant_ids, actor):
    """What `path` writes for the implants (visits and their history, in pk order, without
    the pks), undone afterwards."""
    visit_fields = [f.attname for f in Visit._meta.concrete_fields if not f.primary_key]
    history_fields = [f.attname for f in Visit.history.model._meta.concrete_fields
                      if f.attname not in ("id", "history_id")]
    before = set(Visit.objects.values_list("pk", flat=True))
    try:
        with transaction.atomic():
            plan = scheduling._bulk_plan(implant_ids, None)
            change = path(plan, actor=actor, reason="Follow-up schedule (import)",
                          past_reason="Retrospective import (import)")
            new = Visit.objects.exclude(pk__in=before).order_by("pk")
            visits = list(new.values_list(*visit_fields))
            history = list(Visit.history.filter(id__in=new.values("pk")).order_by("history_id")
                           .values_list(*history_fields))
            raise _Undo
    except _Undo:
        pass
    return change, visits, history


@pytest.mark.django_db
def test_the_server_schedules_the_visits_and_history_python_builds(monkeypatch, is_postgres):
    if not is_postgres:
        pytest.skip("the server's schedule is PostgreSQL's; SQLite only has the Python one")
    actor = system_user()
    stops = _grid_implants(actor)
    implant_ids = list(stops)
    monkeypatch.setattr(timezone, "now", lambda: NOW)
    server = _scheduled(scheduling._schedule_on_server, implant_ids, actor)
    python = _scheduled(scheduling._schedule_here, implant_ids, actor)
    assert server[0] == python[0]
    assert server[1] == python[1]
    assert server[2] == python[2]
    change, visits, history = server
    assert change.created > 100 and change.past > 100
    assert len(visits) == len(history) == change.created + change.past
    status, end = (Visit._meta.get_field(name).attname for name in ("status", "window_end"))
    rows = [dict(zip([f.attname for f in Visit._meta.concrete_fields if not f.primary_key], v,
                     strict=True)) for v in visits]
    # The grid reaches what it is for: the day at each site, and every kind of stop.
    site_of = dict(Patient.objects.values_list("pk", "site__code"))
    seen = {(site_of[r["patient_id"]], r[end], r[status]) for r in rows}
    # 16 June at KIR, 14 June at PPG: a window ending that day is still open there.
    for site, day in (("KIR", D(2024, 6, 16)), ("PPG", D(2024, 6, 14))):
        assert (site, day, VisitStatus.SCHEDULED) in seen
        assert (site, day - datetime.timedelta(days=1), VisitStatus.NOT_APPLICABLE) in seen
    per_implant = {}
    for r in rows:
        per_implant[r["implant_id"]] = per_implant.get(r["implant_id"], 0) + 1
    assert len(set(per_implant.values())) > 2  # explants, withdrawals and deaths cut schedules
    def stops_with(timepoint):
        return {stops[r["implant_id"]] for r in rows if r["timepoint"] == timepoint}

    assert stops_with("m3") == set(STOPS) - {"visit there"}  # that one is there already
    assert stops_with("m12") == set(STOPS) - {"deceased"}
    assert stops_with("m24") == {"none", "visit there"}


@pytest.mark.django_db
def test_bulk_scheduling_takes_as_many_queries_for_30_implants_as_for_10(site_a, is_postgres):
    actor = system_user()
    counts = []
    for n in (10, 30):
        implants = []
        for _ in range(n):
            patient = make_patient(site_a)
            implant = Implant(patient=patient, ref=f"{patient.registry_id}-I1", therapy="SCS",
                              implant_date=D(2020, 1, 31))
            implants.append(record_save(implant, actor=actor, reason="import"))
        with CaptureQueriesContext(connection) as captured:
            change = implants_schedule_bulk(implants=implants, actor=actor, reason="import")
        assert change.created + change.past == n * len(scheduling._bulk_plan(
            [implants[0].pk], None).slots.popitem()[1])
        counts.append([q["sql"] for q in captured.captured_queries])
    if is_postgres:  # one INSERT ... SELECT for all visits and their history
        assert len(counts[0]) == len(counts[1])
    else:  # SQLite's 999 parameters split the bulk inserts by rows; the rest is fixed
        assert len(counts[0]) < len(counts[1])
        assert sum(not q.startswith("INSERT") for q in counts[0]) == \
            sum(not q.startswith("INSERT") for q in counts[1])


@pytest.mark.django_db
def test_array_literals_read_back_as_the_values(is_postgres):
    if not is_postgres:
        pytest.skip("PostgreSQL's array syntax")
    cases = {"text[]": ["m3", "", None, 'say "no"', "back\\slash", "a,b", "{x}", "NULL", "é"],
             "bigint[]": [1, 2, 3_000_000_000], "int[]": [1, None, -4],
             "date[]": [D(2020, 2, 29), None, D(1999, 12, 31)], "bool[]": [True, False, None]}
    with connection.cursor() as cursor:
        for cast, values in cases.items():
            cursor.execute(f"SELECT %s::{cast}", [array_literal(values)])
            assert cursor.fetchone()[0] == values, cast


# ---------------------------------------------------------------- field checks remembered

GRID = {
    "nrs": [0, 10, 11, -1, 5],
    "satisfaction": [1, 5, 0, 6],
    "pgic": [1, 7, 8, 0],
    "opioid_mme": [Decimal("0"), Decimal("60.5"), Decimal("60.50"), Decimal("60.55"),
                   Decimal("-1"), Decimal("123456789.5"), Decimal("12.5")],
    "timepoint": ["m3", "x" * 40, ""],
}


def _outcome(check, values):
    visit = Visit(status=VisitStatus.COMPLETED, date_done=D(2020, 5, 1), **values)
    try:
        check(visit)
    except ValidationError as exc:
        return {k: [str(m) for m in ValidationError(v).messages]
                for k, v in exc.message_dict.items()}, None
    return {}, [getattr(visit, f.attname) for f in Visit._meta.concrete_fields]


def test_remembered_field_checks_say_what_clean_fields_says():
    exclude = {"patient", "implant"}
    verdicts: dict = {}
    compared = 0
    for _round in range(2):  # the second round answers from what was remembered
        for name, values in GRID.items():
            for value in values:
                cell = {name: value}
                theirs = _outcome(lambda v: v.clean_fields(exclude=exclude), cell)
                mine = _outcome(lambda v: clean_fields_remembered(v, exclude, verdicts), cell)
                assert mine == theirs, cell
                compared += 1
    assert compared == 2 * sum(len(v) for v in GRID.values())
    assert any(not ok for ok, _ in verdicts.values())  # the grid holds faulty values


# ---------------------------------------------------------------- instances from a template


@pytest.mark.django_db
@pytest.mark.parametrize("model", [Patient, Implant, Visit, PainScore, PromAnswer, AdverseEvent,
                                   DeviceComponent, ProgrammingSession])
def test_template_instances_are_what_model_init_builds(model, patient_a):
    make = unsaved_factory(model)
    relation = {Patient: {"site": patient_a.site}, PainScore: {}, PromAnswer: {},
                DeviceComponent: {}, ProgrammingSession: {}}.get(model, {"patient": patient_a})
    values = {f.name: f.get_default() for f in model._meta.concrete_fields
              if not f.is_relation and not f.primary_key and f.has_default()}
    built, made = model(**relation, **values), make(**relation, **values)
    fields = [f.attname for f in model._meta.concrete_fields]
    assert [getattr(made, f) for f in fields] == [getattr(built, f) for f in fields]
    assert made._state.adding and made._state.db == built._state.db  # set by a saved parent
    for name, parent in relation.items():
        assert getattr(made, name) is parent  # the relation's cache, as __init__ sets it
    other = make(**relation)
    assert other._state is not made._state
    for f in model._meta.concrete_fields:  # callable defaults (lists) are not shared
        if f.has_default() and callable(f.default):
            assert getattr(other, f.attname) is not getattr(made, f.attname)


# ---------------------------------------------------------------- queries per stage


def _bench_generator():
    spec = importlib.util.spec_from_file_location("import_bundle", ROOT / "bench" / "import_bundle.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.generate


def _queries_per_stage(folder, monkeypatch) -> dict[str, int]:
    from registry.services import checks as data_checks

    # The data-check stage after the write is another helper's (services/checks.py).
    monkeypatch.setattr(data_checks, "checks_run", lambda **kwargs: None)
    marks: list[tuple[str, int]] = []
    with CaptureQueriesContext(connection) as captured:
        def progress(stage, done, total):
            stage = "validate" if stage.startswith("validating") else stage
            if not marks or marks[-1][0] != stage:
                marks.append((stage, len(captured.captured_queries)))
        report = bundle_import(source=folder, actor=system_user(), reason="query count",
                               progress=progress)
        end = len(captured.captured_queries)
    assert report.ok, report.errors[:3]
    counts: dict[str, int] = {}
    for (stage, at), (_next, until) in zip(marks, [*marks[1:], ("end", end)], strict=True):
        counts[stage] = counts.get(stage, 0) + until - at
    return counts


@pytest.mark.django_db
def test_each_import_stage_takes_as_many_queries_for_60_patients_as_for_20(tmp_path, monkeypatch,
                                                                          is_postgres):
    generate = _bench_generator()
    counts = {}
    for n in (20, 60):
        folder = tmp_path / f"bundle_{n}"
        generate(folder, n, 3)
        sites = {line.split(",")[1] for line in (folder / "patients.csv").read_text().splitlines()[1:]}
        assert len(sites) == 10  # every site has patients both times (one counter update each)
        with transaction.atomic():  # rolled back: the next bundle's registry ids are new again
            counts[n] = _queries_per_stage(str(folder), monkeypatch)
            transaction.set_rollback(True)
    assert set(counts[20]) >= {"validate", "writing", "scheduling follow-up"}
    assert counts[60]["validate"] == counts[20]["validate"]
    if is_postgres:  # COPY and INSERT ... SELECT: a fixed number per table
        assert counts[60] == counts[20]
    else:  # SQLite's 999 parameters make Django split each bulk insert by rows
        assert counts[60]["writing"] > counts[20]["writing"]

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

from registry.models import (
    AdverseEvent,
    ConsentStatus,
    DeviceComponent,
    Implant,
    PainScore,
    Patient,
    ProgrammingSession,
    PromAnswer,
    Visit,
    VisitStatus,
)
from registry.models.base import unsaved_factory
from registry.services.audit import record_save, system_user
from registry.services.imports import bundle_import
from registry.services.imports.checks import clean_fields_remembered
from registry.services.scheduling import implants_schedule_bulk
from tests.factories import make_implant, make_patient

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

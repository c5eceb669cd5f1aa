"""Issue 21, wave 7: the validator's quicker steps must be the slow steps' twins.

- unsaved instances set their relations as the relation descriptors do (ids, caches,
  the rows' database), and refuse what the descriptors refuse;
- a cell that cannot be stored is still reported by file, line, column and value when
  the reader searches whole rows first;
- the visit table lost only the index the (patient, timepoint) index makes redundant,
  and its history only indexes nothing reads: the constraints' indexes stay;
- the histories' actor column lost its foreign-key constraint, not its index;
- ids reserved for COPY come from the table's own sequence.
"""

import shutil

import pytest
from django.apps import apps
from django.db import connection

from registry.models import Implant, Patient, Site, Visit
from registry.models.base import unsaved_factory
from registry.services.audit import _reserve_ids, record_save, system_user
from registry.services.imports import REFERENCE_BUNDLE, bundle_import
from tests.factories import make_implant, make_patient, make_site

from .test_imports import edit


def _relations(obj, names):
    return ([getattr(obj, f.attname) for f in type(obj)._meta.concrete_fields],
            {name: obj._state.fields_cache.get(name, "absent") for name in names},
            obj._state.db, obj._state.adding)


@pytest.mark.django_db
def test_unsaved_instances_set_relations_as_their_descriptors_do():
    patient = make_patient(make_site())
    implant = make_implant(patient)
    # Unsaved parents with a temporary negative pk (as an import's) and no database yet.
    unsaved = Patient(registry_id="X-1")
    unsaved.pk = -3
    draft = Implant(ref="X-1-I1")
    draft.pk = -4
    assert unsaved._state.db is None and draft._state.db is None
    make = unsaved_factory(Visit)
    for relations in ({"patient": patient, "implant": implant}, {"patient": patient, "implant": None},
                      {"patient": unsaved, "implant": draft}, {"implant": draft, "patient": unsaved}):
        fresh = [dict(p._state.__dict__) for p in (unsaved, draft)]
        built = Visit(timepoint="m3", **relations)
        after_init = [dict(p._state.__dict__) for p in (unsaved, draft)]
        for parent, state in zip((unsaved, draft), fresh, strict=True):
            parent._state.__dict__.clear()
            parent._state.__dict__.update(state)
        made = make(timepoint="m3", **relations)
        assert _relations(made, relations) == _relations(built, relations), relations
        for name, parent in relations.items():
            assert getattr(made, name) is parent
        # What __init__ did to the parents (their database), the factory does too.
        assert [dict(p._state.__dict__) for p in (unsaved, draft)] == after_init
    for wrong in ({"patient": patient.site}, {"implant": patient}):
        with pytest.raises(ValueError) as theirs:
            Visit(**wrong)
        with pytest.raises(ValueError) as mine:
            make(**wrong)
        assert str(mine.value) == str(theirs.value)


@pytest.mark.django_db
def test_a_nul_in_a_cell_is_reported_by_line_column_and_value(tmp_path):
    folder = tmp_path / "bundle"
    shutil.copytree(REFERENCE_BUNDLE, folder)
    edit(folder, "patients.csv", 2, affected_region="left\x00arm")
    report = bundle_import(source=folder, actor=system_user(), reason="test")
    found = [(e.file, e.line, e.column, e.value) for e in report.errors]
    assert ("patients.csv", 2, "affected_region", "left\\x00arm") in found
    assert "NUL" in next(e.message for e in report.errors if e.column == "affected_region")
    assert not Site.objects.filter(code="RAD").exists()  # nothing written


@pytest.mark.django_db
def test_the_visit_tables_keep_their_constraints_indexes():
    with connection.cursor() as cursor:
        visit = connection.introspection.get_constraints(cursor, Visit._meta.db_table)
        history = connection.introspection.get_constraints(cursor, Visit.history.model._meta.db_table)
    by_columns = {name: tuple(c["columns"]) for name, c in visit.items() if c["index"]}
    # The constraint's partial unique index on patient_id stays (Django's AlterField of
    # db_index would have dropped it with the plain one).
    assert by_columns.get("one_baseline_per_patient") == ("patient_id",)
    assert ("patient_id", "timepoint") in by_columns.values()
    assert [n for n, cols in by_columns.items() if cols == ("patient_id",)] == \
        ["one_baseline_per_patient"]
    indexed = {tuple(c["columns"]) for c in history.values() if c["index"] and not c["primary_key"]}
    assert ("id",) in indexed and ("history_user_id",) in indexed
    assert not indexed & {("patient_id",), ("implant_id",), ("updated_at",)}


@pytest.mark.django_db
def test_history_actor_column_is_indexed_without_a_database_constraint():
    """The history's actor (history_user_id) keeps its index and its ORM relation, but no
    foreign-key constraint: accounts are never deleted, and the constraint cost a deferred
    check per history row at the commit (issue 21)."""
    histories = [m for m in apps.get_app_config("registry").get_models()
                 if any(f.name == "history_user" for f in m._meta.fields)]
    assert len(histories) > 20
    with connection.cursor() as cursor:
        for model in histories:
            constraints = connection.introspection.get_constraints(cursor, model._meta.db_table)
            on_user = [c for c in constraints.values() if c["columns"] == ["history_user_id"]]
            assert any(c["index"] for c in on_user), model.__name__
            assert not any(c["foreign_key"] for c in on_user), model.__name__
    # The relation still reads the actor, by the ORM and by a join.
    actor = system_user()
    site = make_site(code="HUX")
    site.name = "Renamed"
    record_save(site, actor=actor, reason="rename")
    assert site.history.latest().history_user.username == actor.username
    by_actor = Site.history.filter(id=site.pk, history_user__username=actor.username)
    assert set(by_actor.values_list("name", flat=True)) == {"Site HUX", "Renamed"}
    assert not Site.history.filter(id=site.pk, history_user__username="someone-else").exists()


@pytest.mark.django_db
def test_reserved_ids_are_new_distinct_and_ahead_of_the_next_default_id():
    """bulk_create_audited reserves pks from the table's own sequence (looked up once per
    call, not per row): each is new, and a plain save afterwards gets a higher one."""
    if connection.vendor != "postgresql":
        pytest.skip("sequences are PostgreSQL's")
    first = make_site(code="RSA")
    ids = _reserve_ids(Site, 500)
    assert len(set(ids)) == 500 and min(ids) > first.pk
    after = make_site(code="RSB")
    assert after.pk > max(ids)

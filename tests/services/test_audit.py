"""History user and reason in every channel; stale edits and missing reasons refused."""

import datetime
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from registry.services.audit import StaleEdit, record_delete, record_save
from tests.conftest import needs_postgres
from tests.factories import make_visit


def test_create_change_and_delete_are_in_the_history_with_user_and_reason(nurse, patient_a):
    visit = make_visit(patient_a, actor=nurse, timepoint="baseline", status="scheduled",
                       date_done=None, nrs=None)
    visit.status, visit.date_done, visit.nrs = "completed", patient_a.consent_date, 7
    record_save(visit, actor=nurse, reason="Baseline call")
    pk = visit.pk
    record_delete(visit, actor=nurse, reason="Entered on the wrong patient")
    rows = list(type(visit).history.filter(id=pk).order_by("history_date", "history_id"))
    assert [r.history_type for r in rows] == ["+", "~", "-"]
    assert all(r.history_user == nurse for r in rows)
    assert [r.history_change_reason for r in rows][1:] == ["Baseline call",
                                                           "Entered on the wrong patient"]
    assert rows[0].history_date.utcoffset().total_seconds() == 0  # UTC


def test_changing_a_completed_visit_needs_a_reason(nurse, patient_a):
    visit = make_visit(patient_a, actor=nurse, nrs=8)
    visit.nrs = 6
    with pytest.raises(ValidationError) as exc:
        record_save(visit, actor=nurse)
    assert "reason" in str(exc.value)
    visit.refresh_from_db()
    assert visit.nrs == 8
    visit.nrs = 6
    record_save(visit, actor=nurse, reason="Typo on the paper form")
    assert visit.history.first().history_change_reason == "Typo on the paper form"


def test_the_second_of_two_concurrent_edits_is_refused(nurse, nurse_b, patient_a):
    first = make_visit(patient_a, actor=nurse, status="scheduled", date_done=None, nrs=None)
    second = type(first).objects.get(pk=first.pk)
    first.notes = "called, no answer"
    record_save(first, actor=nurse)
    second.notes = "left voicemail"
    with pytest.raises(StaleEdit):
        record_save(second, actor=nurse)
    first.refresh_from_db()
    assert first.notes == "called, no answer"
    assert first.version == 2


def _rows(model, pks, skip):
    rows = model.objects.filter(pk__in=pks).order_by("pk").values()
    return [{k: v for k, v in row.items() if k not in skip} for row in rows]


def _history(model, pks, skip):
    rows = model.history.filter(id__in=pks).order_by("id").values()
    return [{k: v for k, v in row.items() if k not in skip} for row in rows]


@needs_postgres()
@pytest.mark.django_db
def test_bulk_create_audited_writes_what_simple_history_writes(site_a, nurse, data_manager):
    """The COPY path (PostgreSQL) must leave the same rows and history rows as
    simple-history's bulk_create_with_history, apart from ids and timestamps."""
    from simple_history.utils import bulk_create_with_history

    from registry.models import Patient, Visit
    from registry.services.audit import bulk_create_audited

    def patients(prefix):
        made = []
        for n in range(3):
            made.append(Patient(site=site_a, registry_id=f"{prefix}-{n}", sex="F", birth_year=1960 + n,
                                consent_date=datetime.date(2019, 5, n + 1), etiology="iatrogenic",
                                diagnosis="rlp", prior_treatments=["gabapentinoids", "opioids"][: n]))
        made[1]._change_reason = "own reason"
        made[2]._history_user = data_manager
        return made

    theirs = bulk_create_with_history(patients("OLD"), Patient, default_user=nurse,
                                      default_change_reason="import")
    mine = bulk_create_audited(patients("NEW"), Patient, actor=nurse, reason="import")
    assert all(p.pk and not p._state.adding for p in mine)
    skip = {"id", "registry_id", "created_at", "updated_at", "history_id", "history_date"}
    assert _rows(Patient, [p.pk for p in mine], skip) == _rows(Patient, [p.pk for p in theirs], skip)
    assert _history(Patient, [p.pk for p in mine], skip) == \
        _history(Patient, [p.pk for p in theirs], skip)
    reasons = [h.history_change_reason for h in Patient.history.filter(id__in=[p.pk for p in mine])
               .order_by("id")]
    assert reasons == ["import", "own reason", "import"]

    def visits(owner):
        return [Visit(patient=owner, timepoint=f"m{m}", status="scheduled",
                      target_date=datetime.date(2021, m, 1), window_start=datetime.date(2021, m, 1),
                      window_end=datetime.date(2021, m, 20), opioid_mme=Decimal("12.5"))
                for m in (1, 3, 6)]

    theirs = bulk_create_with_history(visits(theirs[0]), Visit, default_user=nurse,
                                      default_change_reason="schedule")
    mine = bulk_create_audited(visits(mine[0]), Visit, actor=nurse, reason="schedule")
    skip |= {"patient_id"}
    assert _rows(Visit, [v.pk for v in mine], skip) == _rows(Visit, [v.pk for v in theirs], skip)
    assert _history(Visit, [v.pk for v in mine], skip) == _history(Visit, [v.pk for v in theirs], skip)
    assert Visit.objects.get(pk=mine[0].pk).created_at is not None


@needs_postgres()
@pytest.mark.django_db
def test_a_copy_hitting_a_unique_violation_raises_djangos_integrity_error(implant_a, nurse):
    """Callers (bundle_import) catch django.db.IntegrityError, not psycopg's."""
    from django.db import IntegrityError, transaction

    from registry.models import Implant
    from registry.services.audit import bulk_create_audited

    twin = Implant(patient=implant_a.patient, ref=implant_a.ref, therapy="SCS")
    with pytest.raises(IntegrityError, match="duplicate key"), transaction.atomic():
        bulk_create_audited([twin], Implant, actor=nurse, reason="import")
    assert Implant.objects.filter(ref=implant_a.ref).count() == 1


def test_rows_a_delete_cascades_to_carry_its_user_and_reason(patient_a, data_manager):
    from registry.models import PainScore, PatientIdentifiers
    from registry.services.audit import system_user

    visit = make_visit(patient_a, nrs=7)
    score = record_save(PainScore(visit=visit, pain_site="phantom_limb", score=5), actor=system_user())
    record_delete(visit, actor=data_manager, reason="Entered for the wrong patient")
    [row] = PainScore.history.filter(id=score.pk, history_type="-")
    assert (row.history_user, row.history_change_reason) == (data_manager, "Entered for the wrong patient")

    ids = record_save(PatientIdentifiers(patient=patient_a, record_number="HRN-1"), actor=system_user())
    record_delete(patient_a, actor=data_manager, reason="Enrolled twice")
    [row] = PatientIdentifiers.history.filter(id=ids.pk, history_type="-")
    assert (row.history_user, row.history_change_reason) == (data_manager, "Enrolled twice")


def test_a_delete_outside_record_delete_sets_no_reason_for_its_cascade(patient_a):
    from registry.models import PainScore
    from registry.services.audit import system_user

    visit = make_visit(patient_a, nrs=7)
    score = record_save(PainScore(visit=visit, pain_site="phantom_limb", score=5), actor=system_user())
    visit.delete()
    [row] = PainScore.history.filter(id=score.pk, history_type="-")
    assert not row.history_change_reason

"""History user and reason in every channel; stale edits and missing reasons refused."""

import pytest
from django.core.exceptions import ValidationError

from registry.services.audit import StaleEdit, record_delete, record_save
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

"""Data queries: the steps, who may take them, who sees them, the thread and the history."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from registry.models import DataQuery, QueryStatus
from registry.services import queries
from tests.factories import make_patient, make_visit


@pytest.fixture
def visit_a(patient_a, implant_a, nurse):
    return make_visit(patient_a, implant_a, actor=nurse, timepoint="m3", date_done=implant_a.implant_date
                      .replace(month=6), nrs=4)


@pytest.fixture
def query_a(visit_a, data_manager):
    return queries.query_open(record=visit_a, field="nrs", text="Is 4 right? Last time it was 9.",
                              actor=data_manager)


def test_a_data_manager_opens_a_query_on_a_visit_field(query_a, visit_a, data_manager):
    assert query_a.status == QueryStatus.OPEN
    assert (query_a.record_type, query_a.record_id, query_a.field) == ("visit", visit_a.pk, "nrs")
    assert query_a.record_key == f"{visit_a.implant.ref} m3"
    assert query_a.opened_by == data_manager and query_a.opened_at is not None
    [message] = query_a.messages.all()
    assert (message.action, message.author, message.text) == ("open", data_manager,
                                                              "Is 4 right? Last time it was 9.")
    history = query_a.history.get()
    assert history.history_user == data_manager and history.history_change_reason.startswith("Opened")


def test_the_full_cycle_records_who_and_when_at_every_step(query_a, nurse, data_manager):
    queries.query_answer(query=query_a, text="Checked the chart: 4 is right.", actor=nurse)
    query_a.refresh_from_db()
    assert query_a.status == QueryStatus.ANSWERED and query_a.answered_by == nurse
    queries.query_reopen(query=query_a, text="Which chart entry?", actor=data_manager)
    query_a.refresh_from_db()
    assert query_a.status == QueryStatus.OPEN
    queries.query_answer(query=query_a, text="The 2020-06-01 note.", actor=nurse)
    queries.query_close(query=query_a, text="Thanks.", actor=data_manager)
    query_a.refresh_from_db()
    assert query_a.status == QueryStatus.CLOSED and query_a.closed_by == data_manager
    assert query_a.closed_at >= query_a.answered_at >= query_a.opened_at
    assert [m.action for m in query_a.messages.all()] == ["open", "answer", "reopen", "answer", "close"]
    assert [h.history_user for h in query_a.history.order_by("history_date")] == [
        data_manager, nurse, data_manager, nurse, data_manager]


def test_a_closed_query_can_be_reopened_and_a_cancelled_one_too(query_a, data_manager):
    queries.query_cancel(query=query_a, text="Asked in error.", actor=data_manager)
    query_a.refresh_from_db()
    assert query_a.status == QueryStatus.CANCELLED
    queries.query_reopen(query=query_a, text="Not in error after all.", actor=data_manager)
    query_a.refresh_from_db()
    assert query_a.status == QueryStatus.OPEN and query_a.closed_at is None


def test_a_step_the_status_does_not_allow_is_refused_naming_the_status(query_a, data_manager):
    queries.query_close(query=query_a, text="Done.", actor=data_manager)
    with pytest.raises(ValidationError) as error:
        queries.query_close(query=query_a, text="Again.", actor=data_manager)
    assert "status" in error.value.message_dict
    with pytest.raises(ValidationError):
        queries.query_cancel(query=query_a, text="Again.", actor=data_manager)


def test_nurses_do_not_open_or_close_and_investigators_do_nothing(query_a, visit_a, nurse, investigator):
    with pytest.raises(PermissionDenied):
        queries.query_open(record=visit_a, field="nrs", text="?", actor=nurse)
    with pytest.raises(PermissionDenied):
        queries.query_close(query=query_a, text="ok", actor=nurse)
    for step in (queries.query_answer, queries.query_close, queries.query_reopen):
        with pytest.raises(PermissionDenied):
            step(query=query_a, text="x", actor=investigator)


def test_the_nurse_of_another_site_neither_sees_nor_answers(query_a, nurse_b):
    assert not queries.queries_for(nurse_b).exists()
    with pytest.raises(PermissionDenied):
        queries.query_answer(query=query_a, text="Not mine.", actor=nurse_b)


def test_investigators_see_no_queries_and_no_counts(query_a, investigator, nurse, data_manager):
    assert not queries.queries_for(investigator).exists()
    counts = queries.open_queries_for(investigator)
    assert (counts.open, counts.answered, counts.by_site) == (0, 0, {})
    assert queries.open_queries_for(nurse).open == 1
    assert queries.open_queries_for(nurse).waiting_for_me == 1
    assert queries.open_queries_for(data_manager).waiting_for_me == 0  # waiting for the site


def test_the_counts_are_per_site(query_a, data_manager, site_b, nurse_b):
    visit_b = make_visit(make_patient(site_b, actor=nurse_b), actor=nurse_b)
    queries.query_open(record=visit_b, field="", text="Whole visit?", actor=data_manager)
    counts = queries.open_queries_for(data_manager)
    assert counts.open == 2 and counts.by_site == {"AAA": {"open": 1, "answered": 0},
                                                   "BBB": {"open": 1, "answered": 0}}


def test_a_field_the_record_does_not_have_is_refused_with_its_name(visit_a, data_manager):
    with pytest.raises(ValidationError) as error:
        queries.query_open(record=visit_a, field="nrss", text="?", actor=data_manager)
    assert "'nrss'" in error.value.message_dict["field"][0]
    assert not DataQuery.objects.exists()


def test_an_empty_message_is_refused(query_a, nurse):
    with pytest.raises(ValidationError) as error:
        queries.query_answer(query=query_a, text="   ", actor=nurse)
    assert "text" in error.value.message_dict


def test_queries_open_on_every_record_type(patient_a, implant_a, data_manager):
    from tests.factories import make_event

    event = make_event(patient_a, implant_a)
    for record, key in ((patient_a, patient_a.registry_id), (implant_a, implant_a.ref),
                        (event, f"{patient_a.registry_id} AE #{event.pk}")):
        query = queries.query_open(record=record, field="", text="?", actor=data_manager)
        assert query.record_key == key and query.patient_id == patient_a.pk


def test_timepoint_is_annotated_for_visits(query_a, patient_a, data_manager):
    queries.query_open(record=patient_a, field="sex", text="?", actor=data_manager)
    rows = dict(queries.with_timepoint(DataQuery.objects.all()).values_list("record_type", "timepoint"))
    assert rows == {"visit": "m3", "patient": None}

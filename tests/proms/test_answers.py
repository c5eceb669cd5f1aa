"""Item answers: one write path, validated as a whole, audited; the protocol says what is due."""

import datetime

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from registry.models import FollowUpProtocol, PromAnswer, PromSchedule
from registry.services.audit import record_save
from registry.services.proms.answers import (
    missing_instruments,
    prom_answers_record,
    visit_prom_status,
    visit_scores,
)
from registry.services.proms.instruments import expected_instruments
from tests.factories import make_implant, make_patient, make_visit

ODI = {f"s{n}": 2 for n in range(1, 11)}


@pytest.fixture
def baseline(patient_a):
    return make_visit(patient_a)


def test_answers_are_stored_item_by_item_with_actor_and_reason(baseline, nurse):
    held = prom_answers_record(visit=baseline, instrument="odi", answers=ODI, actor=nurse, reason="entry")
    assert held == ODI
    row = PromAnswer.objects.get(visit=baseline, instrument="odi", item="s1")
    assert row.instrument_version == "ODI 2.1a"
    entry = row.history.get()
    assert entry.history_user == nurse and entry.history_change_reason == "entry"
    assert visit_scores(baseline)["odi_score"] == 40.0


def test_one_bad_answer_saves_nothing_and_names_item_and_value(baseline, nurse):
    with pytest.raises(ValidationError) as caught:
        prom_answers_record(visit=baseline, instrument="odi", answers={**ODI, "s3": 6, "s12": 1},
                            actor=nurse)
    assert "0-5; 6 is not on the scale" in str(caught.value.message_dict["odi.s3"])
    assert "'s12' is not an item" in str(caught.value.message_dict["odi.s12"])
    assert not PromAnswer.objects.exists()
    with pytest.raises(ValidationError, match="Unknown instrument 'sf36'"):
        prom_answers_record(visit=baseline, instrument="sf36", answers={"q1": 1}, actor=nurse)


def test_changing_a_completed_visit_answer_needs_a_reason_and_keeps_the_old_value(baseline, nurse):
    prom_answers_record(visit=baseline, instrument="odi", answers=ODI, actor=nurse)
    with pytest.raises(ValidationError, match="give a reason"):
        prom_answers_record(visit=baseline, instrument="odi", answers={"s1": 5}, actor=nurse)
    prom_answers_record(visit=baseline, instrument="odi", answers={"s1": 5, "s2": None}, actor=nurse,
                        reason="patient corrected")
    row = PromAnswer.objects.get(visit=baseline, item="s1")
    assert [h.value for h in row.history.order_by("history_date")] == [2, 5]
    assert not PromAnswer.objects.filter(visit=baseline, item="s2").exists()
    deleted = PromAnswer.history.filter(item="s2", history_type="-").get()
    assert deleted.history_change_reason == "patient corrected" and deleted.history_user == nurse


def test_the_model_refuses_off_scale_values_in_every_channel(baseline):
    answer = PromAnswer(visit=baseline, instrument="hads", item="q1", value=4)
    with pytest.raises(ValidationError, match="0-3; 4 is not on the scale"):
        answer.full_clean()
    with pytest.raises(ValidationError, match="held in version"):
        PromAnswer(visit=baseline, instrument="hads", instrument_version="HADS 2", item="q1",
                   value=1).full_clean()
    # A path that skips clean() (bulk writes) meets the database's own check.
    with pytest.raises(IntegrityError), transaction.atomic():
        PromAnswer.objects.bulk_create([PromAnswer(visit=baseline, instrument="eq5d5l", item="mo",
                                                   value=0)])
    with pytest.raises(IntegrityError), transaction.atomic():
        PromAnswer.objects.bulk_create([PromAnswer(visit=baseline, instrument="odi", item="vas",
                                                   value=1)])


def test_a_missed_visit_holds_no_answers(patient_a, implant_a, nurse):
    visit = make_visit(patient_a, implant_a, timepoint="m6", status="missed", date_done=None, nrs=None)
    with pytest.raises(ValidationError, match="Missed"):
        prom_answers_record(visit=visit, instrument="eq5d5l", answers={"mo": 1}, actor=nurse)


def test_the_default_protocol_asks_by_timepoint_and_diagnosis(site_a, nurse):
    pn = make_patient(site_a, diagnosis="pn")
    implant = make_implant(pn)
    assert expected_instruments(make_visit(pn)) == ["eq5d5l", "bpi_sf", "hads", "pcs", "pseq"]
    m6 = make_visit(pn, implant, timepoint="m6", date_done=datetime.date(2020, 9, 1))
    assert expected_instruments(m6) == ["eq5d5l", "bpi_sf", "hads"]
    m12 = make_visit(pn, implant, timepoint="m12", date_done=datetime.date(2021, 3, 1))
    assert expected_instruments(m12) == ["eq5d5l", "bpi_sf", "hads", "pcs", "pseq"]
    m3 = make_visit(pn, implant, timepoint="m3", date_done=datetime.date(2020, 6, 1))
    assert expected_instruments(m3) == ["eq5d5l", "bpi_sf"]
    m36 = make_visit(pn, implant, timepoint="m36", date_done=datetime.date(2023, 3, 1))
    assert expected_instruments(m36) == ["eq5d5l", "bpi_sf", "hads"]
    other = make_patient(site_a, diagnosis="other")
    assert expected_instruments(make_visit(other)) == ["eq5d5l", "odi", "hads", "pcs", "pseq"]
    unscheduled = make_visit(pn, implant, timepoint="unscheduled", date_done=datetime.date(2020, 7, 1))
    assert expected_instruments(unscheduled) == []


def test_the_visit_shows_expected_missing_and_scored_instruments(baseline, nurse):
    assert missing_instruments(baseline) == ["eq5d5l", "bpi_sf", "hads", "pcs", "pseq"]
    prom_answers_record(visit=baseline, instrument="eq5d5l",
                        answers={"mo": 2, "sc": 1, "ua": 3, "pd": 4, "ad": 2, "vas": 40}, actor=nurse)
    prom_answers_record(visit=baseline, instrument="odi", answers=ODI, actor=nurse)  # not due: shown
    status = {s.code: s for s in visit_prom_status(baseline, "NL")}
    assert status["eq5d5l"].scorable and status["eq5d5l"].scores["eq5d5l_vas"] == 40
    assert status["eq5d5l"].scores["eq5d5l_index"] == round(1 - .047 - .035 - .087 - .360 - .070, 3)
    assert not status["odi"].expected and status["odi"].scorable
    assert status["hads"].expected and status["hads"].missing == [f"q{n}" for n in range(1, 15)]
    assert missing_instruments(baseline) == ["bpi_sf", "hads", "pcs", "pseq"]


def test_a_data_manager_edits_the_protocol_with_history(baseline, data_manager):
    protocol = FollowUpProtocol.default()
    row = PromSchedule.objects.get(protocol=protocol, instrument="pcs")
    row.timepoints = "baseline,m6,m12"
    record_save(row, actor=data_manager, reason="PCS at 6 months too")
    assert row.history.latest().history_user == data_manager
    row.timepoints = "baseline,m6,weekly"
    with pytest.raises(ValidationError, match="Unknown timepoint 'weekly'"):
        row.full_clean()
    row.timepoints, row.diagnoses = "baseline", "pn,cancer"
    with pytest.raises(ValidationError, match="Unknown diagnosis 'cancer'"):
        row.full_clean()
    assert PromSchedule.history.filter(instrument="eq5d5l").first().history_change_reason.startswith(
        "Default PROM protocol")

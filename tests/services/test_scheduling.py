"""Follow-up schedules: set, moved, stopped by explant or withdrawal, long follow-up, DST."""

import datetime

import pytest

from registry.models import (
    ConsentStatus,
    FollowUpProtocol,
    Implant,
    ProtocolTimepoint,
    Visit,
    VisitStatus,
)
from registry.services import reminders
from registry.services.audit import record_save, system_user
from registry.services.dates import add_months
from registry.services.implants import implant_save
from registry.services.patients import patient_save
from registry.services.scheduling import (
    IMPORT_PAST_REASON,
    implant_schedule_sync,
    implants_schedule_bulk,
)
from tests.factories import make_implant, make_patient, make_site, make_visit

D = datetime.date


def UTC(*args):  # noqa: N802 (reads as a date literal)
    return datetime.datetime(*args, tzinfo=datetime.UTC)


def scheduled(implant):
    return {v.timepoint: v for v in Visit.objects.filter(implant=implant)}


def default_timepoints():
    return list(FollowUpProtocol.default().timepoints.all())


def test_setting_the_implant_date_schedules_every_timepoint_of_the_protocol(implant_a, nurse):
    visits = scheduled(implant_a)
    timepoints = default_timepoints()
    assert set(visits) == {tp.code for tp in timepoints}
    for tp in timepoints:
        visit = visits[tp.code]
        target = add_months(implant_a.implant_date, tp.months)
        assert visit.status == VisitStatus.SCHEDULED
        assert visit.target_date == target
        assert visit.window_start == target - datetime.timedelta(days=tp.window_before_days)
        assert visit.window_end == target + datetime.timedelta(days=tp.window_after_days)
        assert visit.patient_id == implant_a.patient_id


def test_the_default_windows_are_the_ones_the_protocol_promises(implant_a):
    visits = scheduled(implant_a)
    m1, m3, m12, m24 = (visits[c] for c in ("m1", "m3", "m12", "m24"))
    assert (m1.target_date - m1.window_start).days == 7 == (m1.window_end - m1.target_date).days
    assert (m3.window_end - m3.target_date).days == 14
    assert (m12.window_end - m12.target_date).days == 30
    assert (m24.window_end - m24.target_date).days == 60


def test_scheduled_visits_are_written_with_history_by_the_actor(implant_a, nurse):
    visit = scheduled(implant_a)["m3"]
    record = visit.history.get()
    assert record.history_user == nurse
    assert record.history_type == "+"
    assert "Follow-up schedule" in record.history_change_reason


def test_an_implant_without_a_date_gets_no_visits(patient_a, nurse):
    implant = make_implant(patient_a, actor=nurse, implant_date=None)
    assert not Visit.objects.filter(implant=implant).exists()


def test_a_site_protocol_replaces_the_default(nurse):
    protocol = record_save(FollowUpProtocol(name="Short PNS"), actor=nurse, reason="test")
    for months in (2, 4):
        record_save(ProtocolTimepoint(protocol=protocol, months=months, window_before_days=3,
                                      window_after_days=5), actor=nurse, reason="test")
    site = make_site("PNS", protocol=protocol)
    implant = make_implant(make_patient(site), actor=nurse, implant_date=D(2021, 1, 31))
    visits = scheduled(implant)
    assert set(visits) == {"m2", "m4"}
    assert visits["m2"].target_date == D(2021, 3, 31)
    assert visits["m2"].window_start == D(2021, 3, 28)
    assert visits["m4"].window_end == D(2021, 6, 5)


def test_moving_the_implant_date_moves_visits_not_done_and_never_completed_ones(implant_a, nurse):
    make_visit(implant_a.patient, implant_a, actor=nurse, timepoint="m1", date_done=D(2020, 4, 2),
               nrs=4)
    m3 = scheduled(implant_a)["m3"]
    m3.status = VisitStatus.MISSED
    record_save(m3, actor=nurse, reason="patient did not come")
    before = scheduled(implant_a)

    implant_a.implant_date = D(2020, 5, 15)
    implant_save(implant=implant_a, actor=nurse, reason="implant date was mistyped")

    after = scheduled(implant_a)
    assert after["m1"].status == VisitStatus.COMPLETED
    assert after["m1"].target_date == before["m1"].target_date
    assert after["m1"].version == before["m1"].version
    assert after["m3"].target_date == D(2020, 8, 15)
    assert after["m3"].status == VisitStatus.SCHEDULED
    assert after["m6"].target_date == D(2020, 11, 15)
    assert after["m6"].window_start == D(2020, 10, 16)
    assert after["m6"].version == before["m6"].version + 1
    record = after["m6"].history.first()
    assert record.history_user == nurse
    assert "moved to 2020-05-15" in record.history_change_reason
    assert "implant date was mistyped" in record.history_change_reason  # the nurse's reason


def test_saving_an_implant_without_a_date_change_writes_no_visit_history(implant_a, nurse):
    history_before = Visit.history.count()
    implant_a.model = "Intellis"
    implant_save(implant=implant_a, actor=nurse)
    assert Visit.history.count() == history_before


def test_an_explant_stops_the_visits_after_it_without_deleting_them(implant_a, nurse):
    make_visit(implant_a.patient, implant_a, actor=nurse, timepoint="m1", date_done=D(2020, 4, 1),
               nrs=3)
    count = Visit.objects.filter(implant=implant_a).count()
    implant_a.explant_date = D(2021, 3, 10)  # inside the 12-month window (1 Feb - 31 Mar 2021)
    implant_a.explant_reason = "infection"
    implant_save(implant=implant_a, actor=nurse)

    visits = scheduled(implant_a)
    assert len(visits) == count
    assert visits["m1"].status == VisitStatus.COMPLETED
    assert visits["m6"].status == VisitStatus.SCHEDULED
    assert visits["m12"].status == VisitStatus.SCHEDULED  # its window had opened
    assert visits["m24"].status == VisitStatus.NOT_APPLICABLE
    assert all(v.status == VisitStatus.NOT_APPLICABLE for code, v in visits.items()
               if v.window_start > implant_a.explant_date)
    assert "explant on 2021-03-10" in visits["m24"].history.first().history_change_reason


def test_correcting_an_explant_away_resumes_the_stopped_visits_but_not_hand_set_ones(
        implant_a, nurse):
    by_hand = scheduled(implant_a)["m36"]
    by_hand.status = VisitStatus.NOT_APPLICABLE
    record_save(by_hand, actor=nurse, reason="patient emigrated")
    implant_a.explant_date, implant_a.explant_reason = D(2021, 3, 10), "infection"
    implant_save(implant=implant_a, actor=nurse)
    assert scheduled(implant_a)["m24"].status == VisitStatus.NOT_APPLICABLE

    implant_a.explant_date, implant_a.explant_reason = None, ""
    implant_save(implant=implant_a, actor=nurse, reason="explant was entered on the wrong patient")
    visits = scheduled(implant_a)
    assert visits["m24"].status == VisitStatus.SCHEDULED
    assert visits["m36"].status == VisitStatus.NOT_APPLICABLE
    assert "resumed" in visits["m24"].history.first().history_change_reason


def test_an_explant_recorded_with_the_implant_creates_no_visits_after_it(patient_a, nurse):
    implant = make_implant(patient_a, actor=nurse, implant_date=D(2020, 3, 1),
                           explant_date=D(2020, 8, 5), explant_reason="loss of efficacy")
    assert set(scheduled(implant)) == {"m1", "m3", "m6"}


def test_a_withdrawal_stops_visits_after_the_withdrawal_date(implant_a, nurse):
    patient = implant_a.patient
    patient.consent_status = ConsentStatus.WITHDRAWN
    patient.withdrawal_date = D(2020, 9, 1)
    patient_save(patient=patient, actor=nurse, reason="patient withdrew consent")

    visits = scheduled(implant_a)
    assert visits["m6"].status == VisitStatus.SCHEDULED  # window opened 2020-08-02
    assert visits["m12"].status == VisitStatus.NOT_APPLICABLE
    assert visits["m240"].status == VisitStatus.NOT_APPLICABLE
    record = visits["m12"].history.first()
    assert record.history_user == nurse
    assert "consent withdrawn on 2020-09-01" in record.history_change_reason


def test_a_withdrawal_stops_every_implant_of_the_patient(patient_a, nurse):
    first = make_implant(patient_a, actor=nurse, implant_date=D(2020, 3, 1))
    # Another therapy: two systems of one therapy at a time are refused (plausibility).
    second = make_implant(patient_a, actor=nurse, implant_date=D(2021, 3, 1), therapy="DRG")
    patient_a.consent_status, patient_a.withdrawal_date = ConsentStatus.WITHDRAWN, D(2022, 1, 1)
    patient_save(patient=patient_a, actor=nurse, reason="withdrew")
    for implant in (first, second):
        assert scheduled(implant)["m60"].status == VisitStatus.NOT_APPLICABLE


def test_eighteen_years_of_follow_up_are_scheduled_to_the_day(site_a, nurse):
    # Retrospective: the trial (2004) is before the consent.
    patient = make_patient(site_a, actor=nurse, enrolment="retrospective")
    implant = make_implant(patient, actor=nurse, trial_start=D(2004, 2, 1),
                           trial_end=D(2004, 2, 10), implant_date=D(2004, 2, 29))
    visits = scheduled(implant)
    m216 = visits["m216"]
    assert m216.target_date == D(2022, 2, 28)  # 29 Feb + 18 years: clamped, not 1 March
    assert (m216.window_start, m216.window_end) == (D(2021, 12, 30), D(2022, 4, 29))
    assert visits["m240"].target_date == D(2024, 2, 29)
    assert m216.get_status_display() == "Scheduled"


@pytest.mark.parametrize("site_fixture, utc, local_day, overdue", [
    # Amsterdam springs forward on 31 March 2024 (UTC+1 -> +2); m1's window closes that day.
    ("site_a", UTC(2024, 3, 31, 4, 30), D(2024, 3, 31), []),  # 06:30 local (05:30 in winter)
    ("site_a", UTC(2024, 4, 1, 4, 30), D(2024, 4, 1), ["m1"]),  # 06:30 local the next day
    ("site_a", UTC(2024, 4, 1, 3, 30), None, None),  # 05:30 local: not yet
    # New York springs forward on 10 March 2024 (UTC-5 -> -4); m1's window closes that day.
    ("site_b", UTC(2024, 3, 11, 2, 30), D(2024, 3, 10), []),  # 22:30 local, 11 March in UTC
    ("site_b", UTC(2024, 3, 11, 4, 30), None, None),  # 00:30 local (23:30 on 10th in winter)
    ("site_b", UTC(2024, 3, 11, 10, 30), D(2024, 3, 11), ["m1"]),  # 06:30 local
])
def test_each_site_sees_its_follow_up_due_on_its_own_local_day_across_daylight_saving(
        db, request, settings, site_fixture, utc, local_day, overdue):
    """Visit dates are calendar dates; the daily job judges them by the site's own day
    and hour on the clock of the day. UTC or a fixed (winter) offset fails a case here."""
    settings.REGISTRY_REMINDER_LOCAL_HOUR = 6
    site = request.getfixturevalue(site_fixture)
    # m1 (window +-7 days around implant + 1 month) closes on the day of the change.
    implant_date, closes = {"site_a": (D(2024, 2, 24), D(2024, 3, 31)),
                            "site_b": (D(2024, 2, 3), D(2024, 3, 10))}[site_fixture]
    patient = make_patient(site, consent_date=D(2023, 1, 1))
    implant = make_implant(patient, trial_start=implant_date - datetime.timedelta(days=20),
                           trial_end=implant_date - datetime.timedelta(days=10),
                           implant_date=implant_date)
    assert scheduled(implant)["m1"].window_end == closes

    result = reminders.site_digest_send(site=site, actor=system_user(), now=utc,
                                        scheduled_run=True, dry_run=True)
    if local_day is None:
        assert result.skipped == "before 6:00 at the site"
    else:
        assert result.day == local_day
        assert [ln.timepoint for ln in result.overdue] == overdue


def test_schedule_sync_takes_a_bounded_number_of_queries(implant_a, nurse,
                                                          django_assert_max_num_queries):
    implant_a.implant_date = D(2020, 6, 1)
    with django_assert_max_num_queries(12):
        implant_schedule_sync(implant=implant_a, actor=nurse)
    assert scheduled(implant_a)["m240"].target_date == D(2040, 6, 1)


def test_bulk_schedule_skips_existing_timepoints_and_stops_past_windows_of_an_import(
        site_a, nurse, django_assert_max_num_queries):
    actor = system_user()
    patients = [make_patient(site_a, consent_date=D(2015, 1, 1)) for _ in range(3)]
    implants = []
    for patient in patients:
        implant = Implant(patient=patient, ref=f"{patient.registry_id}-I1", therapy="SCS",
                          implant_date=D(2015, 6, 1))
        record_save(implant, actor=actor, reason="import")  # as the importer: no sync
        implants.append(implant)
    make_visit(patients[0], implants[0], timepoint="m12", date_done=D(2016, 6, 3), nrs=2)

    today = D(2025, 5, 1)
    with django_assert_max_num_queries(12):
        change = implants_schedule_bulk(implants=implants, actor=actor, reason="import run 7",
                                        today=today)

    visits = scheduled(implants[0])
    assert visits["m12"].status == VisitStatus.COMPLETED
    assert Visit.objects.filter(implant=implants[0], timepoint="m12").count() == 1
    assert visits["m60"].status == VisitStatus.NOT_APPLICABLE  # window closed 2020-07-31
    assert visits["m120"].status == VisitStatus.SCHEDULED  # window 2025-04-02 .. 2025-07-31
    assert visits["m132"].status == VisitStatus.SCHEDULED
    assert IMPORT_PAST_REASON in visits["m60"].history.get().history_change_reason
    assert visits["m120"].history.get().history_user == actor
    per_implant = len(default_timepoints())
    assert change.created + change.past == 3 * per_implant - 1
    assert Visit.objects.filter(implant__in=implants).count() == 3 * per_implant

    again = implants_schedule_bulk(implants=implants, actor=actor, reason="again", today=today)
    assert again.created + again.past == 0


def test_a_later_implant_save_keeps_an_imports_not_applicable_visits(site_a, nurse):
    actor = system_user()
    patient = make_patient(site_a, consent_date=D(2015, 1, 1))
    implant = Implant(patient=patient, ref=f"{patient.registry_id}-I1", therapy="SCS",
                      implant_date=D(2015, 6, 1))
    record_save(implant, actor=actor, reason="import")
    implants_schedule_bulk(implants=[implant], actor=actor, reason="import", today=D(2025, 5, 1))
    implant.model = "Senza"
    implant_save(implant=implant, actor=nurse)
    assert scheduled(implant)["m60"].status == VisitStatus.NOT_APPLICABLE

"""Daily digests on a real SMTP server (aiosmtpd on loopback): content, exactly once,
refusals and retries, missed visits, site time zones."""

import datetime
import threading

import pytest
from django.db import close_old_connections, connection
from django.test.utils import CaptureQueriesContext

from registry.models import (
    ConsentStatus,
    PatientIdentifiers,
    ReminderLog,
    Visit,
    VisitStatus,
)
from registry.services import queries as data_queries
from registry.services import reminders
from registry.services.audit import record_save, system_user
from registry.services.dates import site_today
from registry.services.implants import implant_save
from registry.services.patients import patient_save
from tests.conftest import needs_postgres
from tests.factories import make_implant, make_patient, make_site
from tests.mailserver import (
    restore_reference_data,
    smtp_server_fixture,  # noqa: F401 (the smtp_server fixture)
)

D = datetime.date
DAY = D(2020, 3, 25)
UTC = datetime.UTC


def implanted(site, implant_date, **patient_kwargs):
    patient = make_patient(site, consent_date=D(2019, 6, 1), **patient_kwargs)
    implant = make_implant(patient, trial_start=implant_date - datetime.timedelta(days=20),
                           trial_end=implant_date - datetime.timedelta(days=10),
                           implant_date=implant_date)
    return patient, implant


def visit(implant, code):
    return Visit.objects.get(implant=implant, timepoint=code)


@pytest.fixture
def clinic(site_a, site_b):
    """Site A: one patient due soon (m1 window opens on DAY), one overdue (m1 past grace,
    m3 just closed). Site B: one due soon."""
    due_a = implanted(site_a, D(2020, 3, 1))  # m1 window 2020-03-25 .. 2020-04-08
    late_a = implanted(site_a, D(2019, 12, 1))  # m1 closed 2020-01-08, m3 closed 2020-03-15
    due_b = implanted(site_b, D(2020, 3, 5))  # m1 window 2020-03-29 .. 2020-04-12
    record_save(PatientIdentifiers(patient=due_a[0], record_number="HRN-998877",
                                   full_name="Johanna Verstappen", phone="+31 6 1234 5678"),
                actor=system_user(), reason="test")
    return {"due_a": due_a, "late_a": late_a, "due_b": due_b}


def run(site, day=DAY, **kwargs):
    return reminders.site_digest_send(site=site, actor=system_user(), day=day, **kwargs)


def test_each_site_gets_one_digest_with_due_and_overdue_visits(clinic, site_a, site_b,
                                                               smtp_server):
    result_a, result_b = run(site_a), run(site_b)
    assert result_a.sent and result_b.sent
    assert len(smtp_server.messages) == 2
    assert smtp_server.to(0) == ["aaa@example.org"]
    assert smtp_server.to(1) == ["bbb@example.org"]

    text = smtp_server.text(0)
    due_a, late_a = clinic["due_a"][0], clinic["late_a"][0]
    assert [(ln.registry_id, ln.timepoint) for ln in result_a.due_soon] == [
        (due_a.registry_id, "m1")]
    assert [(ln.registry_id, ln.timepoint) for ln in result_a.overdue] == [
        (late_a.registry_id, "m1"), (late_a.registry_id, "m3")]
    # The window opened on the digest's day: said to be open now, not "opens soon".
    assert f"{due_a.registry_id}  1 month  window open now, window 2020-03-25 to 2020-04-08" in text
    assert f"{late_a.registry_id}  3 months  window 2020-02-16 to 2020-03-15" in text
    m1 = visit(clinic["due_a"][1], "m1")
    assert reminders.visit_admin_url(m1.pk).endswith(f"/admin/registry/visit/{m1.pk}/change/")
    assert reminders.visit_admin_url(m1.pk) in text
    assert f'href="{reminders.visit_admin_url(m1.pk)}"' in smtp_server.html(0)
    assert "[AAA] Follow-up 2020-03-25: 1 due soon, 2 overdue" == \
        smtp_server.messages[0][1]["Subject"]
    assert clinic["due_b"][0].registry_id in smtp_server.text(1)
    assert due_a.registry_id not in smtp_server.text(1)


def test_links_use_the_configured_site_url(clinic, site_a, smtp_server, settings):
    settings.SITE_URL = "https://registry.example.org"
    run(site_a)
    m1 = visit(clinic["due_a"][1], "m1")
    assert f"https://registry.example.org/admin/registry/visit/{m1.pk}/change/" in \
        smtp_server.text()


def test_the_digest_carries_no_identifiers(clinic, site_a, smtp_server):
    run(site_a)
    message = smtp_server.messages[0][1].as_string()
    for identifier in ("HRN-998877", "Johanna", "Verstappen", "1234 5678"):
        assert identifier not in message


def test_running_the_job_twice_sends_nothing_extra(clinic, site_a, smtp_server):
    run(site_a)
    second = run(site_a)
    third = run(site_a, day=DAY + datetime.timedelta(days=1))
    assert len(smtp_server.messages) == 1
    assert not second.sent and not third.sent
    assert ReminderLog.objects.filter(site=site_a, status="sent").count() == 3
    assert ReminderLog.objects.filter(site=site_a).count() == 3


def test_each_reminder_is_logged_as_claimed_then_sent(clinic, site_a, smtp_server):
    run(site_a)
    logs = list(ReminderLog.objects.filter(site=site_a))
    assert {log.status for log in logs} == {"sent"}
    assert len({log.claim_token for log in logs}) == 1 and logs[0].claim_token
    assert all(log.attempts == 1 and log.sent_at and log.digest_date == DAY for log in logs)
    assert logs[0].recipients == "aaa@example.org"
    kinds = sorted((log.visit.timepoint, log.kind) for log in logs)
    assert kinds == [("m1", "due_soon"), ("m1", "overdue"), ("m3", "overdue")]


def test_a_later_day_sends_only_what_became_due_since(clinic, site_a, smtp_server):
    run(site_a)
    result = run(site_a, day=D(2020, 5, 5))
    assert result.sent and len(smtp_server.messages) == 2
    due, late = clinic["due_a"][0].registry_id, clinic["late_a"][0].registry_id
    assert [(ln.registry_id, ln.timepoint, ln.kind) for ln in result.due_soon + result.overdue] \
        == [(late, "m6", "due_soon"),  # window opened 2020-05-02
            (due, "m3", "due_soon"),  # opens 2020-05-18
            (due, "m1", "overdue")]  # closed 2020-04-08


def test_one_digest_per_site_and_day_even_when_a_visit_becomes_due_later_that_day(
        clinic, site_a, smtp_server):
    run(site_a)
    implanted(site_a, D(2020, 3, 2))  # enrolled in the afternoon: m1 opens 2020-03-26
    assert not run(site_a).sent
    nxt = run(site_a, day=DAY + datetime.timedelta(days=1))
    assert nxt.sent and len(nxt.due_soon) == 1
    assert len(smtp_server.messages) == 2


def test_visits_past_the_grace_period_are_marked_missed_after_being_reminded(
        clinic, site_a, smtp_server, settings):
    settings.REGISTRY_MISSED_GRACE_DAYS = 30
    result = run(site_a)
    late = clinic["late_a"][1]
    m1, m3 = visit(late, "m1"), visit(late, "m3")
    assert result.marked_missed == 1
    assert m1.status == VisitStatus.MISSED  # window closed 2020-01-08, over 30 days ago
    assert m3.status == VisitStatus.SCHEDULED  # closed 2020-03-15: still in grace
    assert "m1" in {ln.timepoint for ln in result.overdue}
    record = m1.history.first()
    assert record.history_user == system_user()
    assert "missed" in record.history_change_reason
    assert m1.version == 2


def test_withdrawn_patients_get_no_reminders(clinic, site_a, smtp_server):
    patient = clinic["late_a"][0]
    patient.consent_status, patient.withdrawal_date = ConsentStatus.WITHDRAWN, D(2020, 3, 1)
    patient_save(patient=patient, actor=system_user(), reason="withdrew")
    assert visit(clinic["late_a"][1], "m3").status == VisitStatus.SCHEDULED  # opened before
    result = run(site_a)
    assert result.overdue == []
    assert patient.registry_id not in smtp_server.text()


def test_a_site_without_addresses_gets_no_mail_but_its_reminders_wait_for_one(
        clinic, site_a, smtp_server):
    site_a.reminder_emails = ""
    record_save(site_a, actor=system_user(), reason="test")
    result = run(site_a)
    assert not result.sent and result.skipped == "no reminder addresses"
    assert smtp_server.messages == [] and not ReminderLog.objects.exists()
    assert result.marked_missed == 1

    site_a.reminder_emails = "followup@aaa.example.org; research@aaa.example.org"
    record_save(site_a, actor=system_user(), reason="test")
    assert run(site_a, day=DAY + datetime.timedelta(days=1)).sent
    assert smtp_server.to() == ["followup@aaa.example.org", "research@aaa.example.org"]


def test_a_refusing_smtp_server_leaves_the_reminders_failed_and_a_retry_sends_them_once(
        clinic, site_a, smtp_server):
    smtp_server.refuse = "451 4.3.0 Mailbox temporarily unavailable"
    with pytest.raises(reminders.DigestNotSent, match="451"):
        run(site_a)
    assert smtp_server.messages == [] and smtp_server.refused == 1
    logs = ReminderLog.objects.filter(site=site_a)
    assert {(log.status, log.attempts) for log in logs} == {("failed", 1)}
    assert "451" in logs[0].last_error

    with pytest.raises(reminders.DigestNotSent):
        run(site_a)  # still refusing: the same claims fail again
    assert {(log.status, log.attempts) for log in logs.all()} == {("failed", 2)}

    smtp_server.refuse = None
    assert run(site_a).sent
    assert len(smtp_server.messages) == 1
    assert smtp_server.text().count(clinic["late_a"][0].registry_id) == 2
    assert {(log.status, log.attempts) for log in logs.all()} == {("sent", 3)}
    assert not run(site_a).sent
    assert len(smtp_server.messages) == 1


def test_an_unreachable_smtp_server_is_retried_on_the_next_run(clinic, site_a, smtp_server):
    smtp_server.stop()
    with pytest.raises(reminders.DigestNotSent, match="ConnectionRefused"):
        run(site_a)
    smtp_server.start()
    assert run(site_a, day=DAY + datetime.timedelta(days=1)).sent
    assert len(smtp_server.messages) == 1
    assert set(ReminderLog.objects.values_list("status", flat=True)) == {"sent"}


def test_a_failed_reminder_whose_visit_was_done_meanwhile_is_not_sent(clinic, site_a,
                                                                       smtp_server):
    smtp_server.refuse = "550 5.7.1 Rejected"
    with pytest.raises(reminders.DigestNotSent):
        run(site_a)
    smtp_server.refuse = None
    for code in ("m1", "m3"):
        v = visit(clinic["late_a"][1], code)
        v.status, v.date_done = VisitStatus.COMPLETED, D(2020, 3, 20)
        record_save(v, actor=system_user(), reason="entered late")
    result = run(site_a)
    assert [ln.kind for ln in result.due_soon + result.overdue] == ["due_soon"]


def test_a_dry_run_sends_and_writes_nothing(clinic, site_a, smtp_server):
    history = Visit.history.count()
    result = run(site_a, dry_run=True)
    assert len(result.due_soon) == 1 and len(result.overdue) == 2 and result.marked_missed == 1
    assert smtp_server.messages == []
    assert not ReminderLog.objects.exists()
    assert Visit.history.count() == history
    assert visit(clinic["late_a"][1], "m1").status == VisitStatus.SCHEDULED


@pytest.mark.parametrize("utc, tz_site, local_day", [
    # 01:30 UTC on the night Amsterdam springs forward: 03:30 there, still the 30th in New York.
    (datetime.datetime(2024, 3, 31, 1, 30, tzinfo=UTC), "site_a", D(2024, 3, 31)),
    (datetime.datetime(2024, 3, 31, 1, 30, tzinfo=UTC), "site_b", D(2024, 3, 30)),
    # New York falls back on 3 November 2024 at 06:00 UTC.
    (datetime.datetime(2024, 11, 3, 4, 30, tzinfo=UTC), "site_b", D(2024, 11, 3)),
    (datetime.datetime(2024, 11, 3, 3, 59, tzinfo=UTC), "site_b", D(2024, 11, 2)),
])
def test_a_sites_today_is_the_date_in_its_own_time_zone(db, request, utc, tz_site, local_day):
    site = request.getfixturevalue(tz_site)
    assert site_today(site.timezone, utc) == local_day


@pytest.mark.parametrize("tz_site, utc, sends", [
    # Amsterdam, summer time from 31 March 2024: 04:30 UTC is 06:30 local, a day earlier 05:30.
    ("site_a", datetime.datetime(2024, 3, 31, 4, 30, tzinfo=UTC), True),
    ("site_a", datetime.datetime(2024, 3, 30, 4, 30, tzinfo=UTC), False),
    # New York, summer time from 10 March 2024: 10:30 UTC is 06:30 local, a day earlier 05:30.
    ("site_b", datetime.datetime(2024, 3, 10, 10, 30, tzinfo=UTC), True),
    ("site_b", datetime.datetime(2024, 3, 9, 10, 30, tzinfo=UTC), False),
])
def test_scheduled_runs_wait_for_the_sites_local_morning_across_dst(
        db, request, tz_site, utc, sends, smtp_server, settings):
    settings.REGISTRY_REMINDER_LOCAL_HOUR = 6
    site = request.getfixturevalue(tz_site)
    implanted(site, utc.date() - datetime.timedelta(days=25))  # m1 window opening around now
    result = reminders.site_digest_send(site=site, actor=system_user(), now=utc,
                                        scheduled_run=True)
    assert result.sent is sends
    assert result.day == site_today(site.timezone, utc)
    assert len(smtp_server.messages) == (1 if sends else 0)


def test_the_digest_takes_the_same_number_of_queries_for_more_visits(
        site_a, django_assert_max_num_queries):
    counts = []
    for n, day in ((2, DAY), (12, DAY + datetime.timedelta(days=1))):
        for i in range(n):
            implanted(site_a, D(2020, 3, 1) + datetime.timedelta(days=i % 5))
            implanted(site_a, D(2019, 12, 1))
        with CaptureQueriesContext(connection) as captured:
            result = run(site_a, day=day)
        assert result.sent and len(result.due_soon) >= n
        counts.append(len(captured))
    assert counts[0] == counts[1]
    # 18: one count query per worklist category (issue 19 added open queries and questionnaires).
    with django_assert_max_num_queries(18):
        run(site_a, day=DAY + datetime.timedelta(days=2))


@needs_postgres()
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_runs_send_each_reminder_once_in_one_digest(smtp_server):
    restore_reference_data()
    site = make_site("CON")
    for i in range(6):
        implanted(site, D(2020, 3, 1) + datetime.timedelta(days=i % 3))
        implanted(site, D(2019, 12, 1))
    barrier = threading.Barrier(4)
    results, errors = [], []

    def worker():
        try:
            barrier.wait()
            results.append(run(site))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert sum(r.sent for r in results) == 1
    assert len(smtp_server.messages) == 1
    logs = ReminderLog.objects.filter(site=site)
    assert logs.count() == 6 + 12 and set(logs.values_list("status", flat=True)) == {"sent"}
    assert logs.values("claim_token").distinct().count() == 1


def test_a_missed_run_is_caught_up_but_long_open_windows_are_not_announced(site_a, smtp_server,
                                                                           settings):
    settings.REGISTRY_REMINDER_CATCH_UP_DAYS = 7
    recent = implanted(site_a, D(2020, 2, 25))[0]  # m1 window opened 2020-03-18: 7 days ago
    old = implanted(site_a, D(2020, 2, 24))[0]  # m1 window opened 2020-03-17: 8 days ago
    result = run(site_a)
    announced = {ln.registry_id for ln in result.due_soon}
    assert recent.registry_id in announced and old.registry_id not in announced
    later = run(site_a, day=D(2020, 4, 1))  # old's m1 window closed on 2020-03-31
    assert (old.registry_id, "m1") in {(ln.registry_id, ln.timepoint) for ln in later.overdue}


def test_a_visit_moved_to_a_new_window_is_reminded_again_once(clinic, site_a, smtp_server):
    patient, implant = clinic["due_a"]
    assert run(site_a).sent  # m1 due soon, window 2020-03-25 .. 2020-04-08
    implant.implant_date = D(2020, 5, 1)  # two months later: m1 window 2020-05-25 .. 2020-06-08
    implant_save(implant=implant, actor=system_user(), reason="implant date was mistyped")

    again = run(site_a, day=D(2020, 5, 20))
    assert (patient.registry_id, "m1", "2020-05-25") in {
        (ln.registry_id, ln.timepoint, ln.start) for ln in again.due_soon}
    later = run(site_a, day=D(2020, 5, 21))
    assert patient.registry_id not in {ln.registry_id for ln in later.due_soon + later.overdue}
    m1 = visit(implant, "m1")
    # What was sent about the old window stays in the log.
    assert sorted(ReminderLog.objects.filter(visit=m1).values_list(
        "kind", "window_start", "window_end", "status")) == [
        ("due_soon", D(2020, 3, 25), D(2020, 4, 8), "sent"),
        ("due_soon", D(2020, 5, 25), D(2020, 6, 8), "sent")]
    assert smtp_server.text(1).count(f"{patient.registry_id}  1 month") == 1


def test_a_missed_visit_moved_by_a_corrected_implant_date_is_overdue_again_once(
        clinic, site_a, smtp_server, settings):
    settings.REGISTRY_MISSED_GRACE_DAYS = 30
    patient, implant = clinic["late_a"]
    run(site_a)  # m1 overdue (closed 2020-01-08) and marked missed
    assert visit(implant, "m1").status == VisitStatus.MISSED
    implant.implant_date = D(2020, 1, 15)  # m1 window 2020-02-08 .. 2020-02-22
    implant_save(implant=implant, actor=system_user(), reason="implant date corrected")
    assert visit(implant, "m1").status == VisitStatus.SCHEDULED

    nxt = run(site_a, day=DAY + datetime.timedelta(days=1))
    assert (patient.registry_id, "m1") in {(ln.registry_id, ln.timepoint) for ln in nxt.overdue}
    after = run(site_a, day=DAY + datetime.timedelta(days=2))
    assert (patient.registry_id, "m1") not in {(ln.registry_id, ln.timepoint)
                                               for ln in after.overdue}
    assert ReminderLog.objects.filter(visit=visit(implant, "m1"), kind="overdue",
                                      status="sent").count() == 2


# --- open data queries in the digest (issue 18): record, field, rule, age, link; no text


def test_the_digest_lists_the_sites_open_queries_without_their_text(clinic, site_a, site_b,
                                                                  smtp_server, data_manager):
    patient_a, implant_a = clinic["due_a"]
    query = data_queries.query_open(record=implant_a, field="lead_count",
                               text="Two leads? The op note of Mr Verstappen says one.",
                               actor=data_manager)
    data_queries.query_open(record=patient_a, field="sex", text="?", actor=data_manager)
    result_a, result_b = run(site_a), run(site_b)
    assert [q.record_key for q in result_a.open_queries] == [implant_a.ref, patient_a.registry_id]
    text, html = smtp_server.text(0), smtp_server.html(0)
    assert "Open data queries: the data manager asks about a value (2)" in text
    assert f"- {implant_a.ref}  lead_count  asked by the data manager, open 0 days" in text
    assert f"/admin/registry/dataquery/{query.pk}/change/" in text
    assert f'/admin/registry/dataquery/{query.pk}/change/"' in html
    assert "Verstappen" not in smtp_server.messages[0][1].as_string()
    assert result_b.open_queries == [] and "the data manager asks about a value" not in smtp_server.text(1)


def test_answered_queries_wait_for_the_data_manager_not_the_site(clinic, site_a, smtp_server,
                                                                 data_manager, nurse):
    patient_a, _ = clinic["due_a"]
    query = data_queries.query_open(record=patient_a, field="sex", text="?", actor=data_manager)
    data_queries.query_answer(query=query, text="Checked.", actor=nurse)
    assert run(site_a).open_queries == []

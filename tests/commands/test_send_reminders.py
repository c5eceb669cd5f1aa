"""manage.py send_reminders: the same job, synchronously, for operators and cron."""

import datetime
import io

import pytest
from django.core import mail
from django.core.management import call_command
from django.core.management.base import CommandError

from registry.models import ReminderLog, Visit, VisitStatus
from registry.services.audit import SYSTEM_USERNAME
from registry.services.reminders import MISSED_REASON
from tests.factories import make_implant, make_patient

D = datetime.date


@pytest.fixture
def due(site_a, site_b):
    for site, implant_date in ((site_a, D(2020, 3, 1)), (site_a, D(2019, 12, 1)),
                               (site_b, D(2020, 3, 5))):
        patient = make_patient(site, consent_date=D(2019, 6, 1))
        make_implant(patient, trial_start=implant_date - datetime.timedelta(days=20),
                     trial_end=implant_date - datetime.timedelta(days=10),
                     implant_date=implant_date)


def send(*args):
    out = io.StringIO()
    call_command("send_reminders", *args, stdout=out)
    return out.getvalue()


def test_it_sends_each_sites_digest_and_says_so(due):
    out = send("--date", "2020-03-25")
    assert "AAA 2020-03-25: sent 1 due soon, 2 overdue; marked 1 missed" in out
    assert "BBB 2020-03-25: sent 1 due soon, 0 overdue; marked 0 missed" in out
    assert sorted(m.to[0] for m in mail.outbox) == ["aaa@example.org", "bbb@example.org"]


def test_the_visits_it_marks_missed_are_changes_in_the_history_with_user_and_reason(due):
    send("--date", "2020-03-25")
    [missed] = Visit.objects.filter(status=VisitStatus.MISSED)
    last, before = missed.history.order_by("-history_date", "-history_id")[:2]
    assert (last.history_type, last.status, before.status) == ("~", "missed", "scheduled")
    assert (last.history_user.username, last.history_change_reason) == (SYSTEM_USERNAME, MISSED_REASON)


def test_running_it_again_sends_nothing(due):
    send("--date", "2020-03-25")
    out = send("--date", "2020-03-25")
    assert "AAA 2020-03-25: sent nothing 0 due soon" in out
    assert len(mail.outbox) == 2


def test_a_dry_run_lists_and_changes_nothing(due):
    out = send("--date", "2020-03-25", "--dry-run", "--verbosity", "2")
    assert "AAA 2020-03-25: would send 1 due soon, 2 overdue; would mark 1 missed" in out
    assert "overdue   AAA-0002 3 months 2020-02-16..2020-03-15" in out
    assert mail.outbox == [] and not ReminderLog.objects.exists()
    assert not Visit.objects.filter(status=VisitStatus.MISSED).exists()


def test_it_runs_one_site_only(due):
    out = send("--date", "2020-03-25", "--site", "bbb")
    assert "BBB" in out and "AAA" not in out
    assert [m.to for m in mail.outbox] == [["bbb@example.org"]]


def test_it_names_a_bad_date(db):
    with pytest.raises(CommandError, match="--date must be YYYY-MM-DD, not '25/03/2020'"):
        send("--date", "25/03/2020")


def test_it_names_an_unknown_site(site_a):
    with pytest.raises(CommandError, match="--site: unknown site code 'NOPE'"):
        send("--site", "NOPE")


def test_it_fails_loudly_when_the_mail_server_is_down(due, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 1, 2
    with pytest.raises(CommandError, match="Digest for site AAA on 2020-03-25 not sent"):
        send("--date", "2020-03-25")
    assert set(ReminderLog.objects.values_list("status", flat=True)) == {"failed"}

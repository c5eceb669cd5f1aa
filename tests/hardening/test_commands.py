"""Commands refuse what would corrupt data: `send_reminders --date` later than today."""

import datetime

import pytest
from django.core.management import CommandError, call_command

from registry.models import ReminderLog, Visit, VisitStatus
from registry.services.dates import site_today
from tests.factories import make_implant


def test_send_reminders_refuses_a_date_later_than_today_and_marks_nothing_missed(site_a, nurse,
                                                                                 patient_a):
    make_implant(patient_a, actor=nurse)
    tomorrow = site_today(site_a.timezone) + datetime.timedelta(days=1)
    far = tomorrow + datetime.timedelta(days=3 * 365)
    for day in (tomorrow, far):
        with pytest.raises(CommandError, match=f"--date: {day.isoformat()} is later than today at AAA"):
            call_command("send_reminders", "--date", day.isoformat())
    assert not Visit.objects.filter(status=VisitStatus.MISSED).exists()
    assert not ReminderLog.objects.exists()


def test_send_reminders_still_runs_for_today(site_a, capsys):
    call_command("send_reminders", "--date", site_today(site_a.timezone).isoformat(), "--dry-run")
    assert "AAA" in capsys.readouterr().out

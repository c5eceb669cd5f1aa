"""Due this week, overdue, completed without NRS: VisitQuerySet's rules (the admin's
filters, badges and patient hub use them), on one day and on each site's own day."""

import datetime
import itertools

import pytest
from simple_history.utils import bulk_create_with_history

from registry.models import Visit, VisitStatus
from registry.models.visits import DUE_SOON_DAYS
from registry.services.audit import system_user
from tests.factories import make_patient

D = datetime.date
DAY = D(2024, 5, 10)
STARTS = [-20, -9, -1, 0, 1, 6, 7, 8, 9]  # window start, days from DAY
LENGTHS = [0, 1, 9, 20]  # window length in days


def visits_at(patient, statuses=(VisitStatus.SCHEDULED,), day=DAY):
    """One unscheduled-timepoint visit per window around `day` and status (bulk, with history)."""
    rows = []
    for status, start, length in itertools.product(statuses, STARTS, LENGTHS):
        window_start = day + datetime.timedelta(days=start)
        rows.append(Visit(patient=patient, timepoint="unscheduled", status=status,
                          window_start=window_start,
                          window_end=window_start + datetime.timedelta(days=length),
                          date_done=window_start if status == VisitStatus.COMPLETED else None))
    rows.append(Visit(patient=patient, timepoint="unscheduled", status=VisitStatus.SCHEDULED))
    bulk_create_with_history(rows, Visit, default_user=system_user(),
                             default_change_reason="follow-up rule test")
    return list(Visit.objects.filter(patient=patient))


def window(start_days, end_days, day=DAY):
    return day + datetime.timedelta(days=start_days), day + datetime.timedelta(days=end_days)


def ids(queryset):
    return set(queryset.values_list("pk", flat=True))


@pytest.fixture
def visits(site_a):
    statuses = (VisitStatus.SCHEDULED, VisitStatus.COMPLETED, VisitStatus.MISSED,
                VisitStatus.NOT_APPLICABLE)
    return visits_at(make_patient(site_a), statuses)


def find(visits, status, start_days, end_days):
    start, end = window(start_days, end_days)
    return next(v for v in visits if (v.status, v.window_start, v.window_end) == (status, start, end))


def test_overdue_is_scheduled_with_the_window_closed_before_the_day(visits):
    overdue = ids(Visit.objects.overdue(on=DAY))
    assert find(visits, VisitStatus.SCHEDULED, -1, -1).pk in overdue  # closed yesterday
    assert find(visits, VisitStatus.SCHEDULED, -9, 0).pk not in overdue  # closes today
    assert find(visits, VisitStatus.COMPLETED, -1, -1).pk not in overdue
    assert find(visits, VisitStatus.MISSED, -1, -1).pk not in overdue
    assert find(visits, VisitStatus.NOT_APPLICABLE, -1, -1).pk not in overdue
    no_window = next(v for v in visits if v.window_end is None)
    assert no_window.pk not in overdue
    # The scheduled windows ending before DAY: starting 20 days before (3 of them, the
    # fourth ends on DAY), 9 days before (2) and yesterday (1).
    assert len(overdue) == 6


def test_a_loaded_visit_says_overdue_exactly_when_the_queryset_does(visits):
    for day in (DAY - datetime.timedelta(days=1), DAY, DAY + datetime.timedelta(days=10)):
        assert ids(Visit.objects.overdue(on=day)) == {v.pk for v in visits if v.is_overdue(day)}, day


def test_due_this_week_is_a_scheduled_window_open_on_the_day_or_opening_within_7_days(visits):
    assert DUE_SOON_DAYS == 7
    due = ids(Visit.objects.due_this_week(on=DAY))
    assert find(visits, VisitStatus.SCHEDULED, 7, 8).pk in due  # opens in 7 days
    assert find(visits, VisitStatus.SCHEDULED, 8, 9).pk not in due  # in 8
    assert find(visits, VisitStatus.SCHEDULED, -9, 0).pk in due  # closes today
    assert find(visits, VisitStatus.SCHEDULED, -1, 0).pk in due
    assert find(visits, VisitStatus.SCHEDULED, -1, -1).pk not in due  # closed yesterday: overdue
    assert find(visits, VisitStatus.COMPLETED, 0, 1).pk not in due
    assert find(visits, VisitStatus.MISSED, 0, 1).pk not in due
    assert not due & ids(Visit.objects.overdue(on=DAY))


def test_completed_without_nrs(site_a):
    patient = make_patient(site_a)
    rows = [Visit(patient=patient, timepoint="unscheduled", status=VisitStatus.COMPLETED,
                  date_done=DAY, nrs=nrs) for nrs in (None, 0, 5)]
    rows.append(Visit(patient=patient, timepoint="unscheduled", status=VisitStatus.SCHEDULED))
    bulk_create_with_history(rows, Visit, default_user=system_user())
    found = list(Visit.objects.completed_without_nrs())
    assert [(v.status, v.nrs) for v in found] == [(VisitStatus.COMPLETED, None)]


@pytest.mark.parametrize("apart", [1, 2], ids=["one day apart", "two days apart"])
@pytest.mark.parametrize("rule", ["overdue", "due_this_week"])
def test_each_site_is_judged_on_its_own_day(site_a, site_b, rule, apart):
    """Amsterdam a day (or, with a UTC+14 site, two) ahead of New York: one query over both
    sites finds what each site's own day finds."""
    a_visits = visits_at(make_patient(site_a))
    b_visits = visits_at(make_patient(site_b))
    ahead, behind = DAY + datetime.timedelta(days=apart), DAY
    both = getattr(Visit.objects, rule)(on={ahead: [site_a.pk], behind: [site_b.pk]})
    each = (ids(getattr(Visit.objects.filter(patient__site=site_a), rule)(on=ahead))
            | ids(getattr(Visit.objects.filter(patient__site=site_b), rule)(on=behind)))
    assert ids(both) == each
    if rule == "overdue":
        assert each == {v.pk for v in a_visits if v.is_overdue(ahead)} | {
            v.pk for v in b_visits if v.is_overdue(behind)}
    # The day matters: the window closing on the behind day is overdue only at the site ahead.
    closing = [v for v in a_visits + b_visits if v.window_end == behind]
    assert {v.patient.site_id for v in closing if v.pk in ids(Visit.objects.overdue(
        on={ahead: [site_a.pk], behind: [site_b.pk]}))} == {site_a.pk}


def test_no_sites_means_no_visits(visits):
    assert not Visit.objects.overdue(on={}).exists()
    assert not Visit.objects.due_this_week(on={}).exists()

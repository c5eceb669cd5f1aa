"""Calendar helpers shared by scheduling, exports and the generators."""

import calendar
import datetime


def add_months(day: datetime.date, months: int) -> datetime.date:
    """`day` plus whole months, clamped to the month's end (31 Jan + 1 m = 28/29 Feb)."""
    month_index = day.month - 1 + months
    year = day.year + month_index // 12
    month = month_index % 12 + 1
    if day.day <= 28:  # in every month: no clamping (most days; a schedule asks ~100,000 times)
        return datetime.date(year, month, day.day)
    return datetime.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def years_between(start: datetime.date, end: datetime.date) -> float:
    return (end - start).days / 365.25


def site_today(tz_name: str, now: datetime.datetime | None = None) -> datetime.date:
    """The calendar day it is at a site (its own time zone), not the server's (UTC).

    At 20:00 in New York it is already tomorrow in UTC: a visit whose window
    closes today there is not overdue yet.
    """
    from django.utils import timezone

    return (now or timezone.now()).astimezone(_zone(tz_name)).date()


def site_days(sites, now: datetime.datetime | None = None) -> dict[datetime.date, list[int]]:
    """Site pks grouped by the calendar day it is at each of them (at most two
    days at any moment, usually one). `sites`: (pk, timezone name) pairs."""
    days: dict[datetime.date, list[int]] = {}
    for pk, tz_name in sites:
        days.setdefault(site_today(tz_name, now), []).append(pk)
    return days


def _zone(name: str):
    import zoneinfo

    return zoneinfo.ZoneInfo(name)  # ZoneInfo caches its instances

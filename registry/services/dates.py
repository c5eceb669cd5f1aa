"""Calendar helpers shared by scheduling, exports and the generators."""

import calendar
import datetime


def add_months(day: datetime.date, months: int) -> datetime.date:
    """`day` plus whole months, clamped to the month's end (31 Jan + 1 m = 28/29 Feb)."""
    month_index = day.month - 1 + months
    year = day.year + month_index // 12
    month = month_index % 12 + 1
    return datetime.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def years_between(start: datetime.date, end: datetime.date) -> float:
    return (end - start).days / 365.25

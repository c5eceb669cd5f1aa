"""Plausibility of clinical dates and values: the pieces every model's clean() shares.

The rules themselves sit in each model's clean() (so the admin, the bundle import
and the API refuse the same thing with the same message); this module holds what
they have in common: the day it is at the patient's site ("future" is judged in
the site's time zone, not the server's), the message of a future date, the
overlap of two implants, and soft warnings.

Soft warnings are values that are possible but unusual (a trial of three months,
an implant a year after its trial). A model lists them in `unusual()`, a dict of
field -> message; the admin asks the user to confirm before it saves, the import
reports them beside the counts (they do not refuse the row).
"""

import contextlib
import contextvars
import datetime

from django.utils import timezone

from .base import today_anywhere


def site_of(patient):
    """The patient's site (also an unsaved one, as in an import), or None."""
    if patient is None:
        return None
    # The site already in place (select_related, an import's unsaved rows) without the
    # descriptor's lookup: an import asks this of every row it checks (issue 21).
    cached = patient._state.fields_cache.get("site")
    if cached is not None:
        return cached
    try:
        return patient.site
    except Exception:  # noqa: BLE001  (no site yet: a form not filled in)
        return None


# The days read by today_at per time zone, inside `site_days_remembered`.
_remembered: contextvars.ContextVar[dict | None] = contextvars.ContextVar(
    "registry_site_days", default=None)


@contextlib.contextmanager
def site_days_remembered():
    """Within it, `today_at` reads the clock once per time zone: an import checks
    100,000 rows against the day at their site, and reading the clock and converting
    it per row was ~1 s of the validation (issue 21). One import is judged against
    one day, also when it runs over midnight."""
    token = _remembered.set({})
    try:
        yield
    finally:
        _remembered.reset(token)


def today_at(site) -> datetime.date:
    """The calendar day it is at `site` (its own time zone); without a site, the
    latest day anywhere (UTC+14), which refuses nothing a site could accept."""
    days = _remembered.get()
    if days is None:
        return _today_at(site)
    zone = getattr(site, "timezone", None) if site is not None else None
    day = days.get(zone)
    if day is None:
        day = days[zone] = _today_at(site)
    return day


def _today_at(site) -> datetime.date:
    if site is None or not getattr(site, "timezone", None):
        return today_anywhere()
    try:
        return timezone.now().astimezone(site.tz).date()
    except Exception:  # noqa: BLE001  (an unknown zone is the site form's own error)
        return today_anywhere()


def future_errors(values: dict[str, tuple[str, datetime.date | None]], patient) -> dict[str, str]:
    """field -> message for each clinical date after today at the patient's site.

    `values`: field -> (label, date)."""
    site = site_of(patient)
    today = today_at(site)
    date = datetime.date
    if not any(isinstance(value, date) and value > today for _label, value in values.values()):
        return {}  # the common case, without making the message's parts
    where = f" at {site.code}" if site is not None and site.code else ""
    return {
        field: f"{label} {value.isoformat()} is in the future (today is {today.isoformat()}{where})."
        for field, (label, value) in values.items()
        if isinstance(value, datetime.date) and value > today
    }


def implant_life(implant) -> tuple[datetime.date | None, datetime.date | None]:
    """(implanted, explanted) of an implant; explanted None while in place."""
    return implant.implant_date, implant.explant_date


def overlap_message(implant, others) -> str | None:
    """The message when `implant` overlaps another implant of the same therapy of the
    same patient (`others`: that patient's other implants), else None.

    Two implants of one therapy overlap when one was implanted while the other was
    in place (from its implant date up to, not including, its explant date). A
    replacement implanted on the explant day of the old one does not overlap.
    """
    start, end = implant_life(implant)
    if not start or not implant.therapy:
        return None
    for other in others:
        if other is implant or (other.pk and other.pk == implant.pk):
            continue
        if other.therapy != implant.therapy or not other.implant_date:
            continue
        o_start, o_end = implant_life(other)
        if start < (o_end or datetime.date.max) and o_start < (end or datetime.date.max):
            in_place = (f"explanted {o_end.isoformat()}" if o_end else "not explanted")
            return (f"Implant date {start.isoformat()} overlaps {other.ref} ({other.therapy}, "
                    f"implanted {o_start.isoformat()}, {in_place}): one {implant.therapy} system "
                    f"at a time; record the explant of {other.ref} first, or record the change "
                    f"as a revision of it.")
    return None

"""The record status grid: patients x timepoints of one site, each cell the visit's state.

Like REDCap's record status dashboard: one row per patient (by registry id), one
column per timepoint in protocol order (baseline, end of trial, the protocol's
months; timepoints of the page's visits that the protocol no longer has come
after them; unscheduled visits are counted in the last column). A cell says:

| state | when |
| --- | --- |
| done | completed |
| due | scheduled, the window is open on the site's today |
| overdue | scheduled, the window closed before today (Visit.objects.overdue's rule) |
| upcoming | scheduled, the window opens later |
| missed | missed, with the reason (missed reason or "not done because") |
| not_applicable | not applicable, with the reason if given |
| (none) | no such visit for the patient |

The unscheduled column shows the latest unscheduled visit and how many there are.

"Due" and "overdue" are judged on the site's real day (worklist.window_state,
the home page's rule), so only users who see real dates get the grid (nurses of
the site and data managers, deid.sees_real_dates); others are refused.

Promises: a page costs a fixed number of queries whatever its size (the site,
its protocol, the patient count, the page's patients, the page's visits).
"""

import datetime
from dataclasses import dataclass, field

from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator

from registry.models import (
    ConsentStatus,
    MissingReason,
    Patient,
    Site,
    Visit,
    VisitStatus,
    timepoint_sort_key,
)
from registry.models.visits import BASELINE, TRIAL_END, UNSCHEDULED, timepoint_label

from . import access, deid, worklist
from .dates import site_today
from .scheduling import protocol_for

PER_PAGE = 50
MAX_PER_PAGE = 200

STATE_LABELS = {
    "done": "Done",
    "due": "Due (window open)",
    "overdue": "Overdue",
    "upcoming": "Scheduled, window opens later",
    "missed": "Missed",
    "not_applicable": "Not applicable",
    "": "No visit",
}
LEGEND = [(key, label) for key, label in STATE_LABELS.items() if key]
# What a cell shows (its colour and title say the rest).
SYMBOLS = {"done": "\u2713", "due": "\u25cb", "overdue": "!", "upcoming": "\u00b7",
           "missed": "\u2717", "not_applicable": "n/a", "": ""}


@dataclass
class Cell:
    state: str = ""
    visit_id: int | None = None
    reason: str = ""  # why missed / not applicable, in words
    count: int = 0  # unscheduled visits in the column

    @property
    def symbol(self) -> str:
        return SYMBOLS[self.state]

    @property
    def label(self) -> str:
        text = STATE_LABELS[self.state]
        return f"{text}: {self.reason}" if self.reason else text


@dataclass
class Row:
    patient_id: int
    registry_id: str
    withdrawn: bool
    cells: list[Cell] = field(default_factory=list)


@dataclass
class Grid:
    site: Site
    day: datetime.date
    columns: list[tuple[str, str]]  # (timepoint code, label)
    rows: list[Row]
    page: object  # django.core.paginator.Page of patient ids
    totals: dict[str, int]  # state: cells on this page


def _reason(visit: dict) -> str:
    if visit["visit_missing"]:
        return MissingReason(visit["visit_missing"]).label
    return ""


def cell_state(visit: dict, day: datetime.date) -> str:
    status = visit["status"]
    if status == VisitStatus.COMPLETED:
        return "done"
    if status == VisitStatus.MISSED:
        return "missed"
    if status == VisitStatus.NOT_APPLICABLE:
        return "not_applicable"
    found = worklist.window_state(visit["window_start"], visit["window_end"], day)
    return {"overdue": "overdue", "open_now": "due"}.get(found, "upcoming")


def _columns(site: Site, seen: set[str]) -> list[str]:
    protocol = protocol_for(site=site)
    codes = [BASELINE, TRIAL_END] + [tp.code for tp in (protocol.timepoints.all() if protocol else [])]
    extra = sorted((seen - set(codes)) - {UNSCHEDULED}, key=timepoint_sort_key)
    return codes + extra + [UNSCHEDULED]


def record_status_grid(*, site: Site, user, page: int | str = 1, per_page: int = PER_PAGE,
                       day: datetime.date | None = None) -> Grid:
    """The grid of `site` for `user`, page `page` of `per_page` patients (at most
    MAX_PER_PAGE). Refuses (PermissionDenied) users who do not see real dates or
    not this site; an out-of-range page gives the last page (Paginator.get_page)."""
    if not deid.sees_real_dates(user) or not access.sites_for(user).filter(pk=site.pk).exists():
        raise PermissionDenied("The record status grid is for the site's nurses and data managers.")
    per_page = max(1, min(int(per_page), MAX_PER_PAGE))
    day = day or site_today(site.timezone, worklist.now())
    patients = (Patient.objects.filter(site_id=site.pk).order_by("registry_id")
                .values_list("pk", "registry_id", "consent_status"))
    page_obj = Paginator(patients, per_page).get_page(page)
    loaded = list(page_obj.object_list)
    visits = list(Visit.objects.filter(patient_id__in=[pk for pk, _r, _c in loaded]).order_by()
                  .values("pk", "patient_id", "timepoint", "status", "window_start", "window_end",
                          "visit_missing", "date_done"))
    codes = _columns(site, {v["timepoint"] for v in visits})
    index = {code: i for i, code in enumerate(codes)}
    rows = {pk: Row(pk, registry_id, status == ConsentStatus.WITHDRAWN, [Cell() for _ in codes])
            for pk, registry_id, status in loaded}
    totals = {key: 0 for key, _label in LEGEND}
    # Several visits of one timepoint (a re-implant, unscheduled visits): the latest
    # row gives the cell, `count` says how many there are.
    for visit in sorted(visits, key=lambda v: v["pk"]):
        cell = rows[visit["patient_id"]].cells[index[visit["timepoint"]]]
        cell.count += 1
        cell.state, cell.visit_id, cell.reason = cell_state(visit, day), visit["pk"], _reason(visit)
    for row in rows.values():
        for code, cell in zip(codes, row.cells, strict=True):
            if cell.state and code != UNSCHEDULED:
                totals[cell.state] += 1
    return Grid(site=site, day=day, columns=[(c, timepoint_label(c)) for c in codes],
                rows=list(rows.values()), page=page_obj, totals=totals)

"""The safety tabulation (MDCG 2020-10/2 style summary table of serious and device- or
procedure-related events) as a file, for the admin: the `safety` dataset of
services/datasets (the same columns as /api/v1/exports/safety/), logged in the export log.

Dates follow the role: users who see real dates get them (`dates=iso`: onset, awareness,
deadline, report), investigators only the days relative to the implant and to awareness.
The selected events' patients' device deficiencies recorded without an event are listed
too, one row each (the event's columns empty).
"""

from django.db.models import QuerySet
from django.utils import timezone

from registry.models import DeviceDeficiency

from .. import access, datasets, deid, export_log, exports

DATASET = "safety"


def safety_tabulation_file(*, user, events: QuerySet, fmt: str, channel: str = "admin"):
    """(chunks, filename, content type) of the tabulation of `events` (already scoped by
    the access rule) in `fmt` (csv or xlsx); the export is logged."""
    if fmt not in ("csv", "xlsx"):
        raise ValueError(f"Unknown format '{fmt}'; expected csv or xlsx.")
    dates = "iso" if deid.sees_real_dates(user) else "relative"
    # The patients' device deficiencies without an event get their own rows.
    deficiencies = access.visible(datasets.safety_deficiencies(
        DeviceDeficiency.objects.filter(patient__in=events.values("patient"))), user)
    rows = datasets.with_extra_rows(datasets.safety_tabulated(events), deficiencies)
    log = export_log.export_log_start(user=user, dataset=DATASET, fmt=fmt, filters={}, dates=dates,
                                      channel=channel)
    counter = export_log.RowCounter()
    if fmt == "csv":
        chunks = export_log.logged(exports.export_csv_stream(DATASET, rows, dates=dates, counter=counter),
                                   log=log, counter=counter)
    else:
        path = exports.export_file(DATASET, rows, fmt, dates=dates, counter=counter)
        export_log.export_log_finish(log=log, rows=counter.rows)
        chunks = exports.file_chunks(path)
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    return chunks, f"safety-tabulation-{stamp}.{fmt}", exports.CONTENT_TYPES[fmt]

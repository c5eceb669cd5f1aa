"""The export log: who took which data, through which channel, how many rows, when.

Every channel that hands out patient rows (REST exports and list pages, REDCap record
exports, FHIR searches and bulk files) writes here. A stream is logged once it is
complete: `logged` wraps the chunks and finishes the log after the last one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from django.utils import timezone

from registry.models import ExportLog


class RowCounter:
    """Counts the data rows that went out (for the export log)."""

    def __init__(self):
        self.rows = 0


def export_log_start(*, user, dataset: str, fmt: str, filters: dict, dates: str,
                     channel: str = "api") -> ExportLog:
    """Record that `user` started an export (rows and finish time come later)."""
    return ExportLog.objects.create(user=user, channel=channel, dataset=dataset, format=fmt,
                                    filters=filters, dates=dates)


def export_log_record(*, user, dataset: str, fmt: str, filters: dict, dates: str, rows: int,
                      channel: str = "api") -> ExportLog:
    """Record, in one INSERT, a delivery that was complete before it was sent (a REST
    list page: `dataset` is its endpoint path, e.g. "/api/v1/visits/")."""
    return ExportLog.objects.create(user=user, channel=channel, dataset=dataset, format=fmt,
                                    filters=filters, dates=dates, rows=rows,
                                    finished_at=timezone.now())


def export_log_finish(*, log: ExportLog, rows: int) -> None:
    """Record the row count and finish time once the last byte went out."""
    log.rows = rows
    log.finished_at = timezone.now()
    ExportLog.objects.filter(pk=log.pk).update(rows=rows, finished_at=log.finished_at)


def logged(chunks: Iterable[bytes], *, log: ExportLog, counter: RowCounter) -> Iterator[bytes]:
    """Pass `chunks` through, finishing `log` with `counter`'s rows when the stream is complete."""
    yield from chunks
    export_log_finish(log=log, rows=counter.rows)

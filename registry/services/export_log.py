"""The export log: who took which data, through which channel, how many rows, when.

Every channel that hands out patient rows (REST exports and list pages, REDCap record
exports, FHIR searches and bulk files) writes here. A stream is logged once it is
complete: `logged` wraps the chunks and finishes the log after the last one.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Iterable, Iterator

from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone

from registry.models import ExportLog

logger = logging.getLogger(__name__)


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


def export_log_abort(*, log: ExportLog, rows: int) -> None:
    """Record that the stream stopped early, with the rows that went out before."""
    log.rows = rows
    log.aborted_at = timezone.now()
    ExportLog.objects.filter(pk=log.pk).update(rows=rows, aborted_at=log.aborted_at)


def logged(chunks: Iterable[bytes], *, log: ExportLog, counter: RowCounter) -> Iterator[bytes]:
    """Pass `chunks` through, finishing `log` with `counter`'s rows when the stream is complete.

    Promises: a stream that fails or is closed before its end is logged as aborted
    (never as finished) and the error is raised on, so the server cuts the response
    off and the client sees an incomplete download, not a complete-looking file.
    """
    try:
        yield from chunks
    except BaseException as exc:  # also GeneratorExit: the client hung up
        try:
            export_log_abort(log=log, rows=counter.rows)
        except DatabaseError:
            # The failure broke the surrounding transaction: the error itself still goes up.
            logger.exception("Export %s: could not record the abort", log.pk)
        if not isinstance(exc, GeneratorExit):
            logger.exception("Export %s (%s.%s) aborted after %s rows", log.pk, log.dataset,
                             log.format, counter.rows)
        raise
    export_log_finish(log=log, rows=counter.rows)


def export_log_prune(*, now=None) -> int:
    """Delete the REST list-page rows (one per page, `dataset` is the endpoint path)
    older than REGISTRY_EXPORT_LOG_RETENTION_DAYS; returns how many.

    Promises: rows of whole exports (dataset files, REDCap records, FHIR searches and
    bulk files, commands: one row per export) are never deleted, so who took which
    dataset stays answerable for the registry's life; only page-by-page browsing,
    whose rows grow with paging, is bounded.
    """
    cutoff = (now or timezone.now()) - datetime.timedelta(
        days=settings.REGISTRY_EXPORT_LOG_RETENTION_DAYS)
    deleted, _ = ExportLog.objects.filter(dataset__startswith="/", created_at__lt=cutoff).delete()
    return deleted

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


class ExportFailed(Exception):
    """The database refused the export's query before its first byte went out (the
    error itself is in the server log; its text is not for the client)."""

    message = ("The export could not be run: the database refused its query. Nothing was "
               "sent and the export log says aborted; try again, or ask your data manager.")


class _Begun:
    """The stream after its first chunk was taken; closing it closes the stream (so a
    COPY left unread is cancelled when the server closes the response)."""

    def __init__(self, first: bytes | None, stream: Iterator[bytes]):
        self._first, self._stream = first, stream

    def __iter__(self):
        return self

    def __next__(self) -> bytes:
        if self._first is not None:
            first, self._first = self._first, None
            return first
        return next(self._stream)

    def close(self) -> None:
        self._first = None
        self._stream.close()


def begun(chunks: Iterable[bytes], *, log: ExportLog, counter: RowCounter) -> _Begun:
    """`logged(chunks)`, run now up to its first chunk, before the status line is sent.

    Promises: every streaming channel's first chunk holds the first result of its query
    (the CSV header goes out with the first rows), so a query the database refuses is
    answered as an error (ExportFailed, logged as aborted), never as a 200 with a cut-off
    file. The rest streams when the server reads it; closing the body (the server does,
    also for an unread or abandoned response) cancels the query.
    """
    stream = logged(chunks, log=log, counter=counter)
    try:
        first = next(stream)
    except StopIteration:
        first = None
    except DatabaseError as exc:
        raise ExportFailed(ExportFailed.message) from exc
    return _Begun(first, stream)


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

"""A streaming export that fails half-way is logged as aborted, not finished, and the
error reaches the server (which cuts the response off) instead of a complete-looking 200."""

import pytest

from registry.models import ExportLog
from registry.services.export_log import RowCounter, export_log_start, logged


def _failing(counter):
    counter.rows += 1
    yield b"registry_id,nrs\nAAA-0001,7\n"
    raise RuntimeError("database went away")


def test_a_stream_that_fails_is_logged_as_aborted_with_the_rows_sent(nurse):
    log = export_log_start(user=nurse, dataset="visits", fmt="csv", filters={}, dates="relative")
    counter = RowCounter()
    stream = logged(_failing(counter), log=log, counter=counter)
    assert next(stream).startswith(b"registry_id")
    with pytest.raises(RuntimeError, match="database went away"):
        next(stream)
    log.refresh_from_db()
    assert log.aborted_at is not None and log.finished_at is None and log.rows == 1


def test_a_stream_the_client_closes_is_aborted_too(nurse):
    log = export_log_start(user=nurse, dataset="visits", fmt="csv", filters={}, dates="relative")
    counter = RowCounter()
    stream = logged(iter([b"a\n", b"b\n"]), log=log, counter=counter)
    next(stream)
    stream.close()
    log.refresh_from_db()
    assert log.aborted_at is not None and log.finished_at is None


def test_a_complete_stream_is_finished_not_aborted(nurse):
    log = export_log_start(user=nurse, dataset="visits", fmt="csv", filters={}, dates="relative")
    counter = RowCounter()
    assert b"".join(logged(iter([b"a\n"]), log=log, counter=counter)) == b"a\n"
    log = ExportLog.objects.get(pk=log.pk)
    assert log.finished_at is not None and log.aborted_at is None

"""Who listed which clinical rows through the REST API (the export log, channel "api").

Exports, REDCap record exports and FHIR searches are logged by
`services.exports.export_log_start` / `export_log_finish`: an INSERT before the
stream and an UPDATE once the last row went out. A list page is complete before
it is sent, so it is logged afterwards in one INSERT, with its row count: paging
through every visit 1000 at a time leaves one row per page, like FHIR paging does.
"""

from django.utils import timezone

from registry.models import ExportLog


def log_list_page(*, user, endpoint: str, fmt: str, filters: dict, dates: str, rows: int) -> ExportLog:
    """Record that `user` received one page of `rows` rows from the list at `endpoint`.

    `dataset` holds the endpoint path ("/api/v1/visits/"), which keeps list pages
    apart from the exports' datasets ("visits"); `dates` is "iso" or "shifted".
    """
    return ExportLog.objects.create(user=user, channel="api", dataset=endpoint, format=fmt,
                                    filters=filters, dates=dates, rows=rows,
                                    finished_at=timezone.now())

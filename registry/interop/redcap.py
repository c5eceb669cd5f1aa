"""REDCap-compatible API at /redcap/api/ (read-only exports).

POST, form-encoded, `token` = a registry API token (32 hex, the same as for
/api/v1/). Supported `content`: version, project, metadata, exportFieldNames,
instrument, arm, event, formEventMapping, repeatingFormsEvents, record. Anything
else, and every import or delete (`action` other than export), gets REDCap's
error shape with status 400: `{"error": "..."}` for json, `ERROR: ...` text for
csv, `<hash><error>...</error></hash>` for xml, following `returnFormat` (or
`format` when `returnFormat` is absent, as PyCap reads it). A body that cannot
be read (more than DATA_UPLOAD_MAX_NUMBER_FIELDS fields, too large, broken
multipart) gets the same shape, in the format the Accept header names or xml.
Bad tokens get 403, as in REDCap; a token over REGISTRY_API_RATE gets 429 with
Retry-After, in the same error shape. Record exports stream and are written to the
export log.
"""

import io
import json
import re
from collections.abc import Iterable, Iterator
from xml.sax.saxutils import escape

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import HttpResponse, StreamingHttpResponse, UnreadablePostError
from django.http.multipartparser import MultiPartParserError
from django.views.decorators.csrf import csrf_exempt

from registry.services import inputs, redcap
from registry.services.cells import CsvWriter
from registry.services.export_log import ExportFailed, RowCounter, begun, export_log_start

from .auth import RateLimited, token_user

FORMATS = ("json", "csv", "xml")
CONTENT_TYPES = {"json": "application/json; charset=utf-8", "csv": "text/csv; charset=utf-8",
                 "xml": "text/xml; charset=utf-8"}
CHUNK = 64 * 1024


class _Refused(Exception):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def _error(message: str, fmt: str, status: int = 400) -> HttpResponse:
    if fmt == "json":
        body = json.dumps({"error": message})
    elif fmt == "csv":
        body = f"ERROR: {message}"
    else:
        body = f'<?xml version="1.0" encoding="UTF-8" ?>\n<hash>\n  <error>{escape(message)}</error>\n</hash>'
    return HttpResponse(body, status=status, content_type=CONTENT_TYPES[fmt])


def _list_param(post, name: str) -> list[str]:
    """`name`, `name[]` and `name[0]`, `name[1]`... (PyCap), commas allowed (REDCapR)."""
    pattern = re.compile(rf"^{re.escape(name)}(\[\d*\])?$")
    values = []
    for key in post:
        if pattern.match(key):
            for value in post.getlist(key):
                values.extend(v.strip() for v in value.split(",") if v.strip())
    return values


def _encode_rows(rows: Iterable[dict], columns: list[str], fmt: str, counter: RowCounter,
                 header: list[str] | None = None, single: bool = False) -> Iterator[bytes]:
    """Rows as REDCap writes them, in ~64 KB chunks; counts them in `counter`."""
    buffer = io.StringIO()
    if fmt == "csv":
        writer = CsvWriter(buffer)
        writer.writerow(header or columns)
    elif fmt == "json":
        buffer.write("{" if single else "[")
    else:
        buffer.write('<?xml version="1.0" encoding="UTF-8" ?>\n<records>\n')
    for row in rows:
        if fmt == "csv":
            writer.writerow([row.get(c, "") for c in columns])
        elif fmt == "json":
            text = json.dumps({c: row.get(c, "") for c in columns}, ensure_ascii=False,
                              separators=(",", ":"))
            buffer.write(("," if counter.rows else "") + (text[1:-1] if single else text))
        else:
            buffer.write("<item>" + "".join(
                f"<{c}><![CDATA[{str(row.get(c, '')).replace(']]>', ']]]]><![CDATA[>')}]]></{c}>"
                for c in columns) + "</item>\n")
        counter.rows += 1
        if buffer.tell() >= CHUNK:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    if fmt == "json":
        buffer.write("}" if single else "]")
    elif fmt == "xml":
        buffer.write("</records>\n")
    yield buffer.getvalue().encode()


def _respond(rows: list[dict], fmt: str, single: bool = False) -> HttpResponse:
    columns = list(rows[0]) if rows else []
    body = b"".join(_encode_rows(rows, columns, fmt, RowCounter(), single=single))
    return HttpResponse(body, content_type=CONTENT_TYPES[fmt])


# What reading the form body can raise (too many fields, too large, broken multipart, a
# client that hung up); REDCap clients expect REDCap's error shape for these too.
BODY_ERRORS = (TooManyFieldsSent, TooManyFilesSent, RequestDataTooBig, MultiPartParserError,
               UnreadablePostError)


def _body_error(error: Exception) -> str:
    if isinstance(error, TooManyFieldsSent):
        return (f"The request has more than {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS} form fields; "
                "ask for fewer records or fields at a time (no records at all exports every record).")
    if isinstance(error, RequestDataTooBig):
        return (f"The request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes; "
                "ask for fewer records or fields at a time.")
    return f"The request body could not be read as a form: {error}"


@csrf_exempt
def redcap_api(request):
    try:
        post = request.POST
    except BODY_ERRORS as error:
        # No returnFormat to follow in an unread body: the Accept header, else REDCap's xml.
        accept = request.headers.get("Accept", "")
        return _error(_body_error(error), next((f for f in FORMATS if f in accept), "xml"))
    error_fmt = post.get("returnFormat") or post.get("format") or "xml"
    if error_fmt not in FORMATS:
        error_fmt = "xml"
    problem = inputs.params_problem(post)
    if problem:
        return _error(problem[1], error_fmt)
    try:
        return _answer(request, post)
    except RateLimited as limited:
        response = _error(str(limited), error_fmt, 429)
        response["Retry-After"] = str(limited.wait)
        return response
    except _Refused as refused:
        return _error(str(refused), error_fmt, refused.status)
    except redcap.RedcapRequestError as refused:
        return _error(str(refused), error_fmt)


def _answer(request, post):
    if request.method != "POST":
        raise _Refused("The REDCap API only accepts POST requests.", status=405)
    token = post.get("token", "")
    if not token:
        raise _Refused("You must provide an API token.", status=403)
    user = token_user(token)  # RateLimited past REGISTRY_API_RATE
    if user is None:
        raise _Refused("You do not have permissions to use the API", status=403)
    content = post.get("content", "")
    action = post.get("action", "export") or "export"
    if action != "export" or "data" in post:
        raise _Refused("This registry's REDCap API is read-only: imports and deletes are not "
                       "supported (change data in the registry itself).")
    fmt = post.get("format", "xml") or "xml"
    if fmt not in FORMATS:
        raise _Refused(f"The value of the parameter \"format\" ('{fmt}') is not valid.")
    if content == "version":
        return HttpResponse(redcap.REDCAP_VERSION, content_type="text/plain; charset=utf-8")
    if content == "project":
        return _respond([redcap.redcap_project()], fmt, single=True)
    if content == "metadata":
        return _respond(redcap.redcap_metadata(fields=_list_param(post, "fields"),
                                               forms=_list_param(post, "forms")), fmt)
    if content == "exportFieldNames":
        return _respond(redcap.redcap_export_field_names(field_name=post.get("field") or None), fmt)
    if content == "instrument":
        return _respond(redcap.redcap_instruments(), fmt)
    if content == "arm":
        return _respond(redcap.redcap_arms(), fmt)
    if content == "event":
        return _respond(redcap.redcap_events(), fmt)
    if content == "formEventMapping":
        return _respond(redcap.redcap_form_event_mapping(), fmt)
    if content == "repeatingFormsEvents":
        return _respond(redcap.redcap_repeating(), fmt)
    if content == "record":
        return _records(post, user, fmt)
    if not content:
        raise _Refused("The parameter 'content' is missing.")
    raise _Refused(f"The value of the parameter \"content\" ('{content}') is not valid or not "
                   "supported by this registry (read-only exports only).")


def _records(post, user, fmt: str):
    record_type = post.get("type", "flat") or "flat"
    if record_type not in ("flat", "eav"):
        raise _Refused(f"The value of the parameter \"type\" ('{record_type}') is not valid.")
    if fmt == "xml":
        raise _Refused("The 'xml' format is not supported for record exports here; use json or csv.")
    begin, end = post.get("dateRangeBegin"), post.get("dateRangeEnd")
    export = redcap.RecordExport(
        user=user,
        records=_list_param(post, "records"),
        fields=_list_param(post, "fields"),
        forms=_list_param(post, "forms"),
        events=_list_param(post, "events"),
        labels=post.get("rawOrLabel") == "label",
        date_begin=redcap.parse_redcap_datetime("dateRangeBegin", begin) if begin else None,
        date_end=redcap.parse_redcap_datetime("dateRangeEnd", end) if end else None,
    )
    # exportCheckboxLabel, exportSurveyFields, exportDataAccessGroups, filterLogic: no
    # checkboxes, surveys or DAGs here, so they change nothing and are accepted.
    log = export_log_start(user=user, dataset="record", fmt=f"{record_type}-{fmt}",
                           filters=export.filters(), dates="relative", channel="redcap")
    counter = RowCounter()
    stream = record_stream(export, record_type, fmt, counter,
                           label_headers=fmt == "csv" and post.get("rawOrLabelHeaders") == "label")
    try:
        body = begun(stream, log=log, counter=counter)
    except ExportFailed as failed:
        raise _Refused(str(failed), status=503) from failed
    return StreamingHttpResponse(body, content_type=CONTENT_TYPES[fmt])


def record_stream(export, record_type: str, fmt: str, counter: RowCounter, *,
                  label_headers: bool = False, fast: bool | None = None) -> Iterator[bytes]:
    """The record export's bytes. PostgreSQL (default, or `fast` True): the rows are written
    by the database (`services.redcap.fast`); `fast=False`, and other databases: REDCap's
    rows built in Python (the reference; the same bytes, tests/interop/test_channel_outputs.py)."""
    if fast is not False and redcap.fast_available():
        return redcap.fast_record_stream(export, record_type, fmt, counter, label_headers=label_headers)
    if record_type == "eav":
        rows, columns, header = export.eav_rows(), redcap.EAV_COLUMNS, None
    else:
        rows, columns = export.rows(), export.columns()
        header = None
        if label_headers:
            labels = export.header_labels()
            header = [labels.get(c, c) for c in columns]
    return _encode_rows(rows, columns, fmt, counter, header=header)

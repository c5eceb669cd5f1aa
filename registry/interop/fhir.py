"""FHIR R4 REST endpoints under /fhir/ (read-only, JSON, token auth).

- `GET /fhir/metadata`: CapabilityStatement (no token needed, as FHIR asks).
- `GET /fhir/<type>/<id>`: read; `GET /fhir/<type>?...`: search, a `searchset`
  Bundle paged with `_count` (default 50, max 1000) and `_offset`, with
  self/next/previous links; `_count=0` answers the total only (FHIR's
  `_summary=count`: no entries, no next link).
- `GET /fhir/$export?_type=A,B&_since=...`: bulk export, a simple synchronous
  variant of the Bulk Data kick-off: 200 with the completion manifest at once
  (or, with `Prefer: respond-async`, 202 and `Content-Location` of a status URL
  that answers 200 with the same manifest). Each output file is
  `GET /fhir/$export/<type>.ndjson`, streamed as `application/fhir+ndjson`.
Every search and export file is written to the export log (channel "fhir"),
with dates "iso" or, for users who see shifted dates, "shifted". A token over
REGISTRY_API_RATE gets 429 with Retry-After and an OperationOutcome (throttled).
"""

import json
from urllib.parse import urlencode

from django.http import HttpResponse, StreamingHttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from registry.services import fhir
from registry.services.export_log import (
    ExportFailed,
    RowCounter,
    begun,
    export_log_finish,
    export_log_start,
)

from .auth import RateLimited, header_token_user

FHIR_JSON = "application/fhir+json"
FHIR_NDJSON = "application/fhir+ndjson"
PAGE_DEFAULT = 50
PAGE_MAX = 1000
PAGING = {"_count", "_offset", "_format"}


def _json(body: dict, status: int = 200, **headers) -> HttpResponse:
    response = HttpResponse(json.dumps(body, separators=(",", ":")), status=status,
                            content_type=FHIR_JSON)
    for key, value in headers.items():
        response[key.replace("_", "-")] = value
    return response


def _outcome(message: str, status: int, code: str = "invalid") -> HttpResponse:
    return _json(fhir.operation_outcome(message, code=code), status=status)


def _base(request) -> str:
    return request.build_absolute_uri("/fhir/")


def _authorised(view):
    def wrapper(request, *args, **kwargs):
        try:
            user = header_token_user(request)
        except RateLimited as limited:
            response = _outcome(str(limited), 429, code="throttled")
            response["Retry-After"] = str(limited.wait)
            return response
        if user is None:
            response = _outcome("A valid token is required: Authorization: Bearer <32 hex>.", 401,
                                code="login")
            response["WWW-Authenticate"] = "Bearer"
            return response
        try:
            return view(request, user, *args, **kwargs)
        except fhir.FhirQueryError as error:
            return _outcome(str(error), error.status, code=error.code)

    wrapper.__name__ = view.__name__
    wrapper.__doc__ = view.__doc__
    return require_GET(wrapper)


def _int_param(request, name: str, default: int, maximum: int | None = None) -> int:
    raw = request.GET.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise fhir.FhirQueryError(f"Parameter '{name}' must be a whole number, not '{raw}'.") from None
    if value < 0:
        raise fhir.FhirQueryError(f"Parameter '{name}' must not be negative, not '{raw}'.")
    return min(value, maximum) if maximum else value


@require_GET
def capability_statement(request):
    """What this server does, for FHIR clients that look first."""
    searches = {
        "Patient": ["_id", "identifier", "gender", "_lastUpdated"],
        "ResearchStudy": ["_id"],
        "ResearchSubject": ["_id", "patient", "individual", "status", "_lastUpdated"],
        "Device": ["_id", "patient", "_lastUpdated"],
        "Procedure": ["_id", "patient", "subject", "date", "_lastUpdated"],
        "Observation": ["_id", "patient", "subject", "code", "date", "_lastUpdated"],
        "AdverseEvent": ["_id", "patient", "subject", "date", "seriousness", "_lastUpdated"],
        "Questionnaire": ["_id"],
        "QuestionnaireResponse": ["_id", "patient", "subject", "_lastUpdated"],
    }
    types = {"_id": "token", "identifier": "token", "gender": "token", "status": "token",
             "code": "token", "seriousness": "token", "patient": "reference",
             "individual": "reference", "subject": "reference", "date": "date",
             "_lastUpdated": "date"}
    body = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": timezone.now().date().isoformat(),
        "kind": "instance",
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "implementation": {"description": "Neuromodulation registry (read-only, pseudonymous)",
                           "url": _base(request)},
        "rest": [{
            "mode": "server",
            "security": {"description": "Authorization: Bearer <registry API token>. Investigators "
                                        "see clinical dates shifted per patient (meta.security "
                                        "PSEUDED) and may not search on date."},
            "resource": [{
                "type": name,
                "interaction": [{"code": "read"}, {"code": "search-type"}],
                "searchParam": [{"name": p, "type": types[p]} for p in params],
            } for name, params in searches.items()],
            "operation": [{"name": "export",
                           "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"}],
        }],
    }
    return _json(body)


@_authorised
def read(request, user, resource_type: str, resource_id: str):
    resource = fhir.fhir_read(user=user, resource_type=resource_type, resource_id=resource_id)
    if resource is None:
        return _outcome(f"{resource_type}/{resource_id} is not known (or not visible to you).", 404,
                        code="not-found")
    return _json(resource)


def _link(request, found, resource_type: str, relation: str, count: int, start: int) -> dict:
    query = [(k, v) for k, values in found.used.items() for v in values]
    query += [("_count", count), ("_offset", start)]
    return {"relation": relation, "url": f"{_base(request)}{resource_type}?{urlencode(query)}"}


@_authorised
def search(request, user, resource_type: str):
    params = {key: request.GET.getlist(key) for key in request.GET if key not in PAGING}
    count = _int_param(request, "_count", PAGE_DEFAULT, PAGE_MAX)
    offset = _int_param(request, "_offset", 0)
    found = fhir.fhir_search(user=user, resource_type=resource_type, params=params)
    log = export_log_start(user=user, dataset=resource_type, fmt="json",
                           filters={**found.used, "_count": count, "_offset": offset},
                           dates=found.dates, channel="fhir")
    if count == 0:
        # FHIR: _count=0 means _summary=count, the total without entries or paging links
        # (a next link to the same empty page would loop a client forever).
        total = found.total()
        export_log_finish(log=log, rows=0)
        return _json({"resourceType": "Bundle", "type": "searchset",
                      "timestamp": fhir._instant(timezone.now()),
                      "link": [_link(request, found, resource_type, "self", count, offset)],
                      "total": total})
    page = []
    has_next = False
    for index, resource in enumerate(found.resources()):
        if index < offset:
            continue
        if len(page) == count:
            has_next = True
            break
        page.append(resource)
    base = _base(request)
    links = [_link(request, found, resource_type, "self", count, offset)]
    if has_next:
        links.append(_link(request, found, resource_type, "next", count, offset + count))
    if offset:
        links.append(_link(request, found, resource_type, "previous", count, max(0, offset - count)))
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "timestamp": fhir._instant(timezone.now()),
        "link": links,
    }
    if page:  # FHIR JSON has no empty arrays: a search that finds nothing has no entry
        bundle["entry"] = [{"fullUrl": f"{base}{r['resourceType']}/{r['id']}", "resource": r,
                            "search": {"mode": "match"}} for r in page]
    if resource_type in ("Patient", "ResearchSubject", "Device", "AdverseEvent") and found.ids is None:
        bundle["total"] = found.rows.count()
    export_log_finish(log=log, rows=len(page))
    return _json(bundle)


def _export_types(request) -> list[str]:
    wanted = [t for raw in request.GET.getlist("_type") for t in raw.split(",") if t]
    unknown = [t for t in wanted if t not in fhir.EXPORT_TYPES]
    if unknown:
        raise fhir.FhirQueryError(f"Parameter '_type': '{unknown[0]}' cannot be exported; "
                                  f"supported: {', '.join(fhir.EXPORT_TYPES)}.")
    return wanted or list(fhir.EXPORT_TYPES)


def _manifest(request) -> dict:
    since = request.GET.get("_since")
    fhir.fhir_since_params(since)  # refuse a bad value now, before the files are asked for
    base = _base(request)
    suffix = f"?{urlencode({'_since': since})}" if since else ""
    return {
        "transactionTime": fhir._instant(timezone.now()),
        "request": request.build_absolute_uri(),
        "requiresAccessToken": True,
        "output": [{"type": t, "url": f"{base}$export/{t}.ndjson{suffix}"}
                   for t in _export_types(request)],
        "error": [],
    }


@_authorised
def bulk_export(request, user):
    """Kick-off; see the module docstring for the simplifications."""
    manifest = _manifest(request)
    if "respond-async" in request.headers.get("Prefer", ""):
        status_url = _base(request) + "$export-status?" + request.GET.urlencode()
        return HttpResponse(status=202, headers={"Content-Location": status_url})
    return _json(manifest)


@_authorised
def bulk_export_status(request, user):
    return _json(_manifest(request))


@_authorised
def bulk_export_file(request, user, resource_type: str):
    if resource_type not in fhir.EXPORT_TYPES:
        return _outcome(f"'{resource_type}' cannot be exported; supported: "
                        f"{', '.join(fhir.EXPORT_TYPES)}.", 404, code="not-found")
    since = request.GET.get("_since")
    found = fhir.fhir_search(user=user, resource_type=resource_type,
                             params=fhir.fhir_since_params(since))
    log = export_log_start(user=user, dataset=resource_type, fmt="ndjson",
                           filters={"_since": since} if since else {}, dates=found.dates,
                           channel="fhir")

    counter = RowCounter()
    try:
        body = begun(found.ndjson(counter), log=log, counter=counter)
    except ExportFailed as failed:
        return _outcome(str(failed), 503, code="transient")
    return StreamingHttpResponse(body, content_type=FHIR_NDJSON)

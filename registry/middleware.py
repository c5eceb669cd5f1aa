"""Request and response rules that hold for every page and API.

`InputCheckMiddleware` refuses (400, naming the parameter) query and form
parameters that no database can store or whose instants have impossible
offsets, before any view runs (rule: services.inputs). `NoStoreMiddleware`
keeps patient data out of browser and proxy caches.
"""

import json

from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import HttpResponse, UnreadablePostError
from django.http.multipartparser import MultiPartParserError

from registry.services import fhir, inputs

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
# Answers under these paths carry patient data: never kept in a cache.
NO_STORE_PREFIXES = ("/api/", "/redcap/", "/fhir/")


def refusal(path: str, param: str, message: str, status: int = 400) -> HttpResponse:
    """`message` about `param` in the shape of the channel at `path`."""
    if path.startswith("/fhir/"):
        body, kind = json.dumps(fhir.operation_outcome(message, code="invalid")), "application/fhir+json"
    elif path.startswith("/api/"):
        # DRF's shape for a refused parameter: {name: [message]}.
        body, kind = json.dumps({param: [message]}), "application/json"
    else:
        body, kind = message, "text/plain; charset=utf-8"
    return HttpResponse(body, status=status, content_type=kind)


class InputCheckMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        problem = inputs.params_problem(request.GET)
        # The REDCap view reads its own body (it answers in REDCap's error shapes) and
        # checks it with the same rule.
        if (problem is None and request.method == "POST" and request.content_type in FORM_TYPES
                and not request.path.startswith("/redcap/")):
            try:
                problem = inputs.params_problem(request.POST)
            except (MultiPartParserError, TooManyFilesSent, TooManyFieldsSent, RequestDataTooBig,
                    UnreadablePostError) as exc:
                problem = ("body", f"the request body could not be read: {exc}")
        if problem:
            return refusal(request.path, *problem)
        return self.get_response(request)


class NoStoreMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if request.path.startswith(NO_STORE_PREFIXES):
            response["Cache-Control"] = "no-store"
        return response

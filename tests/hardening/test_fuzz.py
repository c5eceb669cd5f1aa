"""Fuzzing every channel for server errors (bounded: a few examples per operation, well
under a minute): schemathesis over /api/schema/ for a nurse and an investigator, and
hypothesis-generated REDCap and FHIR requests. A 5xx, or an exception raised in a view
or while streaming, fails the test."""

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from registry.services.tokens import api_token_create

BOUNDED = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                   suppress_health_check=list(HealthCheck))

# Text that breaks databases and parsers: NUL, surrogate-free odd unicode, offsets, huge numbers.
NASTY = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["\x00", "a\x00", "2024-01-01T00:00:00+16:00", "ge2024-13-01", "9" * 40, "-1",
                     "ge9999-12-31T23:59:59-01:00", "le0001-01-01", "%", "'; --", "[]", "{}",
                     "visit-1-nrs", "painscore-99999999999999999999", "AAA-0001", "😀" * 5]),
)


@pytest.fixture
def keep_test_connection():
    """Like Django's test client: the test's transaction must outlive each WSGI request."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.mark.parametrize("role", ["nurse", "investigator"])
def test_schemathesis_finds_no_server_error_for_a_nurse_or_an_investigator(
        request, cohort, role, keep_test_connection):
    user = request.getfixturevalue(role)
    headers = {"Authorization": f"Token {api_token_create(user=user, label='fuzz')}"}
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=4, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def no_server_error(case):
            case.call_and_validate(headers=headers, checks=[not_a_server_error])

        no_server_error()


def _drain(response):
    if response.streaming:
        b"".join(response.streaming_content)
    return response


REDCAP_PARAMS = ["content", "format", "returnFormat", "type", "records", "fields", "forms", "events",
                 "rawOrLabel", "rawOrLabelHeaders", "dateRangeBegin", "dateRangeEnd", "action",
                 "field", "records[0]", "fields[]"]
REDCAP_CONTENT = ["record", "metadata", "project", "exportFieldNames", "instrument", "event", "arm",
                  "formEventMapping", "repeatingFormsEvents", "version", "file", "user"]


def test_redcap_fuzz_finds_no_server_error(client, cohort, nurse):
    token = api_token_create(user=nurse, label="fuzz")

    @given(content=st.one_of(st.sampled_from(REDCAP_CONTENT), NASTY),
           fmt=st.sampled_from(["json", "csv", "xml", "odm", ""]),
           params=st.dictionaries(st.sampled_from(REDCAP_PARAMS), NASTY, max_size=4))
    @BOUNDED
    def no_server_error(content, fmt, params):
        data = {"token": token, "content": content, "format": fmt, **params}
        response = _drain(client.post("/redcap/api/", data))
        assert response.status_code < 500, (data, response.status_code)

    no_server_error()


FHIR_TYPES = ["Patient", "ResearchStudy", "ResearchSubject", "Device", "Procedure", "Observation",
              "AdverseEvent", "Encounter"]
FHIR_PARAMS = ["_id", "identifier", "gender", "status", "patient", "individual", "subject", "code",
               "date", "seriousness", "_lastUpdated", "_count", "_sort", "_elements", "_format"]


def test_fhir_fuzz_finds_no_server_error(client, cohort, nurse, investigator):
    tokens = [api_token_create(user=user, label="fuzz") for user in (nurse, investigator)]

    @given(who=st.sampled_from(tokens), kind=st.sampled_from(FHIR_TYPES),
           params=st.dictionaries(st.sampled_from(FHIR_PARAMS), NASTY, max_size=3),
           read=st.one_of(st.none(), NASTY.filter(lambda s: "/" not in s and s not in ("", ".", ".."))))
    @BOUNDED
    def no_server_error(who, kind, params, read):
        path = f"/fhir/{kind}" if read is None else f"/fhir/{kind}/{read}"
        response = _drain(client.get(path, params, HTTP_AUTHORIZATION=f"Bearer {who}"))
        assert response.status_code < 500, (path, params, response.status_code)

    no_server_error()

    @given(who=st.sampled_from(tokens), types=NASTY, since=NASTY)
    @settings(max_examples=15, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def export_has_no_server_error(who, types, since):
        response = _drain(client.get("/fhir/$export", {"_type": types, "_since": since},
                                     HTTP_AUTHORIZATION=f"Bearer {who}",
                                     HTTP_PREFER="respond-async"))
        assert response.status_code < 500, (types, since, response.status_code)

    export_has_no_server_error()


def test_schemathesis_finds_no_server_error_in_the_queries_endpoints_for_a_data_manager(
        cohort, data_manager, keep_test_connection):
    """The write operations of /api/v1/queries/ (create, answer, close, reopen, cancel) for the
    role that may take most of them; nurses and investigators are fuzzed above."""
    from registry.services import queries

    for visit in cohort["a"][0].visits.all()[:2]:
        queries.query_open(record=visit, field="", text="fuzz seed", actor=data_manager)
    headers = {"Authorization": f"Token {api_token_create(user=data_manager, label='fuzz')}"}
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())
    operations = [result.ok() for result in schema.get_all_operations()]
    operations = [op for op in operations if op.path.startswith("/api/v1/queries/")]
    assert len(operations) == 7
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def no_server_error(case):
            case.call_and_validate(headers=headers, checks=[not_a_server_error])

        no_server_error()

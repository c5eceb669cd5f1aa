"""A streaming export whose query the database refuses is an error answer naming the
export, never a 200 with a cut-off file: the stream runs to its first chunk (which holds
the query's first result) before the status line goes out, and the export is logged as
aborted. Per channel: REST CSV and JSON, REDCap records, FHIR bulk files."""

import pytest
from django.db import connection
from django.db.models.expressions import RawSQL
from django.test import Client

from registry.models import ExportLog
from registry.services import datasets
from registry.services.datasets import Column, Redcap
from registry.services.export_log import ExportFailed
from registry.services.tokens import api_token_create

# Committed, not wrapped in a test transaction: on PostgreSQL a refused query breaks the
# transaction it runs in, which a real request (autocommit) does not have. A transactional
# test flushes the migrations' rows (default protocol, beat entries): they are re-created
# first, as the reminder tests do (serialized_rollback clashes with the content types).
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def reference_data(db):
    from registry.models import FollowUpProtocol
    from tests.mailserver import restore_reference_data

    if not FollowUpProtocol.objects.exists():
        restore_reference_data()


@pytest.fixture
def refused_column(monkeypatch):
    # A function neither SQLite nor PostgreSQL has: the query fails when it runs.
    boom = Column("boom", "Refused by the database", "int", lambda: RawSQL("no_such_function()", []),
                  redcap=Redcap("visit"))
    monkeypatch.setattr(datasets.VISITS, "columns", [*datasets.VISITS.columns, boom])


@pytest.fixture
def raw_client():
    return Client(raise_request_exception=False)


def assert_aborted(**where):
    log = ExportLog.objects.get(**where)
    assert log.aborted_at is not None and log.finished_at is None


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_a_refused_rest_export_is_a_503_not_a_short_200(raw_client, cohort, data_manager,
                                                         refused_column, fmt):
    key = api_token_create(user=data_manager)
    response = raw_client.get(f"/api/v1/exports/visits/?format={fmt}", HTTP_AUTHORIZATION=f"Token {key}")
    assert response.status_code == 503
    assert not response.streaming
    assert response.json()["detail"] == ExportFailed.message
    assert "no_such_function" not in response.content.decode()  # the database's text stays in the log
    assert_aborted(dataset="visits")


def test_a_refused_redcap_record_export_is_a_503_not_a_short_200(raw_client, cohort, data_manager,
                                                                  refused_column):
    key = api_token_create(user=data_manager)
    response = raw_client.post("/redcap/api/", {"token": key, "content": "record", "format": "json"})
    assert response.status_code == 503 and not response.streaming
    assert response.json()["error"] == ExportFailed.message
    assert_aborted(channel="redcap")


@pytest.fixture
def locked_table():
    """Another session holds the visits table; this connection gives up after 200 ms
    (PostgreSQL): a refusal the FHIR bulk file meets in its first query of visits."""
    import psycopg

    settings = connection.settings_dict
    other = psycopg.connect(host=settings["HOST"], port=settings["PORT"] or 5432,
                            user=settings["USER"], dbname=settings["NAME"], autocommit=True)
    other.execute("BEGIN")
    other.execute("LOCK TABLE registry_visit IN ACCESS EXCLUSIVE MODE")
    with connection.cursor() as cursor:
        cursor.execute("SET lock_timeout = '200ms'")
    yield
    other.execute("ROLLBACK")
    other.close()
    with connection.cursor() as cursor:
        cursor.execute("RESET lock_timeout")


def test_a_refused_fhir_bulk_file_is_a_503_not_a_short_200(raw_client, cohort, data_manager, request):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL's lock_timeout (CI runs it)")
    key = api_token_create(user=data_manager)
    request.getfixturevalue("locked_table")
    response = raw_client.get("/fhir/$export/Observation.ndjson", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert response.status_code == 503 and not response.streaming
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["diagnostics"] == ExportFailed.message
    assert_aborted(channel="fhir")


def test_an_export_that_works_still_streams_header_and_rows(client, cohort, data_manager):
    key = api_token_create(user=data_manager)
    response = client.get("/api/v1/exports/visits/?format=csv", HTTP_AUTHORIZATION=f"Token {key}")
    assert response.status_code == 200 and response.streaming
    text = b"".join(response.streaming_content).decode()
    assert text.startswith("registry_id,site,")
    assert len(text.splitlines()) > 1
    assert ExportLog.objects.get(dataset="visits").finished_at is not None


def test_an_unread_export_leaves_the_connection_usable(client, cohort, data_manager):
    # The COPY started before the answer; closing the answer unread (as a server does for
    # a client that hangs up) cancels it and logs the export as aborted.
    key = api_token_create(user=data_manager)
    response = client.get("/api/v1/exports/visits/?format=csv", HTTP_AUTHORIZATION=f"Token {key}")
    assert response.status_code == 200
    response.close()
    assert ExportLog.objects.filter(dataset="visits").count() == 1
    assert_aborted(dataset="visits")

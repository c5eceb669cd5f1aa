"""A streaming export whose query the database refuses is an error answer, never a 200
with a cut-off file: the stream runs to its first chunk (which holds the query's
result) before the status line goes out, and the export is logged as aborted."""

import pytest
from django.db.models.expressions import RawSQL
from django.test import Client

from registry.models import ExportLog
from registry.services import datasets
from registry.services.datasets import Column, Redcap
from registry.services.tokens import api_token_create

# Committed (not wrapped in a test transaction): on PostgreSQL a refused query breaks the
# transaction it runs in, as it would not in the autocommit of a real request.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def refused_column(monkeypatch):
    # A function neither SQLite nor PostgreSQL has: the query fails when it runs.
    boom = Column("boom", "Refused by the database", "int", lambda: RawSQL("no_such_function()", []),
                  redcap=Redcap("visit"))
    monkeypatch.setattr(datasets.VISITS, "columns", [*datasets.VISITS.columns, boom])


@pytest.fixture
def raw_client():
    return Client(raise_request_exception=False)


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_a_refused_rest_export_is_an_error_not_a_short_200(raw_client, cohort, data_manager,
                                                             refused_column, fmt):
    key = api_token_create(user=data_manager)
    response = raw_client.get(f"/api/v1/exports/visits/?format={fmt}", HTTP_AUTHORIZATION=f"Token {key}")
    assert response.status_code == 500
    log = ExportLog.objects.get(dataset="visits")
    assert log.aborted_at is not None and log.finished_at is None


def test_a_refused_redcap_record_export_is_an_error_not_a_short_200(raw_client, cohort, data_manager,
                                                                      refused_column):
    key = api_token_create(user=data_manager)
    response = raw_client.post("/redcap/api/", {"token": key, "content": "record", "format": "csv"})
    assert response.status_code == 500
    assert ExportLog.objects.get(channel="redcap").aborted_at is not None


def test_an_export_that_works_still_streams_header_and_rows(client, cohort, data_manager):
    key = api_token_create(user=data_manager)
    response = client.get("/api/v1/exports/visits/?format=csv", HTTP_AUTHORIZATION=f"Token {key}")
    text = b"".join(response.streaming_content).decode()
    assert response.status_code == 200 and text.startswith("registry_id,site,")
    assert len(text.splitlines()) > 1
    assert ExportLog.objects.get(dataset="visits").finished_at is not None

"""Issue 21: the outcome summary and the PROM outcomes read a cohort in a fixed number of
queries, whatever its size: no query per patient, visit or answer (the PROM outcomes once
took nine lookups per visit). The dashboard's: tests/admin/test_dashboard_queries.py."""

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from registry.models import Patient, PromAnswer
from registry.services import outcomes
from registry.services.audit import system_user
from registry.services.proms.outcomes import prom_outcomes
from registry.services.synthetic import synthetic_registry

pytestmark = pytest.mark.django_db

TODAY = datetime.date(2026, 12, 1)


def _grow(patients: int, seed: int) -> None:
    synthetic_registry(patients=patients, seed=seed, today=TODAY, actor=system_user())


def _queries(call) -> int:
    with CaptureQueriesContext(connection) as captured:
        call()
    return len(captured)


@pytest.mark.parametrize("params", [{}, {"group_by": "therapy"}, {"timepoint": "m12"},
                                    {"pain_site": "phantom_limb"}, {"therapy": "SCS", "group_by": "site"}])
def test_the_summary_issues_as_many_queries_for_many_patients_as_for_few(params):
    def summary():
        return outcomes.outcome_summary(patients=Patient.objects.all(), **params)

    _grow(12, seed=3)
    few = _queries(summary)
    _grow(48, seed=4)
    assert Patient.objects.count() == 60
    assert _queries(summary) == few
    assert few <= 7  # patients, implants, visits (+ pain scores), reasons, events


def test_the_prom_outcomes_issue_as_many_queries_for_many_patients_as_for_few():
    def proms():
        return prom_outcomes(patients=Patient.objects.all())

    _grow(12, seed=5)
    few = _queries(proms)
    _grow(48, seed=6)
    assert PromAnswer.objects.count() > 1000
    assert proms()["overall"]["n_patients"] > 12
    assert _queries(proms) == few

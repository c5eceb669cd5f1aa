"""Issue 21: the outcome summary and the PROM outcomes read a cohort in a fixed number of
queries, whatever its size: no query per patient, visit or answer (the PROM outcomes once
took nine lookups per visit). The dashboard's: tests/admin/test_dashboard_queries.py."""

import pytest

from registry.models import Patient, PromAnswer
from registry.services import outcomes
from registry.services.proms.outcomes import prom_outcomes
from tests.factories import count_queries, grow_synthetic

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("params", [{}, {"group_by": "therapy"}, {"timepoint": "m12"},
                                    {"pain_site": "phantom_limb"}, {"therapy": "SCS", "group_by": "site"}])
def test_the_summary_issues_as_many_queries_for_many_patients_as_for_few(params):
    def summary():
        return outcomes.outcome_summary(patients=Patient.objects.all(), **params)

    grow_synthetic(12, seed=3)
    few = count_queries(summary)
    grow_synthetic(48, seed=4)
    assert Patient.objects.count() == 60
    assert count_queries(summary) == few
    assert few <= 7  # patients, implants, visits (+ pain scores), reasons, events


def test_the_prom_outcomes_issue_as_many_queries_for_many_patients_as_for_few():
    def proms():
        return prom_outcomes(patients=Patient.objects.all())

    grow_synthetic(12, seed=5)
    few = count_queries(proms)
    grow_synthetic(48, seed=6)
    assert PromAnswer.objects.count() > 1000
    assert proms()["overall"]["n_patients"] > 12
    assert count_queries(proms) == few

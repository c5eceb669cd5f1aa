"""Issue 21: on PostgreSQL the outcome rows come as COPY's CSV parsed into typed columns;
the figures must be exactly those of the cursor path (SQLite's, and the reference)."""

import datetime
import math

import pytest

from registry.models import Patient
from registry.services import outcomes
from registry.services.audit import system_user
from registry.services.outcomes import analysis
from registry.services.synthetic import synthetic_registry
from tests.conftest import needs_postgres

pytestmark = [pytest.mark.django_db, needs_postgres()]


def _same(a, b):
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@pytest.mark.parametrize("params", [{}, {"group_by": "therapy"}, {"timepoint": "m12"},
                                    {"pain_site": "phantom_limb"}, {"group_by": "site"},
                                    {"therapy": "DRG", "etiology": "postamputation"}])
def test_copied_rows_give_the_cursor_paths_figures(params, monkeypatch):
    synthetic_registry(patients=120, seed=21, today=datetime.date(2026, 12, 1), actor=system_user())
    fast = outcomes.outcome_report(patients=Patient.objects.all(), **params)
    copies = []
    original = analysis._copied_frame
    monkeypatch.setattr(analysis, "_copied_frame", lambda *a: copies.append(1) or original(*a))
    outcomes.outcome_summary(patients=Patient.objects.all(), **params)
    assert copies  # the COPY path was taken
    monkeypatch.setattr(analysis.pg, "available", lambda db: False)
    slow = outcomes.outcome_report(patients=Patient.objects.all(), **params)
    assert fast["summary"]["n_patients"] > 0
    assert _same(fast, slow)


def test_an_empty_cohort_through_copy(monkeypatch):
    summary = outcomes.outcome_summary(patients=Patient.objects.none())
    assert summary["n_patients"] == 0

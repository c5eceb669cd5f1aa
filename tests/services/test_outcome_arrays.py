"""Issue 21: the dashboard's rows read as arrays and paired with NumPy must give what the
reference paths give: the cursor's rows (SQLite's path) and the pandas pick of
`outcomes.analysis.follow_up_rows`."""

import datetime
import math

import numpy as np
import pandas as pd
import pytest
from django.db.models import F

from registry.models import Patient, Visit
from registry.services import outcomes
from registry.services.audit import system_user
from registry.services.datasets import pg
from registry.services.outcomes import analysis, frames
from registry.services.proms import outcomes as prom
from registry.services.proms.answers import prom_answers_record
from registry.services.proms.instruments import SCORES
from registry.services.synthetic import synthetic_registry
from tests.conftest import needs_postgres
from tests.factories import make_visit

pytestmark = pytest.mark.django_db
TODAY = datetime.date(2026, 12, 1)


@pytest.fixture
def registry():
    synthetic_registry(patients=120, seed=21, today=TODAY, actor=system_user())
    return Patient.objects.all()


@pytest.fixture
def ties(registry):
    """Unscheduled visits with ODI answers on the day of a scheduled follow-up with PROM
    answers (the scheduled one is the pick), which the synthetic registry does not make."""
    scheduled = (Visit.objects.filter(status="completed", prom_sheet__isnull=False, implant__isnull=False)
                 .exclude(timepoint__in=["baseline", "trial_end", "unscheduled"]).order_by("-date_done"))
    tied = []
    for visit in scheduled[:4]:
        extra = make_visit(visit.patient, visit.implant, timepoint="unscheduled", date_done=visit.date_done)
        for done, level in ((visit, 3), (extra, 0)):
            prom_answers_record(visit=done, instrument="odi", answers={f"s{n}": level for n in range(1, 11)},
                                actor=system_user())
        tied.append(visit.patient_id)
    assert tied
    return registry


def _same(a, b):
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b  # exact: no tolerance
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _reference_pairs(patients, visits, timepoint):
    """The pandas pick the PROM outcomes made before issue 21 (one frame per score)."""
    out = pd.DataFrame(index=patients.index)
    baseline = visits[visits["kind"] == 0].sort_values("visit_id").drop_duplicates("patient_id", keep="last")
    baseline = baseline.set_index("patient_id").reindex(patients.index)
    follow = analysis.follow_up_rows(patients, visits[visits["kind"] != 0], timepoint)
    for code in SCORES:
        out[f"{code}_b"] = baseline[code]
        scored = follow[follow[code].notna()].drop_duplicates("patient_id", keep="last")
        out[f"{code}_f"] = scored.set_index("patient_id")[code].reindex(patients.index)
    return out


@pytest.mark.parametrize("timepoint", ["last", "m12"])
def test_the_array_pairing_picks_the_visits_of_the_pandas_pick(ties, timepoint):
    registry = ties
    query = outcomes.outcome_query_clean(timepoint=timepoint)
    scope = analysis._patient_scope(registry, query)
    cohort = prom._cohort(query, scope)
    visits = prom._visit_scores(query, scope, "ENG", 0, 10 ** 9)
    # Visits of patients outside the cohort are ignored by both.
    part = cohort.iloc[::2]
    for patients in (cohort, part, cohort.iloc[0:0]):
        got = prom._pairs(patients, visits, timepoint)
        want = _reference_pairs(patients, visits, timepoint)
        assert list(got.columns) == list(want.columns)
        assert got.index.equals(want.index)
        assert np.array_equal(got.to_numpy(), want.to_numpy(), equal_nan=True)
    assert got.shape[0] == 0
    assert prom._pairs(cohort, visits, timepoint).notna().to_numpy().sum() > 100  # pairs were found


@needs_postgres()
def test_numbers_come_as_arrays_equal_to_the_cursors_rows(registry):
    # NULL floats and dates included: implant_id of a visit on no implant, date_done of an
    # open visit; nrs an integer read as a float.
    select = Visit.objects.annotate(day=F("date_done")).values_list(
        "id", "implant_id", "day", "nrs", "target_date").order_by()
    columns = {"id": frames.INT, "implant": frames.FLOAT, "day": frames.DATE, "nrs": frames.FLOAT,
               "target": frames.DATE}
    sql, params = select.query.get_compiler(using=select.db).as_sql()
    got = frames.frame(pg.Sql(sql, list(params)), select.db, columns)
    with_cursor = analysis._frame_of_rows(list(select), columns)
    got = got.sort_values("id").reset_index(drop=True)
    assert got["day"].isna().any() and got["implant"].isna().any()
    assert list(got.dtypes) == list(with_cursor.dtypes)
    pd.testing.assert_frame_equal(got, with_cursor.sort_values("id").reset_index(drop=True))
    assert frames.frame(pg.Sql(sql + " LIMIT 0", list(params)), select.db, columns) is None


@needs_postgres()
@pytest.mark.parametrize("params", [{}, {"timepoint": "m12"}, {"group_by": "therapy"},
                                    {"pain_site": "phantom_limb"}])
def test_the_dashboards_analyses_through_arrays_equal_the_cursor_path(registry, params, monkeypatch):
    def analyses():
        cohort = outcomes.outcome_cohort(patients=Patient.objects.all(), **params)
        return {"proms": prom.prom_outcomes(prepared=cohort),
                "attrition": outcomes.attrition(prepared=cohort, today=TODAY),
                "incidence": outcomes.explant_incidence(prepared=cohort),
                "longevity": outcomes.ipg_longevity(prepared=cohort)}

    read = []
    original = frames.frame
    monkeypatch.setattr(frames, "frame", lambda *a: read.append(1) or original(*a))
    fast = analyses()
    assert read  # the array path was taken
    monkeypatch.setattr(analysis.pg, "available", lambda db: False)
    slow = analyses()
    assert fast["proms"]["overall"]["n_patients"] > 0
    assert any(row["missed_total"] for row in fast["attrition"]["timepoints"])
    assert _same(fast, slow)

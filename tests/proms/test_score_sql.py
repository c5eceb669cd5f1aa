"""The dataset's SQL scores equal the Python scores (one declaration, two readers), for
generated answer sets with items missing, in every value set."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry.models import PromAnswer, Visit
from registry.services import datasets
from registry.services.proms.instruments import INSTRUMENTS, SCORES, VALUE_SETS, score
from registry.services.proms.stored import sheets_refresh
from tests.factories import make_visit


def answer_sets():
    def for_instrument(code):
        items = INSTRUMENTS[code].items
        return st.fixed_dictionaries({}, optional={
            item.code: st.integers(item.low, item.high) for item in items})

    return st.fixed_dictionaries({code: for_instrument(code) for code in INSTRUMENTS})


@pytest.fixture
def visit(patient_a):
    return make_visit(patient_a)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(answers=answer_sets(), value_set=st.sampled_from(list(VALUE_SETS)))
def test_sql_and_python_scores_agree(visit, answers, value_set):
    PromAnswer.objects.filter(visit=visit).delete()
    PromAnswer.objects.bulk_create(
        PromAnswer(visit=visit, instrument=code, instrument_version=INSTRUMENTS[code].version, item=item,
                   value=value)
        for code, items in answers.items() for item, value in items.items())
    sheets_refresh([visit.pk])  # Django's own bulk_create sends no signal
    names = [c.name for c in datasets.VISITS.columns_for()]
    row = dict(zip(names, datasets.VISITS.select(Visit.objects.filter(pk=visit.pk),
                                                 value_set=value_set).get(), strict=True))
    expected = {}
    for code, held in answers.items():
        expected.update(score(code, held, value_set))
    assert row["eq5d5l_value_set"] == value_set
    for column in SCORES:
        if expected[column] is None:
            assert row[column] is None, column
        else:
            assert row[column] == pytest.approx(expected[column], abs=1e-9), (column, answers)

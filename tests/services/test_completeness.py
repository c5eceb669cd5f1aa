"""The completeness report: expected, done, missing by reason and open queries per site,
timepoint and instrument, from a bounded number of aggregate queries; nurses their sites,
investigators counts only with small rows suppressed."""

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from registry.models import PromAnswer, Visit, VisitStatus
from registry.services import checks, completeness, queries
from registry.services.audit import record_save, system_user
from tests.factories import make_implant, make_patient, make_visit


def save(obj, **values):
    for name, value in values.items():
        setattr(obj, name, value)
    return record_save(obj, actor=system_user(), reason="test", validate=False)


def follow_up(implant, timepoint, **values):
    visit = Visit.objects.get(implant=implant, timepoint=timepoint)
    values.setdefault("status", VisitStatus.COMPLETED)
    if values["status"] == VisitStatus.COMPLETED:
        values.setdefault("date_done", visit.target_date)
    return save(visit, **values)


def rows(report, **match):
    return {(r.site, r.timepoint, r.instrument): r for r in report.rows
            if all(getattr(r, k) == v for k, v in match.items())}


@pytest.fixture
def cohort(patient_a, nurse):
    make_visit(patient_a, actor=nurse)  # baseline, NRS 8
    implant = make_implant(patient_a, actor=nurse)
    follow_up(implant, "m1", nrs=5, satisfaction=4)
    follow_up(implant, "m3", nrs=None, nrs_missing="declined")
    follow_up(implant, "m6", status=VisitStatus.MISSED, visit_missing="lost_to_follow_up")
    return implant


def test_expected_done_and_missing_by_reason_per_timepoint(cohort, nurse):
    report = completeness.completeness_report(nurse)
    nrs = rows(report, instrument="nrs")
    assert (nrs["AAA", "baseline", "nrs"].expected, nrs["AAA", "baseline", "nrs"].done) == (1, 1)
    assert nrs["AAA", "m1", "nrs"].done == 1
    m3 = nrs["AAA", "m3", "nrs"]
    assert (m3.expected, m3.done, m3.missing["declined"], m3.missing_total) == (1, 0, 1, 1)
    m6 = nrs["AAA", "m6", "nrs"]
    assert (m6.done, m6.missing["lost_to_follow_up"]) == (0, 1)
    # m12 is long overdue (implanted 2020): expected, missing without a reason.
    m12 = nrs["AAA", "m12", "nrs"]
    assert (m12.expected, m12.missing["none"]) == (1, 1)
    # Satisfaction is asked after the implant only.
    assert ("AAA", "baseline", "satisfaction") not in rows(report)
    assert rows(report)["AAA", "m1", "satisfaction"].done == 1
    for row in report.rows:
        assert row.expected == row.done + row.missing_total, row


def test_prom_instruments_follow_the_protocol(cohort, nurse):
    report = completeness.completeness_report(nurse, timepoint="m3")
    proms = [r for r in report.rows if r.instrument not in completeness.VALUES]
    assert proms, "the default protocol schedules PROMs at m3"
    visit = Visit.objects.get(implant=cohort, timepoint="m3")
    code = proms[0].instrument
    item = completeness.INSTRUMENTS[code].items[0]
    save(PromAnswer(visit=visit, instrument=code, item=item.code, value=item.low))
    row = rows(completeness.completeness_report(nurse, timepoint="m3"))["AAA", "m3", code]
    assert (row.expected, row.done) == (1, 1)
    # One item of many is too few to score: the PROM check's query shows as open.
    checks.checks_run(rules=["prom_items_missing"])
    if len(completeness.INSTRUMENTS[code].items) > 2:
        row = rows(completeness.completeness_report(nurse, timepoint="m3"))["AAA", "m3", code]
        assert row.open_queries == 1


def test_open_queries_count_on_their_value(cohort, data_manager, nurse, nurse_b):
    visit = Visit.objects.get(implant=cohort, timepoint="m3")
    queries.query_open(record=visit, field="nrs_missing", text="Declined, really?", actor=data_manager)
    assert rows(completeness.completeness_report(nurse))["AAA", "m3", "nrs"].open_queries == 1
    assert rows(completeness.completeness_report(data_manager))["AAA", "m3", "nrs"].open_queries == 1
    # The other site's nurse sees none of site AAA.
    assert not [r for r in completeness.completeness_report(nurse_b).rows if r.site == "AAA"]


def test_investigators_see_counts_only_and_small_rows_suppressed(cohort, investigator, settings):
    settings.REGISTRY_MIN_CELL = 2
    report = completeness.completeness_report(investigator)
    assert report.rows and not report.shows_queries
    for row in report.rows:
        assert row.open_queries is None
        assert row.suppressed and row.expected is None and row.missing is None
    settings.REGISTRY_MIN_CELL = 1
    shown = rows(completeness.completeness_report(investigator))["AAA", "m3", "nrs"]
    assert (shown.expected, shown.missing["declined"], shown.open_queries) == (1, 1, None)


def test_filters_are_checked(cohort, nurse, site_b):
    assert {r.site for r in completeness.completeness_report(
        nurse, **completeness.completeness_params_clean(nurse, site="aaa")).rows} == {"AAA"}
    with pytest.raises(ValidationError) as error:
        completeness.completeness_params_clean(nurse, site="BBB")  # not hers
    assert "site" in error.value.message_dict and "BBB" in str(error.value)
    with pytest.raises(ValidationError) as error:
        completeness.completeness_params_clean(nurse, timepoint="m3x")
    assert "timepoint" in error.value.message_dict


def test_the_query_count_does_not_grow_with_the_cohort(cohort, nurse, site_a, data_manager):
    def count():
        with CaptureQueriesContext(connection) as ctx:
            completeness.completeness_report(data_manager)
        return len(ctx.captured_queries)

    count()  # the user's role and sites are read once per user object
    few = count()
    for _ in range(3):
        implant = make_implant(make_patient(site_a, actor=nurse), actor=nurse)
        follow_up(implant, "m1", nrs=3)
        queries.query_open(record=Visit.objects.get(implant=implant, timepoint="m1"), field="nrs",
                           text="?", actor=data_manager)
    assert count() == few <= 12


def test_a_prom_declined_item_by_item_is_missing_for_that_reason(cohort, nurse):
    from registry.services.proms.answers import prom_item_missing_record

    code = next(r.instrument for r in completeness.completeness_report(nurse, timepoint="m1").rows
                if r.instrument not in completeness.VALUES)
    visit = Visit.objects.get(implant=cohort, timepoint="m1")
    for item in completeness.INSTRUMENTS[code].items:
        prom_item_missing_record(visit=visit, instrument=code, item=item.code, why="declined",
                                 actor=nurse)
    row = rows(completeness.completeness_report(nurse, timepoint="m1"))["AAA", "m1", code]
    assert (row.expected, row.done, row.missing["declined"], row.missing["none"]) == (1, 0, 1, 0)

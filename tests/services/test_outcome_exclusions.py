"""Outcomes list the excluded patients by why their score is missing: the NRS's own
reason, or the reason the visit was not done, or none; in the summary, the table, the
results paragraph and the REST API."""

import datetime

import pytest

from registry.models import Visit, VisitStatus
from registry.services import outcomes
from registry.services.audit import record_save, system_user
from tests.factories import make_implant, make_patient, make_visit

NONE = dict.fromkeys(outcomes.EXCLUSION_REASONS, 0)


def m12(implant, **values):
    visit = Visit.objects.get(implant=implant, timepoint="m12")
    for name, value in values.items():
        setattr(visit, name, value)
    return record_save(visit, actor=system_user(), reason="test")


@pytest.fixture
def cohort(site_a, nurse):
    def patient(baseline=8, **baseline_values):
        p = make_patient(site_a, actor=nurse)
        make_visit(p, actor=nurse, nrs=baseline, **baseline_values)
        return make_implant(p, actor=nurse)

    done = datetime.date(2021, 3, 1)
    m12(patient(), status=VisitStatus.COMPLETED, date_done=done, nrs=3)
    m12(patient(baseline=None, nrs_missing="declined"), status=VisitStatus.COMPLETED, date_done=done,
        nrs=4)
    m12(patient(), status=VisitStatus.MISSED, visit_missing="lost_to_follow_up")
    m12(patient(), status=VisitStatus.COMPLETED, date_done=done, nrs=None, nrs_missing="not_asked")
    patient()  # m12 never entered: no value, no reason


@pytest.mark.parametrize("timepoint", ["m12", "last"])
def test_the_excluded_are_counted_by_reason(cohort, nurse, timepoint):
    s = outcomes.outcome_summary(user=nurse, timepoint=timepoint)
    assert (s["n_patients"], s["excluded_no_baseline"], s["excluded_no_followup"]) == (5, 1, 3)
    assert s["excluded_by_reason"] == {
        "no_baseline": {**NONE, "declined": 1},
        "no_followup": {**NONE, "lost_to_follow_up": 1, "not_asked": 1, "none": 1}}
    for group, counts in s["excluded_by_reason"].items():
        assert sum(counts.values()) == s[f"excluded_{group}"]


def test_the_paragraph_and_the_table_say_why(cohort, nurse):
    report = outcomes.outcome_report(user=nurse, timepoint="m12")
    assert ("1 without a baseline NRS: 1 declined, 3 without a follow-up NRS: 1 not asked, "
            "1 lost to follow-up, 1 no reason recorded") in report["paragraph"]
    table = dict(outcomes.outcome_table(report["summary"]))
    assert table["Excluded: no follow-up score, lost to follow-up"] == "1"
    assert table["Excluded: no baseline score, declined"] == "1"


def test_the_api_carries_the_reasons(cohort, nurse):
    from rest_framework.test import APIClient

    from registry.services.tokens import api_token_create

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_create(user=nurse, label='test')}")
    body = client.get("/api/v1/outcomes/", {"timepoint": "m12"}).json()
    assert body["excluded_by_reason"]["no_followup"]["lost_to_follow_up"] == 1
    grouped = client.get("/api/v1/outcomes/", {"timepoint": "m12", "group_by": "site"}).json()
    assert grouped["groups"][0]["excluded_by_reason"]["no_baseline"]["declined"] == 1


def test_suppressed_cohorts_say_nothing_about_reasons(cohort, investigator, settings):
    settings.REGISTRY_MIN_CELL = 10
    s = outcomes.outcome_summary(user=investigator, timepoint="m12")
    assert s["suppressed"] and s["excluded_by_reason"] is None

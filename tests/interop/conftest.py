"""Fixtures for the REDCap and FHIR channels: a small two-site cohort and tokens."""

import datetime

import pytest

from registry.models import PainScore
from registry.services.audit import record_save, system_user
from registry.services.tokens import api_token_create
from tests.factories import make_event, make_implant, make_patient, make_visit


@pytest.fixture
def cohort(site_a, site_b, nurse, nurse_b):
    """Site A: two patients (one post-amputation with pain scores, one with an
    explant, an unscheduled visit and two events); site B: one patient."""
    first = make_patient(site_a, actor=nurse, birth_year=1931)
    implant = make_implant(first, actor=nurse)
    make_visit(first, actor=nurse, nrs=8)
    make_visit(first, implant, actor=nurse, timepoint="m3", date_done=datetime.date(2020, 6, 1),
               nrs=3, satisfaction=5, pgic=2, would_choose_again=True, opioid_mme=12.5,
               stimulation_use="daily")
    make_visit(first, implant, actor=nurse, timepoint="m6", status="scheduled", date_done=None,
               nrs=None)
    make_event(first, implant, actor=nurse)
    make_event(first, implant, actor=nurse, onset_date=datetime.date(2020, 5, 2),
               category="infection_deep", serious=True, serious_criterion="hospitalisation",
               severity="severe", device_relatedness="possible", anticipated=False,
               outcome="ongoing", resolved_on=None)

    second = make_patient(site_a, actor=nurse, sex="F", etiology="postamputation",
                          diagnosis="rlp_plp")
    implant2 = make_implant(second, actor=nurse, therapy="DRG",
                            explant_date=datetime.date(2021, 1, 5), explant_reason="infection")
    make_visit(second, actor=nurse, nrs=9)
    m12 = make_visit(second, implant2, actor=nurse, timepoint="m12",
                     date_done=datetime.date(2020, 12, 1), nrs=4, satisfaction=4, pgic=3)
    make_visit(second, implant2, actor=nurse, timepoint="unscheduled",
               date_done=datetime.date(2020, 7, 1), nrs=6)
    for site, score in (("residual_limb", 5), ("phantom_limb", 3)):
        record_save(PainScore(visit=m12, pain_site=site, recall="avg_7d", score=score),
                    actor=system_user(), reason="test")

    other = make_patient(site_b, actor=nurse_b, sex="F")
    implant_b = make_implant(other, actor=nurse_b)
    make_visit(other, actor=nurse_b, nrs=7)
    make_visit(other, implant_b, actor=nurse_b, timepoint="m3", date_done=datetime.date(2020, 6, 3),
               nrs=2)
    return {"a": [first, second], "b": [other]}


@pytest.fixture
def token_a(nurse):
    return api_token_create(user=nurse, label="redcap test")


@pytest.fixture
def token_b(nurse_b):
    return api_token_create(user=nurse_b, label="redcap test b")


@pytest.fixture
def token_dm(data_manager):
    return api_token_create(user=data_manager, label="dm")

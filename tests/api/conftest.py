"""API fixtures: tokens for each role and a small two-site cohort."""

import datetime

import pytest
from rest_framework.test import APIClient

from registry.services.tokens import api_token_create
from tests.factories import make_event, make_implant, make_patient, make_visit


@pytest.fixture
def client_for():
    """An APIClient sending `Authorization: Token <key>` for `user` (None: no header)."""

    def build(user=None, key=None):
        client = APIClient()
        if user is not None:
            key = api_token_create(user=user, label="test")
        if key is not None:
            client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
        return client

    return build


@pytest.fixture
def cohort(site_a, site_b, nurse, nurse_b):
    """Site A: one postamputation PNS patient (baseline, m3 with pain sites, an event),
    one 91-year-old SCS patient; site B: one patient with a baseline and m1."""
    from registry.models import PainScore
    from registry.services.audit import record_save

    a1 = make_patient(site_a, actor=nurse, etiology="postamputation", diagnosis="rlp_plp",
                      sex="F", birth_year=1975)
    a1_imp = make_implant(a1, actor=nurse, therapy="PNS", implant_date=datetime.date(2020, 3, 1))
    a1_base = make_visit(a1, None, actor=nurse, timepoint="baseline", nrs=8,
                         date_done=datetime.date(2020, 1, 15))
    a1_m3 = make_visit(a1, a1_imp, actor=nurse, timepoint="m3", nrs=3, satisfaction=5, pgic=2,
                       would_choose_again=True, opioid_mme="12.5", stimulation_use="daily",
                       date_done=datetime.date(2020, 6, 2), notes="SECRET-NOTE talked about family")
    for pain_site, score in (("residual_limb", 4), ("phantom_limb", 2)):
        record_save(PainScore(visit=a1_m3, pain_site=pain_site, recall="avg_7d", score=score),
                    actor=nurse, reason="test")
    event = make_event(a1, a1_imp, actor=nurse, description="SECRET-DESCRIPTION wound",
                       onset_date=datetime.date(2020, 3, 20), resolved_on=datetime.date(2020, 4, 10))
    a2 = make_patient(site_a, actor=nurse, birth_year=1929, consent_date=datetime.date(2019, 6, 1))
    a2_imp = make_implant(a2, actor=nurse, therapy="SCS", implant_date=datetime.date(2020, 3, 1))
    make_visit(a2, None, actor=nurse, timepoint="baseline", nrs=6, date_done=datetime.date(2020, 1, 10))
    make_visit(a2, a2_imp, actor=nurse, timepoint="m1", nrs=5, date_done=datetime.date(2020, 4, 1))
    b1 = make_patient(site_b, actor=nurse_b)
    b1_imp = make_implant(b1, actor=nurse_b, therapy="DRG")
    make_visit(b1, None, actor=nurse_b, timepoint="baseline", nrs=7)
    make_visit(b1, b1_imp, actor=nurse_b, timepoint="m1", nrs=2, date_done=datetime.date(2020, 4, 2))
    make_event(b1, b1_imp, actor=nurse_b, serious=True, serious_criterion="hospitalisation",
               category="infection_deep", severity="severe", device_relatedness="possible",
               anticipated=False, outcome="ongoing", resolved_on=None)
    return {"a1": a1, "a1_implant": a1_imp, "a1_base": a1_base, "a1_m3": a1_m3, "event": event,
            "a2": a2, "b1": b1}

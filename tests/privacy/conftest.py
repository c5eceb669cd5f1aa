"""The attacker's set-up: a nurse records today what happened today; the investigator
(same site) then reads every channel and tries to compute the patient's date shift."""

import datetime

import pytest
from django.utils import timezone

from registry.services import deid
from registry.services.dates import site_today
from registry.services.tokens import api_token_create
from tests.factories import make_event, make_implant, make_patient, make_visit


@pytest.fixture
def entered_today(site_a, nurse):
    """A patient with old history and a visit done (and an adverse event starting) today."""
    patient = make_patient(site_a, actor=nurse, birth_year=1961, consent_date=datetime.date(2020, 1, 1))
    # The attack needs a patient whose shift is not 0 (else shifted = real, nothing to find).
    assert deid.date_shift_days(patient.registry_id) != 0
    implant = make_implant(patient, actor=nurse, target="T9-T10 left SECRET-TARGET")
    make_visit(patient, None, actor=nurse, timepoint="baseline", nrs=8,
               date_done=datetime.date(2020, 1, 15))
    today = site_today(site_a.timezone)
    before = timezone.now()
    visit = make_visit(patient, implant, actor=nurse, timepoint="unscheduled", nrs=3,
                       date_done=today, notes="SECRET-NOTE")
    event = make_event(patient, implant, actor=nurse, onset_date=today, resolved_on=None,
                       outcome="ongoing", description="SECRET-DESCRIPTION")
    return {"patient": patient, "implant": implant, "visit": visit, "event": event,
            "today": today, "before": before, "after": timezone.now()}


def real_marks(found) -> set[str]:
    """The strings that give the real day away: the day of the entry (the site's and
    UTC's), which is also the real visit date (REDCap's "YYYY-MM-DD HH:MM" contains it)."""
    return {day.isoformat() for day in (found["today"], timezone.now().date(), found["before"].date())}


def leaked(text: str, found) -> set[str]:
    return {mark for mark in real_marks(found) if mark in text}


@pytest.fixture
def investigator_token(investigator):
    return api_token_create(user=investigator, label="attack")


@pytest.fixture
def nurse_token(nurse):
    return api_token_create(user=nurse, label="control")

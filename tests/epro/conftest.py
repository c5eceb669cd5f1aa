"""Patients with a visit window open today, consent to questionnaire links and an e-mail."""

import datetime

import pytest

from registry.models import PatientIdentifiers, Visit
from registry.services.audit import record_save, system_user
from registry.services.dates import site_today
from tests.factories import make_implant, make_patient

D = datetime.date


def open_m3(site, *, consent=True, email="patient@example.org", today=None, **patient_kwargs):
    """A patient whose m3 window is open today at `site` (implant 91 days ago), with
    consent to questionnaire links (unless `consent` is False) and an e-mail address."""
    today = today or site_today(site.timezone)
    implant_date = today - datetime.timedelta(days=91)
    patient = make_patient(site, consent_date=implant_date - datetime.timedelta(days=60),
                           epro_consent_date=(implant_date - datetime.timedelta(days=60))
                           if consent else None, **patient_kwargs)
    make_implant(patient, trial_start=implant_date - datetime.timedelta(days=20),
                 trial_end=implant_date - datetime.timedelta(days=10), implant_date=implant_date)
    if email:
        record_save(PatientIdentifiers(patient=patient, email=email, full_name="Maria Jansen"),
                    actor=system_user(), reason="test")
    visit = Visit.objects.get(patient=patient, timepoint="m3")
    assert visit.window_start <= today <= visit.window_end
    return patient, visit


def answers(visit, **given) -> dict:
    """An answer to every question of `visit` (`given` ones, the rest the lowest value)."""
    from registry.services.epro import questions_for

    return {q.name: given.get(q.name, q.values[0]) for q in questions_for(visit)}


@pytest.fixture
def m3(site_a):
    return open_m3(site_a)


@pytest.fixture(autouse=True)
def fresh_counters():
    """Rate and failure counters live in the cache: each test starts with none."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()

"""Small builders for test data; they go through the services, with history."""

import datetime
import itertools

from registry.models import (
    AdverseEvent,
    Implant,
    Patient,
    Site,
    Visit,
    VisitStatus,
)
from registry.services.audit import record_save, system_user
from registry.services.implants import implant_save
from registry.services.patients import patient_enrol

_codes = itertools.count(1)


def make_site(code=None, **kwargs) -> Site:
    code = code or f"T{next(_codes):02d}"
    defaults = {"name": f"Site {code}", "country": "NL", "timezone": "Europe/Amsterdam",
                "reminder_emails": f"{code.lower()}@example.org"}
    defaults.update(kwargs)
    site = Site(code=code, **defaults)
    return record_save(site, actor=kwargs.pop("actor", None) or system_user(), reason="test")


def make_patient(site: Site, actor=None, **kwargs) -> Patient:
    defaults = {"sex": "M", "birth_year": 1970, "consent_date": datetime.date(2020, 1, 1),
                "etiology": "traumatic", "diagnosis": "pn"}
    defaults.update(kwargs)
    return patient_enrol(patient=Patient(site=site, **defaults), actor=actor or system_user())


def make_implant(patient: Patient, actor=None, **kwargs) -> Implant:
    defaults = {"therapy": "SCS", "trial_start": datetime.date(2020, 2, 1),
                "trial_end": datetime.date(2020, 2, 10), "trial_success": True,
                "implant_date": datetime.date(2020, 3, 1)}
    defaults.update(kwargs)
    return implant_save(implant=Implant(patient=patient, **defaults), actor=actor or system_user())


def make_visit(patient: Patient, implant: Implant | None = None, actor=None, **kwargs) -> Visit:
    defaults = {"timepoint": "baseline", "status": VisitStatus.COMPLETED,
                "date_done": datetime.date(2020, 1, 15), "nrs": 8}
    defaults.update(kwargs)
    existing = Visit.objects.filter(patient=patient, implant=implant,
                                    timepoint=defaults["timepoint"]).first()
    visit = existing or Visit(patient=patient, implant=implant)
    for key, value in defaults.items():
        setattr(visit, key, value)
    return record_save(visit, actor=actor or system_user(), reason="test")


def make_event(patient: Patient, implant: Implant | None = None, actor=None, **kwargs):
    defaults = {"onset_date": datetime.date(2020, 3, 20), "category": "infection_superficial",
                "severity": "mild", "device_relatedness": "not_related",
                "procedure_relatedness": "probable", "action": "antibiotics",
                "outcome": "resolved", "resolved_on": datetime.date(2020, 4, 10)}
    defaults.update(kwargs)
    event = AdverseEvent(patient=patient, implant=implant, **defaults)
    return record_save(event, actor=actor or system_user(), reason="test")


SYNTHETIC_TODAY = datetime.date(2026, 12, 1)


def grow_synthetic(patients: int, seed: int) -> None:
    """Add `patients` synthetic patients (fixed day): query counts are compared at two sizes."""
    from registry.services.synthetic import synthetic_registry

    synthetic_registry(patients=patients, seed=seed, today=SYNTHETIC_TODAY, actor=system_user())


def count_queries(call) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        call()
    return len(captured)


def copy_calls(monkeypatch) -> list:
    """COPY goes to psycopg directly (Django's query log does not see it): the statements
    `datasets.pg.copy_stream` is given from now on, for counting."""
    from registry.services.datasets import pg

    calls = []
    original = pg.copy_stream

    def counted(sql, db, **kwargs):
        calls.append(sql)
        return original(sql, db, **kwargs)

    monkeypatch.setattr(pg, "copy_stream", counted)
    return calls

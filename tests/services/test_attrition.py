"""The attrition waterfall per timepoint: enrolled, ended by disposition (by the target
date), active, visit done or missed with its reason."""

import datetime

import pytest

from registry.models import ContactAttempt, Disposition, DispositionStatus, Patient, Visit, VisitStatus
from registry.services.audit import record_save, system_user
from registry.services.disposition import contact_attempt_record, disposition_record
from registry.services.outcomes.attrition import attrition
from tests.factories import make_implant, make_patient

D = datetime.date
IMPLANT = D(2019, 12, 1)  # m1 2020-01-01, m3 2020-03-01, m6 2020-06-01, m12 2020-12-01
TODAY = D(2020, 7, 1)


def implanted(site):
    patient = make_patient(site, consent_date=D(2019, 6, 1))
    implant = make_implant(patient, trial_start=D(2019, 11, 1), trial_end=D(2019, 11, 10),
                           implant_date=IMPLANT)
    return patient, implant


def disposed(patient, status, on, **fields):
    return disposition_record(disposition=Disposition(patient=patient, status=status, date=on,
                                                      **fields),
                              actor=system_user(), reason="test")


def visit_set(implant, timepoint, status, **fields):
    visit = Visit.objects.get(implant=implant, timepoint=timepoint)
    visit.status = status
    for key, value in fields.items():
        setattr(visit, key, value)
    return record_save(visit, actor=system_user(), reason="test")


@pytest.fixture
def waterfall(site_a, site_b):
    # Deceased on m3's target day: active at m1 (done), ended at m3 and m6.
    p, i = implanted(site_a)
    visit_set(i, "m1", VisitStatus.COMPLETED, date_done=D(2020, 1, 3), nrs=4)
    disposed(p, DispositionStatus.DECEASED, D(2020, 3, 1), death_cause="cancer",
             death_device_relatedness="not_related", death_procedure_relatedness="not_related")
    # Withdrawn in April: m1 missed (declined), m3 done, ended at m6.
    p, i = implanted(site_a)
    visit_set(i, "m1", VisitStatus.MISSED, visit_missing="declined")
    visit_set(i, "m3", VisitStatus.COMPLETED, date_done=D(2020, 3, 2), nrs=5)
    disposed(p, DispositionStatus.WITHDRAWN, D(2020, 4, 1), withdrawal_level="no_contact")
    # Lost in May after three attempts: m1 and m3 missed (unreachable), ended at m6.
    p, i = implanted(site_a)
    for k in range(3):
        contact_attempt_record(attempt=ContactAttempt(patient=p, date=D(2020, 4, 20 + k),
                                                      method="phone", outcome="no_answer"),
                               actor=system_user())
    visit_set(i, "m1", VisitStatus.MISSED, visit_missing="unreachable")
    visit_set(i, "m3", VisitStatus.MISSED, visit_missing="unreachable")
    disposed(p, DispositionStatus.LOST, D(2020, 5, 1))
    # Transferred to another site of the registry in February: still active everywhere.
    p, i = implanted(site_a)
    disposed(p, DispositionStatus.TRANSFERRED, D(2020, 2, 1), transferred_to=site_b)
    visit_set(i, "m1", VisitStatus.COMPLETED, date_done=D(2020, 1, 2), nrs=2)


def test_the_waterfall_counts_each_timepoint(waterfall):
    result = attrition(patients=Patient.objects.all(), today=TODAY)
    assert result["enrolled"] == 4
    rows = {row["timepoint"]: row for row in result["timepoints"]}
    m1, m3, m6, m12 = rows["m1"], rows["m3"], rows["m6"], rows["m12"]
    assert (m1["due"], m1["ended_total"], m1["active"], m1["done"], m1["missed_total"]) == (4, 0, 4, 2, 2)
    assert m1["missed"] == {"declined": 1, "unreachable": 1}
    assert m3["ended"]["deceased"] == 1 and m3["ended_total"] == 1
    assert (m3["active"], m3["done"], m3["missed"], m3["open"]) == (3, 1, {"unreachable": 1}, 1)
    assert {k: v for k, v in m6["ended"].items() if v} == {"deceased": 1, "withdrawn": 1,
                                                          "lost_to_follow_up": 1}
    assert (m6["active"], m6["open"]) == (1, 1)  # the transferred patient
    assert (m12["due"], m12["not_yet_due"]) == (0, 4)


def test_an_investigator_gets_small_cells_withheld(waterfall, investigator, settings):
    settings.REGISTRY_MIN_CELL = 2
    rows = {row["timepoint"]: row for row in attrition(user=investigator, today=TODAY)["timepoints"]}
    assert rows["m3"]["ended"]["deceased"] is None and rows["m1"]["done"] == 2
    settings.REGISTRY_MIN_CELL = 5
    result = attrition(user=investigator, today=TODAY)
    assert result["suppressed"] and result["timepoints"] == [] and result["enrolled"] is None

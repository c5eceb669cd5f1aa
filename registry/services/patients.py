"""Enrolment and registry ids."""

from django.db import transaction
from django.db.models import F

from registry.models import Implant, Patient, Site

from .audit import record_save


def registry_id_next(*, site: Site) -> str:
    """Claim the next registry id of a site (CODE-0001, ...), safe under concurrency."""
    with transaction.atomic():
        # A conditional increment on the counter row: two nurses enrolling at
        # once get different numbers. No history: the counter is not clinical.
        Site.objects.filter(pk=site.pk).update(patient_sequence=F("patient_sequence") + 1)
        number = Site.objects.values_list("patient_sequence", flat=True).get(pk=site.pk)
    registry_id = f"{site.code}-{number:04d}"
    while Patient.objects.filter(registry_id=registry_id).exists():  # ids imported by hand
        with transaction.atomic():
            Site.objects.filter(pk=site.pk).update(patient_sequence=F("patient_sequence") + 1)
            number = Site.objects.values_list("patient_sequence", flat=True).get(pk=site.pk)
        registry_id = f"{site.code}-{number:04d}"
    return registry_id


def patient_enrol(*, patient: Patient, actor, reason: str = "Enrolment") -> Patient:
    """Create a patient, assigning the registry id when none is given."""
    with transaction.atomic():
        if not patient.registry_id:
            patient.registry_id = registry_id_next(site=patient.site)
        return record_save(patient, actor=actor, reason=reason)


def implant_ref_next(*, patient: Patient) -> str:
    """Implant refs are REGISTRY_ID-I<n>: stable, readable, unique."""
    n = Implant.objects.filter(patient=patient).count() + 1
    while Implant.objects.filter(ref=f"{patient.registry_id}-I{n}").exists():
        n += 1
    return f"{patient.registry_id}-I{n}"


def patient_save(*, patient: Patient, actor, reason: str = "", expected_version=None) -> Patient:
    """Change a patient; a withdrawal stops the follow-up visits after it and is recorded
    as the patient's disposition (services.disposition.consent_followed)."""
    from . import disposition, scheduling

    with transaction.atomic():
        before = (Patient.objects.filter(pk=patient.pk).values_list("consent_status", "withdrawal_date")
                  .first() if patient.pk else None) or ("consented", None)
        record_save(patient, actor=actor, reason=reason, expected_version=expected_version)
        if tuple(before) != (patient.consent_status, patient.withdrawal_date):
            disposition.consent_followed(patient=patient, before=tuple(before), actor=actor,
                                         reason=reason)
        # The visits the change moves or stops carry its reason in their history too.
        scheduling.patient_schedule_sync(patient=patient, actor=actor, reason=reason)
    return patient

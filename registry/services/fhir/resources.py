"""FHIR R4 resources built from the models, as plain dicts in R4 JSON shape
(what each one holds and leaves out: see the package docstring)."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Iterator

from django.conf import settings

from registry.models import (
    AdverseEvent,
    AeOutcome,
    ConsentStatus,
    Implant,
    PainScore,
    Patient,
    Recall,
    Relatedness,
    Severity,
    Sex,
    Therapy,
    Visit,
    VisitStatus,
    choices,
)
from registry.models.base import today_anywhere
from registry.models.choices import AeCategory, EnteredBy, PainSite
from registry.models.visits import NOT_DONE

from .. import deid, missing
from ..datasets import AGE_TOP


def system_base() -> str:
    return settings.REGISTRY_FHIR_SYSTEM


def registry_id_system() -> str:
    return f"{system_base()}:registry-id"


def code_system(name: str) -> str:
    return f"{system_base()}:codes:{name}"


LOINC = "http://loinc.org"
NRS_LOINC = "72514-3"
NRS_DISPLAY = "Pain severity - 0-10 verbal numeric rating [Score] - Reported"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
AE_SERIOUSNESS = "http://terminology.hl7.org/CodeSystem/adverse-event-seriousness"
AE_SEVERITY = "http://terminology.hl7.org/CodeSystem/adverse-event-severity"
AE_OUTCOME = "http://terminology.hl7.org/CodeSystem/adverse-event-outcome"
AE_CAUSALITY = "http://terminology.hl7.org/CodeSystem/adverse-event-causality-assess"
STUDY_ID = "neuromodulation-registry"
# Security label of resources whose dates are shifted (HL7 v3 ObservationValue,
# in the SecurityIntegrityObservationValue set: "pseudonymized").
PSEUDONYMIZED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
                 "code": "PSEUDED", "display": "pseudonymized"}

GENDER = {Sex.MALE: "male", Sex.FEMALE: "female", Sex.OTHER: "other", Sex.UNKNOWN: "unknown"}
# FHIR R4 adverse-event-outcome is a required binding; ours maps one to one.
AE_OUTCOME_CODES = {
    AeOutcome.RESOLVED: ("resolved", "Resolved"),
    AeOutcome.RESOLVED_SEQUELAE: ("resolvedWithSequelae", "Resolved with Sequelae"),
    AeOutcome.ONGOING: ("ongoing", "Ongoing"),
    AeOutcome.FATAL: ("fatal", "Fatal"),
    AeOutcome.UNKNOWN: ("unknown", "Unknown"),
}
# WHO-UMC terms next to the registry's MDCG 2020-10/1 code where they mean the same.
WHO_UMC = {
    Relatedness.POSSIBLE: ("Possible", "Possible"),
    Relatedness.PROBABLE: ("Probably-Likely", "Probably/Likely"),
    Relatedness.CAUSAL: ("Certain", "Certain"),
}


def operation_outcome(message: str, *, code: str = "invalid", severity: str = "error") -> dict:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": message}],
    }


def _instant(value: datetime.datetime) -> str:
    return value.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z")


def _meta(row, shift: bool) -> dict:
    """`meta.lastUpdated` for users who see real dates; for the others no record time
    (services.deid.record_time) and the PSEUDED label instead."""
    updated = deid.record_time(row, "updated_at", real=not shift)
    if updated is None:
        return {"security": [dict(PSEUDONYMIZED)]}
    return {"lastUpdated": _instant(updated)}


def _shift_of(row, shift: bool) -> int | None:
    """The shift in days of the row's patient when dates are shifted, else None (real dates)."""
    return deid.date_shift_days(deid.registry_id_of(row)) if shift else None


def _day(row, field: str, shift: int | None) -> str:
    """A clinical date of `row` as the user may see it; only dates services.deid declares."""
    return deid.shown(row, field, shift).isoformat()


# Registry code systems: the URI name of each of the registry's code lists
# (models.choices.CODE_LISTS). Codes and displays come from those lists.
CODE_SYSTEMS = {"therapy": "therapy", "lead_type": "lead-type", "paradigm": "paradigm",
                "ipg_location": "ipg-location", "satisfaction": "satisfaction", "pgic": "pgic",
                "ae_category": "ae-category", "serious_criterion": "serious-criterion",
                "relatedness": "relatedness-mdcg"}


def registry_coding(list_name: str, code) -> dict:
    """A coding of a registry code in its code system, with the code list's label; refuses
    a code the list does not hold."""
    labels = {c: label for _, c, label in choices.numbered(list_name)}
    if code not in labels:
        raise ValueError(f"'{code}' is not a code of the registry's {list_name} list")
    return _coding(code_system(CODE_SYSTEMS[list_name]), str(code), labels[code])


def registry_concept(list_name: str, code, text: str | None = None) -> dict:
    concept = {"coding": [registry_coding(list_name, code)]}
    if text:
        concept["text"] = text
    return concept


def _coding(system: str, code: str, display: str | None = None) -> dict:
    coding = {"system": system, "code": str(code)}
    if display:
        coding["display"] = str(display)
    return coding


def _concept(system: str, code: str, display: str | None = None, text: str | None = None) -> dict:
    concept = {"coding": [_coding(system, code, display)]}
    if text:
        concept["text"] = text
    return concept


def _patient_ref(registry_id: str) -> dict:
    return {"reference": f"Patient/{registry_id}"}


# --- resource builders -----------------------------------------------------------------


def birth_year_shown(patient: Patient, *, shift: bool = False) -> str | None:
    """The birth year as FHIR `birthDate` ("YYYY"), or None where it must not leave.

    - Ages over 89 are identifiers under HIPAA safe harbour, and so is a birth year
      that shows such an age: none for a patient who is over 89 now (age = this
      year - birth year, the exports' year arithmetic and their 90+ limit; "now"
      because the year tells the reader the patient's current age).
    - None for users who see shifted dates: the API's age at consent and the
      exports' age at implant come from real dates, so with the birth year they
      give the real consent and implant years, which narrow the secret shift.
    """
    if shift or not patient.birth_year:
        return None
    if today_anywhere().year - patient.birth_year > AGE_TOP - 1:
        return None
    return f"{patient.birth_year:04d}"


def gender(sex: str) -> str:
    return GENDER.get(sex, "unknown")


def patient_resource(patient: Patient, *, shift: bool = False) -> dict:
    resource = {
        "resourceType": "Patient",
        "id": patient.registry_id,
        "meta": _meta(patient, shift),
        "identifier": [{"system": registry_id_system(), "value": patient.registry_id}],
        "gender": gender(patient.sex),
    }
    # Birth year at most: the registry never holds the birth date.
    birth_year = birth_year_shown(patient, shift=shift)
    if birth_year:
        resource["birthDate"] = birth_year
    # Deceased only for users who see real dates: a death is dated, and even the flag
    # tells an investigator who in a small cohort died (the search annotates death_date).
    death = getattr(patient, "death_date", None)
    if death and not shift:
        resource["deceasedDateTime"] = death.isoformat() if hasattr(death, "isoformat") else str(death)
    return resource


def research_study_resource() -> dict:
    return {
        "resourceType": "ResearchStudy",
        "id": STUDY_ID,
        "title": "Neuromodulation registry for chronic neuropathic pain",
        "status": "active",
        "primaryPurposeType": _concept(
            "http://terminology.hl7.org/CodeSystem/research-study-prim-purp-type", "treatment",
            "Treatment",
        ),
    }


def research_subject_resource(patient: Patient, *, shift: bool = False) -> dict:
    days = _shift_of(patient, shift)
    withdrawn = patient.consent_status == ConsentStatus.WITHDRAWN
    period = {"start": _day(patient, "consent_date", days)}
    if patient.withdrawal_date:
        period["end"] = _day(patient, "withdrawal_date", days)
    return {
        "resourceType": "ResearchSubject",
        "id": patient.registry_id,
        "meta": _meta(patient, shift),
        "identifier": [{"system": registry_id_system(), "value": patient.registry_id}],
        "status": "withdrawn" if withdrawn else "on-study",
        "period": period,
        "study": {"reference": f"ResearchStudy/{STUDY_ID}"},
        "individual": _patient_ref(patient.registry_id),
    }


def device_resource(implant: Implant, *, shift: bool = False) -> dict:
    therapy = Therapy(implant.therapy)
    resource = {
        "resourceType": "Device",
        "id": implant.ref,
        "meta": _meta(implant, shift),
        # No serialNumber, no UDI-PI: device serials are identifiers (HIPAA). The UDI-DI of
        # each component (it names a model, not a device) goes in udiCarrier.
        "status": "inactive" if implant.explant_date else "active",
        "type": registry_concept("therapy", therapy.value, text=f"{therapy.label} system"),
        "patient": _patient_ref(implant.patient.registry_id),
    }
    udi_dis = sorted({c.udi_di for c in implant.components.all() if c.udi_di}) if implant.pk else []
    if udi_dis:
        resource["udiCarrier"] = [{"deviceIdentifier": di} for di in udi_dis]
    if implant.manufacturer:
        resource["manufacturer"] = implant.manufacturer
    if implant.model:
        resource["deviceName"] = [{"name": implant.model, "type": "model-name"}]
    properties = []
    for list_name, value in (("lead_type", implant.lead_type), ("paradigm", implant.paradigm),
                             ("ipg_location", implant.ipg_location)):
        if value:
            properties.append({"type": _concept(code_system("device-property"), CODE_SYSTEMS[list_name]),
                               "valueCode": [registry_concept(list_name, value)]})
    if implant.lead_count:
        properties.append({"type": _concept(code_system("device-property"), "lead-count"),
                           "valueQuantity": [{"value": implant.lead_count}]})
    if properties:
        resource["property"] = properties
    return resource


def procedure_resources(implant: Implant, *, shift: bool = False) -> list[dict]:
    """Implant and explant procedures of one implant (none before the implant date)."""
    if not implant.implant_date:
        return []
    days = _shift_of(implant, shift)
    therapy = Therapy(implant.therapy)
    device = {"reference": f"Device/{implant.ref}"}
    out = [{
        "resourceType": "Procedure",
        "id": f"{implant.ref}-implant",
        "meta": _meta(implant, shift),
        "status": "completed",
        "code": _concept(code_system("procedure"), "implant", "Implantation of a neurostimulator",
                         text=f"{therapy.label} implant"),
        "subject": _patient_ref(implant.patient.registry_id),
        "performedDateTime": _day(implant, "implant_date", days),
        "focalDevice": [{"action": _concept(code_system("device-action"), "implanted", "Implanted"),
                         "manipulated": device}],
    }]
    if implant.explant_date:
        explant = {
            "resourceType": "Procedure",
            "id": f"{implant.ref}-explant",
            "meta": _meta(implant, shift),
            "status": "completed",
            "code": _concept(code_system("procedure"), "explant", "Explantation of a neurostimulator",
                             text=f"{therapy.label} explant"),
            "subject": _patient_ref(implant.patient.registry_id),
            "performedDateTime": _day(implant, "explant_date", days),
            "focalDevice": [{"action": _concept(code_system("device-action"), "explanted",
                                                "Explanted"),
                             "manipulated": device}],
        }
        # No reasonCode: the explant reason is free text (anything a nurse typed).
        out.append(explant)
    return out


def _observation(visit: Visit, *, id_: str, code: dict, updated, value: dict,
                 shift: int | None) -> dict:
    done = visit.status == VisitStatus.COMPLETED
    resource = {
        "resourceType": "Observation",
        "id": id_,
        "meta": _meta(updated, shift is not None),
        "extension": [{"url": f"{system_base()}:timepoint", "valueCode": visit.timepoint}],
        # A visit not done: the measurement was never made (FHIR's "cancelled"), no date.
        "status": "final" if done else "cancelled",
        "category": [_concept(OBSERVATION_CATEGORY, "survey", "Survey")],
        "code": code,
        "subject": _patient_ref(visit.patient.registry_id),
    }
    if done:
        resource["effectiveDateTime"] = _day(visit, "date_done", shift)
    if visit.entered_by:
        # Who entered the answers (the visits dataset's entered_by): patient through her
        # link, nurse, import; a patient's own answers name her as the performer too.
        resource["extension"].append({"url": f"{system_base()}:entered-by",
                                      "valueCode": visit.entered_by})
        if visit.entered_by == EnteredBy.PATIENT:
            resource["performer"] = [_patient_ref(visit.patient.registry_id)]
    if visit.implant_id:
        resource["focus"] = [{"reference": f"Device/{visit.implant.ref}"}]
    resource.update(value)
    return resource


def _score(value: int) -> dict:
    return {"valueQuantity": {"value": value, "unit": "{score}", "system": "http://unitsofmeasure.org",
                              "code": "{score}"}}


OBSERVATION_KINDS = ("nrs", "satisfaction", "pgic")


def observation_resources(visit: Visit, kinds: Iterable[str] = OBSERVATION_KINDS + ("painscore",),
                          pain_scores: Iterable[PainScore] | None = None, *,
                          shift: bool = False) -> Iterator[dict]:
    """Observations of one completed visit: NRS, satisfaction, PGIC and further pain scores;
    of a visit not done with its reason (`visit_missing`): NRS, satisfaction and PGIC, each
    without a value and with that reason as dataAbsentReason (status cancelled, no date)."""
    missed = visit.status in NOT_DONE and bool(visit.visit_missing)
    if not missed and (visit.status != VisitStatus.COMPLETED or not visit.date_done):
        return
    kinds = set(kinds)
    days = _shift_of(visit, shift)
    # A missing value with its reason (services.missing) is an Observation without a value
    # and with FHIR's dataAbsentReason, so a client sees it was not just forgotten; the
    # value's own reason, else the whole visit's.
    def absent(field):
        why = getattr(visit, f"{field}_missing") or visit.visit_missing
        return {"dataAbsentReason": missing.fhir_data_absent_reason(why)}

    if "nrs" in kinds and (visit.nrs is not None or visit.nrs_missing or missed):
        yield _observation(
            visit, id_=f"visit-{visit.pk}-nrs", updated=visit,
            code={"coding": [_coding(LOINC, NRS_LOINC, NRS_DISPLAY),
                             _coding(code_system("pain"), "primary-now", "Primary pain")],
                  "text": "NRS pain (0-10), primary pain"},
            value=_score(visit.nrs) if visit.nrs is not None else absent("nrs"), shift=days,
        )
    if "satisfaction" in kinds and (visit.satisfaction is not None or visit.satisfaction_missing
                                    or missed):
        yield _observation(
            visit, id_=f"visit-{visit.pk}-satisfaction", updated=visit,
            code=_concept(code_system("observation"), "satisfaction", "Satisfaction with treatment",
                          text="Satisfaction with treatment (5-point)"),
            value={"valueCodeableConcept": registry_concept("satisfaction", visit.satisfaction)}
            if visit.satisfaction is not None else absent("satisfaction"),
            shift=days,
        )
    if "pgic" in kinds and (visit.pgic is not None or visit.pgic_missing or missed):
        yield _observation(
            visit, id_=f"visit-{visit.pk}-pgic", updated=visit,
            code=_concept(code_system("observation"), "pgic",
                          "Patient Global Impression of Change", text="PGIC (7-point)"),
            value={"valueCodeableConcept": registry_concept("pgic", visit.pgic)}
            if visit.pgic is not None else absent("pgic"),
            shift=days,
        )
    if "painscore" in kinds:
        scores = pain_scores if pain_scores is not None else visit.pain_scores.all()
        for score in scores:
            site_label = PainSite(score.pain_site).label
            recall_label = Recall(score.recall).label
            yield _observation(
                visit, id_=f"painscore-{score.pk}", updated=score,
                code={"coding": [_coding(LOINC, NRS_LOINC, NRS_DISPLAY),
                                 _coding(code_system("pain"), f"{score.pain_site}-{score.recall}",
                                         f"{site_label}, {recall_label}")],
                      "text": f"NRS pain (0-10), {site_label.lower()}, {recall_label.lower()}"},
                value={**_score(score.score),
                       "bodySite": {"text": site_label}},
                shift=days,
            )


def causality(relatedness: str) -> list[dict]:
    value = Relatedness(relatedness)
    assessment = {"coding": [registry_coding("relatedness", value.value)],
                  "text": value.label}
    if value in WHO_UMC:
        assessment["coding"].append(_coding(AE_CAUSALITY, *WHO_UMC[value]))
    return [{"assessment": assessment,
             "method": {"text": "MDCG 2020-10/1 causality categories"}}]


# IMDRF terminologies of an event: Annex A device problem, E clinical signs, F health impact.
IMDRF_ANNEXES = (("a", "imdrf_device_problem"), ("e", "imdrf_clinical_signs"), ("f", "imdrf_health_impact"))


def iso_class_url() -> str:
    return f"{system_base()}:iso14155-class"


def imdrf_url(annex: str) -> str:
    return f"{system_base()}:imdrf-annex-{annex}"


def ae_event(category: str) -> dict:
    return registry_concept("ae_category", AeCategory(category).value)


def ae_seriousness(serious: bool, criterion: str) -> dict:
    concept = _concept(AE_SERIOUSNESS,
                       *(("serious", "Serious") if serious else ("non-serious", "Non-serious")))
    if criterion:
        concept["coding"].append(registry_coding("serious_criterion", criterion))
    return concept


def ae_severity(severity: str) -> dict:
    return _concept(AE_SEVERITY, severity, dict(Severity.choices).get(severity, severity))


def ae_outcome(outcome: str) -> dict:
    return _concept(AE_OUTCOME, *AE_OUTCOME_CODES[AeOutcome(outcome)])


def adverse_event_resource(event: AdverseEvent, *, shift: bool = False) -> dict:
    days = _shift_of(event, shift)
    resource = {
        "resourceType": "AdverseEvent",
        "id": f"ae-{event.pk}",
        "meta": _meta(event, shift),
        "extension": [{"url": iso_class_url(), "valueCode": event.iso_class},
                      *[{"url": imdrf_url(annex), "valueCode": getattr(event, name)}
                        for annex, name in IMDRF_ANNEXES if getattr(event, name)]],
        "actuality": "actual",
        "event": ae_event(event.category),
        "subject": _patient_ref(event.patient.registry_id),
        "date": _day(event, "onset_date", days),
        # The day the site learned of it (reporting deadlines run from it), shifted like the onset.
        "detected": _day(event, "awareness_date", days) if event.awareness_date
        else _day(event, "onset_date", days),
        "seriousness": ae_seriousness(event.serious, event.serious_criterion),
        "severity": ae_severity(event.severity),
        "outcome": ae_outcome(event.outcome),
        "study": [{"reference": f"ResearchStudy/{STUDY_ID}"}],
    }
    if event.implant_id:
        suspects = [{"instance": {"reference": f"Device/{event.implant.ref}"},
                     "causality": causality(event.device_relatedness)}]
        if event.implant.implant_date:
            suspects.append({"instance": {"reference": f"Procedure/{event.implant.ref}-implant"},
                             "causality": causality(event.procedure_relatedness)})
        resource["suspectEntity"] = suspects
    return resource

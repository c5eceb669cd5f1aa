"""Deterministic synthetic registries: the demo cohort and the benchmark scale.

`synthetic_registry(patients=N, seed=S)` always builds the same registry for the
same arguments and today's date. Rows are written in bulk *with* history (the
audit trail holds in every channel, generators included).
"""

import datetime
import random
from collections.abc import Callable

from django.db import transaction

from registry.models import (
    AdverseEvent,
    AeAction,
    AeCategory,
    AeOutcome,
    ConsentStatus,
    Diagnosis,
    Etiology,
    FollowUpProtocol,
    Implant,
    LeadType,
    PainScore,
    PainSite,
    Paradigm,
    Patient,
    PromAnswer,
    Recall,
    Relatedness,
    Severity,
    Sex,
    Site,
    Therapy,
    Visit,
    VisitStatus,
)

from .audit import bulk_create_audited
from .dates import add_months
from .proms.instruments import INSTRUMENTS, schedules_for

DEMO_SITES = [
    ("AMS", "Amsterdam Pain Centre", "NL", "Europe/Amsterdam"),
    ("NYC", "Manhattan Neuromodulation Clinic", "US", "America/New_York"),
    ("BEL", "Belgrade Rehabilitation Hospital", "RS", "Europe/Belgrade"),
]
MANUFACTURERS = {
    Therapy.SCS: [("Medtronic", "Intellis"), ("Abbott", "Proclaim XR"), ("Nevro", "Senza Omnia"),
                  ("Saluda", "Evoke")],
    Therapy.DRG: [("Abbott", "Proclaim DRG")],
    Therapy.PNS: [("SPR Therapeutics", "SPRINT PNS"), ("Bioventus", "StimRouter")],
    Therapy.CES: [("Medtronic", "Intellis"), ("Boston Scientific", "WaveWriter Alpha")],
}
TARGETS = {
    Therapy.SCS: ["T8-T10", "T9-T11", "C5-C7", "T10-T12"],
    Therapy.DRG: ["L4 DRG", "L5 DRG", "S1 DRG", "L3 DRG"],
    Therapy.PNS: ["Sciatic nerve", "Femoral nerve", "Sural nerve", "Superficial peroneal nerve"],
    Therapy.CES: ["Conus / cauda equina L1-S1"],
}
PARADIGMS = {
    Therapy.SCS: [Paradigm.TONIC, Paradigm.BURST, Paradigm.HF10, Paradigm.CLOSED_LOOP],
    Therapy.DRG: [Paradigm.TONIC],
    Therapy.PNS: [Paradigm.TONIC],
    Therapy.CES: [Paradigm.TONIC, Paradigm.BURST],
}
AE_CATEGORIES = [
    AeCategory.INFECTION_SUPERFICIAL, AeCategory.INFECTION_DEEP, AeCategory.LEAD_MIGRATION,
    AeCategory.LEAD_FRACTURE, AeCategory.HARDWARE_MALFUNCTION, AeCategory.IPG_POCKET_PAIN,
    AeCategory.CSF_LEAK, AeCategory.SEROMA_HAEMATOMA, AeCategory.LOSS_OF_EFFICACY,
]


def _bench_sites(count: int) -> list[tuple[str, str, str, str]]:
    zones = ["Europe/Amsterdam", "America/New_York", "Europe/Belgrade", "Europe/London"]
    return [(f"S{i:02d}", f"Synthetic site {i}", "NL", zones[i % len(zones)])
            for i in range(1, count + 1)]


def _nrs_trajectory(rng: random.Random, baseline: int) -> Callable[[int], int]:
    # Responders settle around 30 % of baseline, others around 75 %.
    level = rng.choice([0.25, 0.3, 0.35, 0.45, 0.6, 0.75, 0.9])

    def at(months: int) -> int:
        drift = min(months, 120) / 600  # slow loss of effect over years
        value = baseline * min(1.0, level + drift) + rng.gauss(0, 0.8)
        return max(0, min(10, round(value)))

    return at


def synthetic_registry(*, patients: int, seed: int = 1, sites: int | None = None,
                       today: datetime.date | None = None, actor=None,
                       progress: Callable[[int], None] | None = None,
                       chunk: int = 2000, full_schedule: bool = False) -> dict[str, int]:
    """Add `patients` synthetic patients (demo sites, or `sites` numbered sites).

    Follow-up visits run to about a year ahead; with `full_schedule` to the end of
    the protocol, as the scheduling service plans them for a new implant (most
    visits of a prospective registry are then scheduled ones)."""
    rng = random.Random(seed)
    today = today or datetime.date.today()
    reason = f"Synthetic data (seed {seed})"
    site_rows = DEMO_SITES if sites is None else _bench_sites(sites)
    site_objs = []
    for code, name, country, tz in site_rows:
        site = Site.objects.filter(code=code).first()
        if site is None:
            site = Site(code=code, name=name, country=country, timezone=tz,
                        reminder_emails=f"followup-{code.lower()}@example.org")
            site._history_user = actor
            site._change_reason = reason
            site.save()
        site_objs.append(site)
    protocol = FollowUpProtocol.default()
    timepoints = list(protocol.timepoints.all()) if protocol else []
    # PROM answers draw from their own stream, so the rest of a seed's registry is unchanged.
    proms = _PromMaker(random.Random(f"proms-{seed}"), schedules_for(protocol))
    counts = {"patients": 0, "implants": 0, "visits": 0, "pain_scores": 0, "adverse_events": 0,
              "prom_answers": 0}
    sequence = {s.pk: s.patient_sequence for s in site_objs}
    done = 0
    while done < patients:
        size = min(chunk, patients - done)
        with transaction.atomic():
            _chunk(rng, size, site_objs, sequence, timepoints, today, actor, reason, counts,
                   full_schedule, proms)
        done += size
        if progress:
            progress(size)
    for site in site_objs:
        # The id counter is not clinical data (excluded from history).
        Site.objects.filter(pk=site.pk).update(patient_sequence=sequence[site.pk])
    return counts


class _PromMaker:
    """Plausible PROM answers at the visits the protocol asks them for (services.proms):
    worse at baseline, better as the NRS falls, a few items and instruments left out."""

    SKIP_INSTRUMENT = 0.07
    SKIP_ITEM = 0.03

    def __init__(self, rng: random.Random, schedules):
        self.rng = rng
        self.schedules = schedules

    def answers(self, visit, diagnosis: str, baseline_nrs: int, nrs: int) -> list[PromAnswer]:
        rng = self.rng
        relief = max(0.0, 1 - nrs / baseline_nrs) if baseline_nrs else 0.0  # 0 none .. 1 pain-free
        out = []
        for code, instrument in INSTRUMENTS.items():
            if not any(row.instrument == code and row.due_at(visit.timepoint, diagnosis)
                       for row in self.schedules) or rng.random() < self.SKIP_INSTRUMENT:
                continue
            for item in instrument.items:
                if rng.random() < self.SKIP_ITEM:
                    continue
                value = self._value(code, item, relief, nrs)
                out.append(PromAnswer(visit=visit, instrument=code, instrument_version=instrument.version,
                                      item=item.code, value=max(item.low, min(item.high, value))))
        return out

    def _value(self, code, item, relief, nrs) -> int:
        g = self.rng.gauss
        if code == "eq5d5l":
            if item.code == "vas":
                return round(35 + 45 * relief + g(0, 10))
            start = {"pd": 4.0, "mo": 3.0, "ua": 3.2, "sc": 2.0, "ad": 2.6}[item.code]
            return round(start - 2.2 * relief + g(0, 0.6))
        if code == "bpi_sf":
            return round(nrs + g(0, 1.0) if item.code in ("worst", "least", "average", "now")
                         else nrs * 0.8 + g(0, 1.5))
        span = item.high - item.low
        worse = {"odi": 0.55, "hads": 0.5, "pcs": 0.6}.get(code)
        if worse is not None:  # higher is worse
            return round(item.low + span * (worse - 0.35 * relief) + g(0, span * 0.15))
        return round(item.low + span * (0.4 + 0.35 * relief) + g(0, span * 0.15))  # PSEQ: higher better


def _chunk(rng, size, site_objs, sequence, timepoints, today, actor, reason, counts,
           full_schedule=False, proms=None):
    patients, plans = [], []
    for _ in range(size):
        site = rng.choice(site_objs)
        sequence[site.pk] += 1
        postamp = rng.random() < 0.35
        etiology = Etiology.POSTAMPUTATION if postamp else rng.choice(
            [Etiology.TRAUMATIC, Etiology.IATROGENIC, Etiology.TRAUMATIC, Etiology.OTHER])
        diagnosis = rng.choice([Diagnosis.RLP, Diagnosis.PLP, Diagnosis.RLP_PLP]) if postamp \
            else Diagnosis.PN
        therapy = rng.choice([Therapy.PNS, Therapy.DRG, Therapy.SCS, Therapy.CES]) if postamp \
            else rng.choice([Therapy.SCS, Therapy.SCS, Therapy.DRG, Therapy.PNS])
        implant_date = today - datetime.timedelta(days=rng.randint(20, 365 * 12))
        trial_start = implant_date - datetime.timedelta(days=rng.randint(14, 60))
        consent = trial_start - datetime.timedelta(days=rng.randint(1, 30))
        age = max(18, min(90, round(rng.gauss(52, 14))))
        withdrawn = rng.random() < 0.03
        withdrawal = None
        if withdrawn:
            withdrawal = min(today, implant_date + datetime.timedelta(days=rng.randint(30, 2000)))
        patients.append(Patient(
            registry_id=f"{site.code}-{sequence[site.pk]:04d}", site=site,
            sex=rng.choice([Sex.MALE, Sex.FEMALE, Sex.MALE, Sex.FEMALE, Sex.UNKNOWN]),
            birth_year=implant_date.year - age, consent_date=consent,
            consent_status=ConsentStatus.WITHDRAWN if withdrawn else ConsentStatus.CONSENTED,
            withdrawal_date=withdrawal, etiology=etiology, diagnosis=diagnosis,
            affected_region=rng.choice(TARGETS[Therapy.PNS]) if not postamp else "",
            side=rng.choice(["left", "right"]),
            pain_duration_months=rng.randint(6, 240),
            amputation_level=rng.choice(["transtibial", "transfemoral", "transradial"])
            if postamp else "",
            amputation_cause=rng.choice(["trauma", "vascular", "infection", "tumour"])
            if postamp else "",
            prior_treatments=rng.sample(["medication", "physiotherapy", "nerve_block", "rfa",
                                         "cryoneurolysis", "tens"], k=rng.randint(1, 3)),
        ))
        plans.append((therapy, implant_date, trial_start, withdrawal, postamp))
    bulk_create_audited(patients, Patient, actor=actor, reason=reason, batch_size=1000)
    if patients[0].pk is None:  # back-ends that return no ids
        by_id = dict(Patient.objects.filter(
            registry_id__in=[p.registry_id for p in patients]).values_list("registry_id", "pk"))
        for p in patients:
            p.pk = p.id = by_id[p.registry_id]
    implants = []
    for patient, (therapy, implant_date, trial_start, _withdrawal, _postamp) in zip(
            patients, plans, strict=True):
        maker, model = rng.choice(MANUFACTURERS[therapy])
        explant = None
        if rng.random() < 0.06:
            explant = implant_date + datetime.timedelta(days=rng.randint(60, 3000))
            explant = explant if explant <= datetime.date.today() else None
        implants.append(Implant(
            ref=f"{patient.registry_id}-I1", patient=patient, therapy=therapy,
            trial_start=trial_start, trial_end=trial_start + datetime.timedelta(days=10),
            trial_success=True, implant_date=implant_date, manufacturer=maker, model=model,
            lead_type=LeadType.PADDLE if rng.random() < 0.2 else LeadType.PERCUTANEOUS,
            lead_count=rng.choice([1, 2, 2, 2]), target=rng.choice(TARGETS[therapy]),
            ipg_rechargeable=rng.random() < 0.5, ipg_location="buttock",
            paradigm=rng.choice(PARADIGMS[therapy]), explant_date=explant,
            explant_reason_code=rng.choice(["loss_of_efficacy", "infection", "mri"])
            if explant else "",
        ))
    bulk_create_audited(implants, Implant, actor=actor, reason=reason, batch_size=1000)
    if implants[0].pk is None:
        by_ref = dict(Implant.objects.filter(
            ref__in=[i.ref for i in implants]).values_list("ref", "pk"))
        for i in implants:
            i.pk = i.id = by_ref[i.ref]
    visits, scores_for, events = [], [], []
    for patient, implant, (_therapy, implant_date, trial_start, withdrawal, postamp) in zip(
            patients, implants, plans, strict=True):
        baseline_nrs = rng.choice([6, 7, 7, 8, 8, 8, 9, 9, 10])
        nrs_at = _nrs_trajectory(rng, baseline_nrs)
        base = Visit(patient=patient, timepoint="baseline", date_done=trial_start
                     - datetime.timedelta(days=rng.randint(0, 7)), status=VisitStatus.COMPLETED,
                     nrs=baseline_nrs)
        base.date_done = max(base.date_done, patient.consent_date)
        visits.append(base)
        scores_for.append((base, postamp, baseline_nrs))
        stop = min(d for d in [withdrawal, implant.explant_date, datetime.date.max] if d)
        for tp in timepoints:
            target = add_months(implant_date, tp.months)
            if not full_schedule and target > today + datetime.timedelta(days=400):
                break
            start = target - datetime.timedelta(days=tp.window_before_days)
            end = target + datetime.timedelta(days=tp.window_after_days)
            visit = Visit(patient=patient, implant=implant, timepoint=f"m{tp.months}",
                          target_date=target, window_start=start, window_end=end)
            if start > stop:
                visit.status = VisitStatus.NOT_APPLICABLE
            elif end < today and rng.random() < 0.88:
                visit.status = VisitStatus.COMPLETED
                visit.date_done = min(today, target + datetime.timedelta(
                    days=round(rng.gauss(0, tp.window_after_days / 2))))
                visit.date_done = max(visit.date_done, implant_date)
                visit.nrs = nrs_at(tp.months)
                visit.satisfaction = 5 if visit.nrs <= baseline_nrs / 2 else rng.choice([2, 3, 4])
                visit.pgic = 2 if visit.nrs <= baseline_nrs / 2 else rng.choice([3, 4, 5])
                visit.would_choose_again = visit.satisfaction >= 4
                visit.stimulation_use = "daily"
                scores_for.append((visit, postamp, visit.nrs))
            elif end < today - datetime.timedelta(days=30):
                visit.status = VisitStatus.MISSED
            visits.append(visit)
        if rng.random() < 0.15:
            onset = implant_date + datetime.timedelta(days=rng.randint(3, 700))
            if onset <= today:
                category = rng.choice(AE_CATEGORIES)
                serious = category in (AeCategory.INFECTION_DEEP, AeCategory.CSF_LEAK) or \
                    rng.random() < 0.05
                resolved = onset + datetime.timedelta(days=rng.randint(5, 90))
                closed = resolved <= today and rng.random() < 0.85
                events.append(AdverseEvent(
                    patient=patient, implant=implant, onset_date=onset, category=category,
                    serious=serious, serious_criterion="hospitalisation" if serious else "",
                    severity=Severity.SEVERE if serious else rng.choice(
                        [Severity.MILD, Severity.MODERATE]),
                    device_relatedness=rng.choice([Relatedness.NOT_RELATED, Relatedness.POSSIBLE,
                                                   Relatedness.PROBABLE]),
                    procedure_relatedness=rng.choice([Relatedness.NOT_RELATED,
                                                      Relatedness.PROBABLE]),
                    anticipated=rng.random() < 0.9,
                    action=AeAction.ANTIBIOTICS if "infection" in category else rng.choice(
                        [AeAction.NONE, AeAction.REPROGRAMMING, AeAction.REVISION]),
                    outcome=AeOutcome.RESOLVED if closed else AeOutcome.ONGOING,
                    resolved_on=resolved if closed else None,
                ))
    bulk_create_audited(visits, Visit, actor=actor, reason=reason, batch_size=2000)
    if visits and visits[0].pk is None:
        lookup = {(v["patient_id"], v["timepoint"]): v["id"] for v in Visit.objects.filter(
            patient__in=patients).values("id", "patient_id", "timepoint")}
        for v in visits:
            v.pk = v.id = lookup[(v.patient_id, v.timepoint)]
    answers = []
    if proms is not None:
        diagnosis_of = {p.pk: p.diagnosis for p in patients}
        baseline_of = {v.patient_id: v.nrs for v in visits if v.timepoint == "baseline"}
        for visit, _postamp, nrs in scores_for:
            answers += proms.answers(visit, diagnosis_of[visit.patient_id],
                                     baseline_of[visit.patient_id], nrs)
    bulk_create_audited(answers, PromAnswer, actor=actor, reason=reason, batch_size=5000)
    scores = []
    for visit, postamp, nrs in scores_for:
        if not postamp:
            continue
        for pain_site in (PainSite.RESIDUAL_LIMB, PainSite.PHANTOM_LIMB):
            scores.append(PainScore(visit=visit, pain_site=pain_site, recall=Recall.AVG_7D,
                                    score=max(0, min(10, nrs + rng.choice([-2, -1, 0, 1])))))
    bulk_create_audited(scores, PainScore, actor=actor, reason=reason, batch_size=2000)
    for event in events:  # as AdverseEvent.clean() completes a saved event
        event.awareness_date = event.onset_date
        event.propose_imdrf()
    bulk_create_audited(events, AdverseEvent, actor=actor, reason=reason, batch_size=1000)
    counts["patients"] += len(patients)
    counts["implants"] += len(implants)
    counts["visits"] += len(visits)
    counts["pain_scores"] += len(scores)
    counts["adverse_events"] += len(events)
    counts["prom_answers"] += len(answers)

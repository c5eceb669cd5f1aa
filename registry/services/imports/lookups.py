"""What the registry already holds for the keys a bundle names, loaded in bulk
(a fixed handful of queries per CHUNK keys) before the bundle is checked."""



from registry.models import (
    AdverseEvent,
    ContactAttempt,
    DeviceComponent,
    Disposition,
    Implant,
    PainScore,
    Patient,
    ProgrammingSession,
    PromAnswer,
    Site,
    Visit,
)

from ..bundles import (
    ADVERSE_EVENTS,
    COMPONENTS,
    CONTACT_ATTEMPTS,
    DISPOSITIONS,
    IMPLANTS,
    PAIN_SCORES,
    PATIENTS,
    PROGRAMMING_SESSIONS,
    PROM_ANSWERS,
    VISITS,
    cell,
    visit_key,
)

CHUNK = 900  # SQLite allows 999 parameters per query


class RegistryLookups:
    """The validator's registry look-ups: fills `sites`, `patients`, `implants` and
    the `existing_*` dicts (keyed as the bundle keys its rows) from `tables`."""

    def load_registry(self):
        self.sites = {s.code: s for s in Site.objects.all()}
        ids: set[str] = set()
        refs: set[str] = set()
        for name in (PATIENTS.name, IMPLANTS.name, VISITS.name, PAIN_SCORES.name,
                     ADVERSE_EVENTS.name, PROM_ANSWERS.name, PROGRAMMING_SESSIONS.name,
                     COMPONENTS.name, CONTACT_ATTEMPTS.name, DISPOSITIONS.name):
            table = self.tables.get(name)
            if table is None:
                continue
            for _line, raw in table.rows:
                if raw.get("registry_id"):
                    ids.add(raw["registry_id"])
                if raw.get("implant_ref"):
                    refs.add(raw["implant_ref"])
        sites_by_pk = {s.pk: s for s in self.sites.values()}
        for chunk in _chunks(sorted(ids)):
            for patient in Patient.objects.filter(registry_id__in=chunk):
                patient.site = sites_by_pk[patient.site_id]
                self.patients[patient.registry_id] = patient
        implants = []
        for chunk in _chunks(sorted(refs)):
            implants += Implant.objects.filter(ref__in=chunk).select_related("patient")
        patient_pks = [p.pk for p in self.patients.values()]
        for chunk in _chunks(patient_pks):
            implants += Implant.objects.filter(patient_id__in=chunk)
        by_pk = {p.pk: p for p in self.patients.values()}
        for implant in implants:
            owner = by_pk.get(implant.patient_id)
            if owner is None:  # an implant named in the bundle, of a patient not named
                owner = implant.patient
                owner.site = sites_by_pk[owner.site_id]
                by_pk[owner.pk] = owner
                self.patients.setdefault(owner.registry_id, owner)
            implant.patient = owner
            self.implants[implant.ref] = implant
        implants_by_pk = {i.pk: i for i in self.implants.values()}
        for chunk in _chunks([pk for pk in implants_by_pk if pk and pk > 0]):
            for session in ProgrammingSession.objects.filter(implant_id__in=chunk):
                session.implant = implants_by_pk[session.implant_id]
                key = (session.implant.ref, cell(session.date), session.paradigm)
                self.existing_programming[key] = session
            positions: dict[tuple, int] = {}
            for component in DeviceComponent.objects.filter(implant_id__in=chunk).order_by("pk"):
                component.implant = implants_by_pk[component.implant_id]
                slot = (component.implant.ref, component.kind)
                positions[slot] = positions.get(slot, 0) + 1
                self.existing_components[(*slot, positions[slot])] = component
        patient_pks = list(by_pk)
        visits_by_pk = {}
        for chunk in _chunks(patient_pks):
            for visit in Visit.objects.filter(patient_id__in=chunk):
                visit.patient = by_pk[visit.patient_id]
                if visit.implant_id:
                    visit.implant = implants_by_pk[visit.implant_id]
                ref = visit.implant.ref if visit.implant else ""
                key = visit_key(visit.patient.registry_id, ref, visit.timepoint,
                                cell(visit.date_done))
                self.existing_visits[key] = visit
                visits_by_pk[visit.pk] = (key, visit)
            for event in AdverseEvent.objects.filter(patient_id__in=chunk):
                event.patient = by_pk[event.patient_id]
                if event.implant_id:
                    event.implant = implants_by_pk[event.implant_id]
                key = (event.patient.registry_id, event.implant.ref if event.implant else "",
                       cell(event.onset_date), event.category)
                self.existing_events[key] = event
            for attempt in ContactAttempt.objects.filter(patient_id__in=chunk).order_by("pk"):
                attempt.patient = by_pk[attempt.patient_id]
                key = (attempt.patient.registry_id, cell(attempt.date), attempt.method,
                       attempt.outcome)
                self.existing_attempts.setdefault(key, []).append(attempt)
            for row in Disposition.objects.filter(patient_id__in=chunk).select_related(
                    "transferred_to").order_by("date", "pk"):
                row.patient = by_pk[row.patient_id]
                self.existing_dispositions[(row.patient.registry_id, cell(row.date),
                                            row.status)] = row
        for chunk in _chunks(list(visits_by_pk)):
            for score in PainScore.objects.filter(visit_id__in=chunk):
                key, visit = visits_by_pk[score.visit_id]
                score.visit = visit
                self.existing_scores[(key, score.pain_site, score.recall)] = score
            for answer in PromAnswer.objects.filter(visit_id__in=chunk):
                key, visit = visits_by_pk[answer.visit_id]
                answer.visit = visit
                self.existing_prom_answers[(key, answer.instrument, answer.item)] = answer


def _chunks(items: list, size: int = CHUNK):
    for start in range(0, len(items), size):
        yield items[start:start + size]

"""Checking a whole bundle against itself and against the registry.

Each row becomes an unsaved instance and the model's own validation runs on it
(`full_clean()`'s parts), its messages mapped back to the CSV columns; what
spans rows - keys, duplicates, references, what is already in the registry -
is checked here, in bulk. Nothing is written: the validator collects the new
rows and the visits to fill in for `writing`.
"""

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from functools import partial

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db.models.expressions import DatabaseDefault

from registry.models import (
    AdverseEvent,
    ContactAttempt,
    DeviceComponent,
    Disposition,
    DispositionStatus,
    EnteredBy,
    Implant,
    PainScore,
    Patient,
    ProgrammingSession,
    PromAnswer,
    Site,
    Visit,
    VisitStatus,
)
from registry.models.base import unsaved_factory
from registry.models.plausibility import overlap_message
from registry.models.sites import parse_emails
from registry.models.visits import NOT_DONE

from ..bundles import (
    ADVERSE_EVENTS,
    COMPONENTS,
    CONTACT_ATTEMPTS,
    DECIMAL,
    DISPOSITIONS,
    IMPLANTS,
    INT,
    KEY,
    PAIN_SCORES,
    PATIENTS,
    PROGRAMMING_SESSIONS,
    PROM_ANSWERS,
    SITES,
    TEXT,
    VISITS,
    BundleFile,
    cell,
    visit_key,
)
from ..disposition import disposition_errors, unanswered_of
from .lookups import RegistryLookups
from .reading import BundleError, _Table
from .values import _Bad, _empty_value, _parse, _required

EMPTY_MESSAGES = {"This field cannot be blank.", "This field cannot be null."}


# ---------------------------------------------------------------- validation


@dataclass
class _Row:
    line: int
    raw: dict[str, str]
    values: dict[str, object]  # model field -> value (key columns excluded)
    bad: set[str]  # columns already reported


class _Validator(RegistryLookups):
    """Validates a whole bundle against itself and the registry; collects the writes."""

    def __init__(self, tables: dict[str, _Table], errors: list[BundleError],
                 progress: Callable[[str, int, int], None] | None):
        self.tables = tables
        self.errors = errors
        self.warnings: list[BundleError] = []
        self.progress = progress
        self.temp_pk = 0
        self.counts: dict[str, dict[str, int]] = {}
        self.sites: dict[str, Site] = {}
        self.patients: dict[str, Patient] = {}
        self.implants: dict[str, Implant] = {}
        self.visits: dict[tuple, Visit] = {}
        self.visit_lines: dict[tuple, int] = {}
        self.new: dict[str, list] = defaultdict(list)
        self.visit_updates: list[Visit] = []
        self.existing_visits: dict[tuple, Visit] = {}
        self.existing_scores: dict[tuple, PainScore] = {}
        self.existing_prom_answers: dict[tuple, PromAnswer] = {}
        self.existing_events: dict[tuple, AdverseEvent] = {}
        self.existing_programming: dict[tuple, ProgrammingSession] = {}
        self.existing_components: dict[tuple, DeviceComponent] = {}
        self.existing_attempts: dict[tuple, list[ContactAttempt]] = {}
        self.existing_dispositions: dict[tuple, Disposition] = {}
        # New dispositions with their lines: written through the disposition service,
        # one by one in file order, after everything else (services/imports/writing.py).
        self.dispositions: list[tuple[int, Disposition]] = []
        self.clean_plans: dict[tuple, tuple] = {}
        self.parse_plans: dict[str, list[tuple]] = {}
        self.make = {model: unsaved_factory(model) for model in (
            Patient, Implant, Visit, PainScore, PromAnswer, DeviceComponent, ProgrammingSession,
            AdverseEvent)}
        self.field_verdicts: dict = {}

    # -- helpers

    def error(self, spec, line, column, value, message):
        self.errors.append(BundleError(spec.name, line, column, value, message))

    def fake_pk(self, obj):
        # Unsaved parents get a temporary negative pk so the children's clean() can
        # follow the relation (consent date, implant date) as it does in the admin.
        self.temp_pk -= 1
        obj.pk = self.temp_pk
        return obj

    def tick(self, spec, done, total):
        if self.progress and (done % 2000 == 0 or done == total):
            self.progress(f"validating {spec.name}", done, total)

    def parse_row(self, table: _Table, line: int, raw: dict[str, str]) -> _Row:
        spec = table.spec
        row = _Row(line, raw, {}, set())
        values = row.values
        for column, name, target, required, empty in self._parse_plan(table):
            text = raw[name]
            try:
                value = _parse(column, text)
            except _Bad as bad:
                self.error(spec, line, name, text, str(bad))
                row.bad.add(name)
                continue
            if target is None:
                continue  # keys and the pain score's visit columns are resolved by hand
            if value is None:
                if required:
                    self.error(spec, line, name, "", "expected a value.")
                    row.bad.add(name)
                    continue
                # A callable default (a list) is made afresh for each row.
                value = empty() if callable(empty) else empty
            values[target] = value
        return row

    def _parse_plan(self, table: _Table) -> list[tuple]:
        """Per file (not per row): each present column with the model field it fills
        (None for keys and columns resolved by hand), whether an empty cell is an
        error, and what an empty cell means (values._empty_value)."""
        plan = self.parse_plans.get(table.spec.name)
        if plan is None:
            spec, plan = table.spec, []
            for column in spec.columns:
                if column.name not in table.present:
                    continue
                if column.kind == KEY or column.model_field not in _field_names(spec.model):
                    plan.append((column, column.name, None, False, None))
                    continue
                model_field = spec.model._meta.get_field(column.model_field)
                empty = _empty_value(model_field)
                if isinstance(empty, list | dict | set):
                    empty = partial(_empty_value, model_field)
                plan.append((column, column.name, column.model_field, _required(model_field),
                             empty))
            self.parse_plans[spec.name] = plan
        return plan

    def clean(self, table: _Table, row: _Row, obj, exclude: Iterable[str] = (),
              parents: dict[str, object] | None = None) -> bool:
        """The model's own validation, its messages mapped back to the CSV columns.

        `parents` names the rows this one depends on by relation ("patient": ...).
        A faulty one is taken off the row for the check, as an unknown one (None,
        its reference already reported) is: the row's fields and the model rules
        that do not read that parent all run; the rules that do read it would only
        repeat the parent's fault, so they run once the parent is fixed (and what
        is said about the relation itself is dropped).
        """
        spec = table.spec
        detached = {name: parent for name, parent in (parents or {}).items()
                    if getattr(parent, "_bundle_invalid", False)}
        by_field, missing, skip = self._clean_plan(table, tuple(exclude))
        if row.bad:
            skip = skip | {spec.column(c).model_field for c in row.bad if c in by_field.values()}
        # Field checks the parser has already made exactly (codes, dates, yes/no) are
        # skipped for speed; text lengths, numbers and the model's clean() all run.
        found: dict = {}
        try:
            clean_fields_remembered(obj, skip, self.field_verdicts)
        except ValidationError as exc:
            found = exc.update_error_dict(found)
        for name in detached:
            setattr(obj, name, None)
        try:
            obj.clean()
        except ValidationError as exc:
            found = exc.update_error_dict(found)
        finally:
            for name, parent in detached.items():
                setattr(obj, name, parent)
        reported = 0
        for name, messages in found.items():
            column = by_field.get(name, "" if name == NON_FIELD_ERRORS else name)
            if column in row.bad or name in missing or name in detached:
                continue
            message = next(iter(ValidationError(messages[:1])))
            if message in EMPTY_MESSAGES:
                message = "expected a value."
            self.error(spec, row.line, column, row.raw.get(column, ""), message)
            row.bad.add(column)
            reported += 1
        if reported or row.bad:
            obj._bundle_invalid = True
            return False
        unusual = getattr(obj, "unusual", None)
        for name, message in (unusual() if unusual else {}).items():
            column = by_field.get(name, name)
            self.warnings.append(BundleError(spec.name, row.line, column, row.raw.get(column, ""),
                                             message))
        return True

    def _clean_plan(self, table: _Table, exclude: tuple) -> tuple[dict, set, set]:
        """Per file (not per row): model field -> column, the fields of absent
        columns, and the fields whose check is skipped."""
        plan = self.clean_plans.get((table.spec.name, exclude))
        if plan is None:
            spec = table.spec
            by_field = {c.model_field: c.name for c in spec.columns}
            missing = {c.model_field for c in spec.columns if c.name not in table.present}
            plan = (by_field, missing, set(exclude) | missing | _parsed_fields(spec))
            self.clean_plans[(spec.name, exclude)] = plan
        return plan

    def duplicate(self, spec, keys: dict, key, line, column, value, what) -> bool:
        if key in keys:
            self.error(spec, line, column, value, f"{what} (first on line {keys[key]}).")
            return True
        keys[key] = line
        return False

    def compare(self, table: _Table, row: _Row, obj, what: str, refs: dict[str, str] | None = None):
        """Differences between a row and the registry's record with the same key."""
        spec = table.spec
        clashes = 0
        for column in spec.columns:
            if column.name not in table.present or column.name in row.bad:
                continue
            if column.withheld is not None and (row.raw.get(column.name) or "") in ("", column.withheld):
                continue  # what the export writes in its place: not a difference
            if column.kind == KEY:
                if refs is None or column.name not in refs:
                    continue
                mine, theirs = row.raw[column.name], refs[column.name]
            elif column.model_field not in row.values:
                continue
            else:
                mine = row.values.get(column.model_field)
                theirs = getattr(obj, column.model_field)
                if column.name == "reminder_emails":
                    mine, theirs = parse_emails(mine), parse_emails(theirs)
                if isinstance(mine, str) and isinstance(theirs, str):
                    mine, theirs = mine.strip(), theirs.strip()
            if mine != theirs:
                shown = ";".join(theirs) if isinstance(theirs, list) else cell(theirs, column.kind)
                self.error(spec, row.line, column.name, row.raw[column.name],
                           f"{what} is already in the registry with {column.name} '{shown}'; "
                           "correct it there (with a reason) or fix the file.")
                clashes += 1
        return clashes == 0

    def count(self, spec, what):
        bucket = self.counts.setdefault(spec.name.removesuffix(".csv"),
                                        {"new": 0, "updated": 0, "unchanged": 0})
        bucket[what] += 1

    # -- files

    def run(self):
        self.load_registry()
        for spec, method in ((SITES, self.check_sites), (PATIENTS, self.check_patients),
                             (IMPLANTS, self.check_implants), (VISITS, self.check_visits),
                             (PAIN_SCORES, self.check_scores),
                             (ADVERSE_EVENTS, self.check_events),
                             (PROM_ANSWERS, self.check_prom_answers),
                             (COMPONENTS, self.check_components),
                             (PROGRAMMING_SESSIONS, self.check_programming),
                             (CONTACT_ATTEMPTS, self.check_contact_attempts),
                             (DISPOSITIONS, self.check_dispositions)):
            table = self.tables.get(spec.name)
            if table is not None:
                self.counts.setdefault(spec.name.removesuffix(".csv"),
                                       {"new": 0, "updated": 0, "unchanged": 0})
                method(table)

    def check_sites(self, table):
        spec, keys = table.spec, {}
        for line, raw in table.rows:
            row = self.parse_row(table, line, raw)
            code = raw.get("code", "")
            if "code" in row.bad or not code:
                if "code" not in row.bad:
                    self.error(spec, line, "code", code, "expected a site code.")
                continue
            if self.duplicate(spec, keys, code, line, "code", code, "duplicate site code"):
                continue
            existing = self.sites.get(code)
            if existing is not None and existing.pk and existing.pk > 0:
                if self.compare(table, row, existing, f"site {code}"):
                    self.count(spec, "unchanged")
                continue
            site = self.fake_pk(Site(code=code, **row.values))
            ok = self.clean(table, row, site)
            if ok and site.code != code:  # clean() upper-cases; keys are case-sensitive
                self.error(spec, line, "code", code, f"expected upper case ({site.code}).")
                site._bundle_invalid, ok = True, False
            if ok:
                self.new["sites"].append(site)
                self.count(spec, "new")
            # Known either way, so its patients do not repeat "unknown site".
            self.sites[code] = site

    def check_patients(self, table):
        spec, keys = table.spec, {}
        total = len(table.rows)
        for done, (line, raw) in enumerate(table.rows, 1):
            self.tick(spec, done, total)
            row = self.parse_row(table, line, raw)
            registry_id, code = raw.get("registry_id", ""), raw.get("site", "")
            if not registry_id:
                if "registry_id" in table.present:
                    self.error(spec, line, "registry_id", "", "expected a registry id.")
                continue
            if self.duplicate(spec, keys, registry_id, line, "registry_id", registry_id,
                              "duplicate registry_id"):
                continue
            site = self.sites.get(code)
            if site is None and "site" in table.present:
                self.error(spec, line, "site", code,
                           "unknown site; expected a code of sites.csv or of the registry.")
                row.bad.add("site")
            existing = self.patients.get(registry_id)
            if existing is not None:
                if self.compare(table, row, existing, f"patient {registry_id}",
                                refs={"site": existing.site.code}):
                    self.count(spec, "unchanged")
                continue
            patient = self.fake_pk(self.make[Patient](registry_id=registry_id, site=site,
                                                      **row.values))
            if self.clean(table, row, patient, exclude=["site"], parents={"site": site}) \
                    and site is not None:
                self.new["patients"].append(patient)
                self.count(spec, "new")
            else:
                patient._bundle_invalid = True
            # Known either way, so later files do not repeat "unknown registry_id".
            self.patients[registry_id] = patient

    def patient_of(self, table, row, raw) -> Patient | None:
        registry_id = raw.get("registry_id", "")
        if "registry_id" not in table.present or "registry_id" in row.bad:
            return None
        patient = self.patients.get(registry_id)
        if patient is None:
            self.error(table.spec, row.line, "registry_id", registry_id,
                       "unknown registry_id; expected one of patients.csv or of the registry."
                       if registry_id else "expected a registry id.")
            row.bad.add("registry_id")
        return patient

    def implant_of(self, table, row, raw) -> Implant | None:
        ref = raw.get("implant_ref", "")
        if not ref or "implant_ref" in row.bad:
            return None
        implant = self.implants.get(ref)
        if implant is None:
            self.error(table.spec, row.line, "implant_ref", ref,
                       "unknown implant_ref; expected one of implants.csv or of the registry.")
            row.bad.add("implant_ref")
        return implant

    def check_implants(self, table):
        spec, keys = table.spec, {}
        total = len(table.rows)
        # This file's new implants by patient (a list scan per row was quadratic: issue 21).
        new_of: dict[int, list[Implant]] = defaultdict(list)
        for done, (line, raw) in enumerate(table.rows, 1):
            self.tick(spec, done, total)
            row = self.parse_row(table, line, raw)
            ref = raw.get("implant_ref", "")
            if not ref:
                if "implant_ref" in table.present:
                    self.error(spec, line, "implant_ref", "", "expected an implant ref.")
                continue
            if self.duplicate(spec, keys, ref, line, "implant_ref", ref, "duplicate implant_ref"):
                continue
            patient = self.patient_of(table, row, raw)
            existing = self.implants.get(ref)
            if existing is not None and existing.pk > 0:
                if self.compare(table, row, existing, f"implant {ref}",
                                refs={"registry_id": existing.patient.registry_id}):
                    self.count(spec, "unchanged")
                continue
            implant = self.fake_pk(self.make[Implant](ref=ref, patient=patient, **row.values))
            self.implants[ref] = implant
            if self.clean(table, row, implant, exclude=["patient"],
                          parents={"patient": patient}) and patient is not None:
                # The model's clean() compares with the implants in the registry; those
                # of this file are compared here, with the same rule and message.
                earlier = new_of[id(patient)]
                overlap = overlap_message(implant, earlier)
                if overlap:
                    self.error(spec, line, "implant_date", raw.get("implant_date", ""), overlap)
                    implant._bundle_invalid = True
                    continue
                self.new["implants"].append(implant)
                earlier.append(implant)
                self.count(spec, "new")
            else:
                implant._bundle_invalid = True

    def check_visits(self, table):
        spec, keys = table.spec, {}
        total = len(table.rows)
        for done, (line, raw) in enumerate(table.rows, 1):
            self.tick(spec, done, total)
            row = self.parse_row(table, line, raw)
            patient = self.patient_of(table, row, raw)
            implant = self.implant_of(table, row, raw)
            registry_id, timepoint = raw.get("registry_id", ""), raw.get("timepoint", "")
            if timepoint == "trial_end" and not raw.get("implant_ref") and \
                    "implant_ref" in table.present:
                self.error(spec, line, "implant_ref", "",
                           "expected the implant_ref of the trial for a trial_end visit.")
                row.bad.add("implant_ref")
            key, existing = None, None
            # The key as written: a duplicate is one whether its patient is known or not.
            if registry_id and not row.bad & {"timepoint", "visit_date"}:
                key = visit_key(registry_id, raw.get("implant_ref", ""), timepoint,
                                raw.get("visit_date", ""))
                what = (f"a second baseline for {registry_id}" if timepoint == "baseline"
                        else f"a second {timepoint} visit for {'/'.join(key[1:2])}")
                if self.duplicate(spec, keys, key, line, "timepoint", timepoint, what):
                    continue
                existing = self.existing_visits.get(key)
            # Completed unless the row says it was not done (issue 18: missed visits travel).
            status = VisitStatus.COMPLETED
            if "status" in table.present and "status" not in row.bad:
                status = raw.get("status") or VisitStatus.COMPLETED
                row.values["status"] = status
            not_done = status in NOT_DONE
            if not_done and row.values.get("date_done") is not None:
                self.error(spec, line, "visit_date", raw.get("visit_date", ""),
                           f"a {status} visit was not done and has no visit date; leave it empty.")
                row.bad.add("visit_date")
            if existing is not None and (existing.status == VisitStatus.COMPLETED
                                         or (existing.status in NOT_DONE and not_done)):
                if self.compare(table, row, existing, f"visit {' '.join(key)}"):
                    self.count(spec, "unchanged")
                    self.visits[key] = existing
                continue
            # Where the answers came from: the bundle's entered_by (a registry's own
            # export), else the import itself.
            source = "" if "entered_by" in row.bad else (raw.get("entered_by") or "").strip()
            if existing is not None:  # scheduled / missed: fill it in
                visit = existing
                for name, value in row.values.items():
                    setattr(visit, name, value)
                visit.status = status
                visit.entered_by = source or EnteredBy.IMPORT
            else:
                visit = self.make[Visit](patient=patient, implant=implant,
                                         entered_by=source or EnteredBy.IMPORT,
                                         **{**row.values, "status": status})
            if self.clean(table, row, visit, exclude=["patient", "implant"],
                          parents={"patient": patient, "implant": implant}) \
                    and patient is not None and key is not None:
                self.visits[key] = visit
                self.visit_lines[key] = line
                if existing is not None:
                    self.visit_updates.append(visit)
                    self.count(spec, "updated")
                else:
                    self.new["visits"].append(visit)
                    self.count(spec, "new")

    def check_scores(self, table):
        spec, keys = table.spec, {}
        total = len(table.rows)
        for done, (line, raw) in enumerate(table.rows, 1):
            self.tick(spec, done, total)
            row = self.parse_row(table, line, raw)
            patient = self.patient_of(table, row, raw)
            self.implant_of(table, row, raw)
            if patient is None or row.bad & {"implant_ref", "timepoint", "visit_date",
                                             "pain_site", "recall"}:
                continue
            vkey = visit_key(patient.registry_id, raw.get("implant_ref", ""),
                             raw.get("timepoint", ""), raw.get("visit_date", ""))
            visit = self.visits.get(vkey)
            if visit is None:
                visit = self.existing_visits.get(vkey)
                if visit is None or visit.status != VisitStatus.COMPLETED:
                    self.error(spec, line, "timepoint", raw.get("timepoint", ""),
                               "no such completed visit; expected a visit of visits.csv or of "
                               "the registry (same registry_id, implant_ref, timepoint, "
                               "visit_date).")
                    continue
            if cell(visit.date_done) != raw.get("visit_date"):
                self.error(spec, line, "visit_date", raw.get("visit_date", ""),
                           f"expected {cell(visit.date_done)}, the date of that visit.")
                continue
            key = (vkey, raw.get("pain_site"), raw.get("recall"))
            if self.duplicate(spec, keys, key, line, "pain_site", raw.get("pain_site", ""),
                              "a second score for this visit, pain site and recall"):
                continue
            existing = self.existing_scores.get(key)
            if existing is not None:
                if self.compare(table, row, existing, "this pain score"):
                    self.count(spec, "unchanged")
                continue
            score = self.make[PainScore](visit=visit, **row.values)
            if self.clean(table, row, score, exclude=["visit"], parents={"visit": visit}):
                self.new["pain_scores"].append(score)
                self.count(spec, "new")

    def visit_of(self, table, row, raw, bad_columns) -> tuple[tuple, Visit] | None:
        """The completed visit a child row (pain score, PROM answer) names, or None
        (with the error said)."""
        spec = table.spec
        patient = self.patient_of(table, row, raw)
        self.implant_of(table, row, raw)
        if patient is None or row.bad & bad_columns:
            return None
        vkey = visit_key(patient.registry_id, raw.get("implant_ref", ""),
                         raw.get("timepoint", ""), raw.get("visit_date", ""))
        visit = self.visits.get(vkey)
        if visit is None:
            visit = self.existing_visits.get(vkey)
            if visit is None or visit.status != VisitStatus.COMPLETED:
                self.error(spec, row.line, "timepoint", raw.get("timepoint", ""),
                           "no such completed visit; expected a visit of visits.csv or of "
                           "the registry (same registry_id, implant_ref, timepoint, "
                           "visit_date).")
                return None
        if cell(visit.date_done) != raw.get("visit_date"):
            self.error(spec, row.line, "visit_date", raw.get("visit_date", ""),
                       f"expected {cell(visit.date_done)}, the date of that visit.")
            return None
        return vkey, visit

    def check_prom_answers(self, table):
        spec, keys = table.spec, {}
        total = len(table.rows)
        for done, (line, raw) in enumerate(table.rows, 1):
            self.tick(spec, done, total)
            row = self.parse_row(table, line, raw)
            found = self.visit_of(table, row, raw, {"implant_ref", "timepoint", "visit_date",
                                                    "instrument", "item"})
            if found is None:
                continue
            vkey, visit = found
            key = (vkey, raw.get("instrument"), raw.get("item"))
            if self.duplicate(spec, keys, key, line, "item", raw.get("item", ""),
                              "a second answer to this item at this visit"):
                continue
            existing = self.existing_prom_answers.get(key)
            if existing is not None:
                if self.compare(table, row, existing, "this answer"):
                    self.count(spec, "unchanged")
                continue
            answer = self.make[PromAnswer](visit=visit, **row.values)
            if self.clean(table, row, answer, exclude=["visit"], parents={"visit": visit}):
                self.new["prom_answers"].append(answer)
                self.count(spec, "new")

    def check_components(self, table):
        spec, keys = table.spec, {}
        # Positions follow the order entered: new rows of a (ref, kind) in position order.
        rows = sorted(table.rows, key=lambda item: (item[1].get("implant_ref", ""),
                                                     item[1].get("kind", ""),
                                                     int(item[1].get("position") or 0)
                                                     if (item[1].get("position") or "").isdigit() else 0))
        for done, (line, raw) in enumerate(rows, 1):
            self.tick(spec, done, len(rows))
            row = self.parse_row(table, line, raw)
            implant = self.implant_of(table, row, raw)
            if implant is None or row.bad & {"kind", "position"}:
                continue
            key = (raw.get("implant_ref", ""), raw.get("kind", ""), int(raw.get("position")))
            if self.duplicate(spec, keys, key, line, "position", raw.get("position", ""),
                              "a second component with this implant_ref, kind and position"):
                continue
            existing = self.existing_components.get(key)
            if existing is not None:
                if self.compare(table, row, existing, "this component"):
                    self.count(spec, "unchanged")
                continue
            component = self.make[DeviceComponent](implant=implant, **row.values)
            if self.clean(table, row, component, exclude=["implant"], parents={"implant": implant}):
                self.new["components"].append(component)
                self.count(spec, "new")

    def check_programming(self, table):
        spec, keys = table.spec, {}
        total = len(table.rows)
        for done, (line, raw) in enumerate(table.rows, 1):
            self.tick(spec, done, total)
            row = self.parse_row(table, line, raw)
            implant = self.implant_of(table, row, raw)
            if implant is None or row.bad & {"date", "paradigm"}:
                continue
            key = (raw.get("implant_ref", ""), raw.get("date", ""), raw.get("paradigm", ""))
            if self.duplicate(spec, keys, key, line, "date", raw.get("date", ""),
                              "a second session with this implant_ref, date and paradigm"):
                continue
            existing = self.existing_programming.get(key)
            if existing is not None:
                if self.compare(table, row, existing, "this programming session"):
                    self.count(spec, "unchanged")
                continue
            session = self.make[ProgrammingSession](implant=implant, **row.values)
            if self.clean(table, row, session, exclude=["implant"], parents={"implant": implant}):
                self.new["programming_sessions"].append(session)
                self.count(spec, "new")

    def check_contact_attempts(self, table):
        spec = table.spec
        seen: dict[tuple, int] = defaultdict(int)
        for done, (line, raw) in enumerate(table.rows, 1):
            self.tick(spec, done, len(table.rows))
            row = self.parse_row(table, line, raw)
            patient = self.patient_of(table, row, raw)
            if patient is None or row.bad & {"date", "method", "outcome"}:
                continue
            # Each row is one attempt: the n-th row of a key is the registry's n-th.
            key = (patient.registry_id, raw.get("date", ""), raw.get("method", ""),
                   raw.get("outcome", ""))
            seen[key] += 1
            existing = self.existing_attempts.get(key, [])
            if seen[key] <= len(existing):
                if self.compare(table, row, existing[seen[key] - 1], "this contact attempt"):
                    self.count(spec, "unchanged")
                continue
            attempt = ContactAttempt(patient=patient, **row.values)
            if self.clean(table, row, attempt, exclude=["patient", "visit"],
                          parents={"patient": patient}):
                self.new["contact_attempts"].append(attempt)
                self.count(spec, "new")

    def check_dispositions(self, table):
        spec, keys = table.spec, {}
        course = _Course(self)
        for done, (line, raw) in enumerate(table.rows, 1):
            self.tick(spec, done, len(table.rows))
            row = self.parse_row(table, line, raw)
            patient = self.patient_of(table, row, raw)
            code = raw.get("transferred_to", "")
            target = self.sites.get(code) if code else None
            if code and target is None:
                self.error(spec, line, "transferred_to", code,
                           "unknown site; expected a code of sites.csv or of the registry.")
                row.bad.add("transferred_to")
            if patient is None or row.bad & {"status", "date"}:
                continue
            key = (patient.registry_id, raw.get("date", ""), raw.get("status", ""))
            if self.duplicate(spec, keys, key, line, "status", raw.get("status", ""),
                              "a second disposition with this registry_id, date and status"):
                continue
            existing = self.existing_dispositions.get(key)
            if existing is not None:
                shown = existing.transferred_to.code if existing.transferred_to_id else ""
                if self.compare(table, row, existing, "this disposition",
                                refs={"transferred_to": shown}):
                    self.count(spec, "unchanged")
                continue
            disposition = Disposition(patient=patient, transferred_to=target, **row.values)
            if not self.clean(table, row, disposition, exclude=["patient", "transferred_to"],
                              parents={"patient": patient, "transferred_to": target}):
                continue
            # The rules spanning rows, on the registry and the bundle as they will be then.
            errors = course.errors(disposition)
            for name, message in errors.items():
                self.error(spec, line, name, raw.get(name, ""), message)
            if errors:
                continue
            course.add(disposition)
            self.dispositions.append((line, disposition))
            self.count(spec, "new")

    def check_events(self, table):
        spec, keys = table.spec, {}
        total = len(table.rows)
        for done, (line, raw) in enumerate(table.rows, 1):
            self.tick(spec, done, total)
            row = self.parse_row(table, line, raw)
            patient = self.patient_of(table, row, raw)
            implant = self.implant_of(table, row, raw)
            registry_id, existing = raw.get("registry_id", ""), None
            # The key as written: a duplicate is one whether its patient is known or not.
            if registry_id and not row.bad & {"onset_date", "category"}:
                key = (registry_id, raw.get("implant_ref", ""), raw.get("onset_date", ""),
                       raw.get("category", ""))
                if self.duplicate(spec, keys, key, line, "onset_date", raw.get("onset_date", ""),
                                  "a second event with this registry_id, implant_ref, "
                                  "onset_date and category"):
                    continue
                existing = self.existing_events.get(key)
            if existing is not None:
                if self.compare(table, row, existing, f"the adverse event {' '.join(key)}"):
                    self.count(spec, "unchanged")
                continue
            event = self.make[AdverseEvent](patient=patient, implant=implant, **row.values)
            if self.clean(table, row, event, exclude=["patient", "implant"],
                          parents={"patient": patient, "implant": implant}) \
                    and patient is not None:
                self.new["adverse_events"].append(event)
                self.count(spec, "new")


class _Course:
    """A patient's dispositions, contact attempts and completed visits as they will be
    when the rows of dispositions.csv before this one are recorded (registry + bundle),
    for the disposition service's rules (`disposition_errors`)."""

    def __init__(self, v: "_Validator"):
        self.deaths: dict[str, Disposition] = {}
        for (registry_id, _date, status), row in v.existing_dispositions.items():
            if status == DispositionStatus.DECEASED:
                self.deaths[registry_id] = row
        self.attempts: dict[str, list[ContactAttempt]] = defaultdict(list)
        for (registry_id, *_rest), rows in v.existing_attempts.items():
            self.attempts[registry_id] += rows
        for attempt in v.new["contact_attempts"]:
            self.attempts[attempt.patient.registry_id].append(attempt)
        self.seen: dict[str, list] = defaultdict(list)
        visits = {id(visit): visit for visit in v.existing_visits.values()
                  if visit.status == VisitStatus.COMPLETED}
        visits.update((id(visit), visit) for visit in (*v.new["visits"], *v.visit_updates))
        for visit in visits.values():
            self.seen[visit.patient.registry_id].append(visit.date_done)

    def errors(self, disposition: Disposition) -> dict[str, str]:
        registry_id = disposition.patient.registry_id
        unanswered = None
        if disposition.status == DispositionStatus.LOST:
            unanswered = len(unanswered_of(self.attempts[registry_id], self.seen[registry_id],
                                           disposition.date))
        return disposition_errors(disposition, death=self.deaths.get(registry_id),
                                  unanswered=unanswered)

    def add(self, disposition: Disposition) -> None:
        if disposition.status == DispositionStatus.DECEASED:
            self.deaths.setdefault(disposition.patient.registry_id, disposition)



def clean_fields_remembered(obj, exclude: set[str], verdicts: dict) -> None:
    """`Model.clean_fields(exclude)`, with each field's verdict on a value computed once
    per import: a field's own checks (to_python, choices, max_length, validators) read
    only the value, so 100,000 visits with NRS 0-10 run the NRS check 11 times, not
    100,000 (issue 21). Relations (their check reads the database) and values that
    cannot be remembered (unhashable) are checked each time, as Django does.
    The same messages as clean_fields (tests/services/test_import_speed.py compares
    them over a grid of values)."""
    errors = {}
    state = obj.__dict__
    for f, attname, empty, remembered in _checked_fields(type(obj), frozenset(exclude)):
        raw_value = state[attname] if attname in state else getattr(obj, attname)
        if empty is not None and raw_value in empty:
            continue
        if isinstance(raw_value, DatabaseDefault):
            continue
        key = None
        if remembered is not None:
            try:
                # Decimal("1.5") == Decimal("1.50"), but their decimal places differ.
                key = (remembered, type(raw_value),
                       str(raw_value) if isinstance(raw_value, Decimal) else raw_value)
                verdict = verdicts.get(key)
            except TypeError:  # unhashable (a list): checked each time
                key = verdict = None
            if verdict is not None:
                ok, outcome = verdict
                if ok:
                    state[attname] = outcome  # a plain field: no descriptor sets it
                else:
                    errors[f.name] = outcome
                continue
        try:
            cleaned = f.clean(raw_value, obj)
        except ValidationError as e:
            errors[f.name] = e.error_list
            if key is not None:
                verdicts[key] = (False, e.error_list)
        else:
            setattr(obj, attname, cleaned)
            if key is not None:
                verdicts[key] = (True, cleaned)
    if errors:
        raise ValidationError(errors)


_CHECKED: dict[tuple, list] = {}


def _checked_fields(model, exclude: frozenset) -> list[tuple]:
    """(field, attname, its empty values when blank is allowed else None, the key its
    verdicts are remembered under or None for relations) of the fields clean_fields(exclude)
    checks, in its order; once per (model, exclude), not per row."""
    key = (model, exclude)
    fields = _CHECKED.get(key)
    if fields is None:
        fields = _CHECKED[key] = [
            (f, f.attname, f.empty_values if f.blank else None,
             None if f.is_relation else (model, f.attname))
            for f in model._meta.fields if f.name not in exclude and not f.generated]
    return fields


_FIELD_NAMES: dict[type, set[str]] = {}
_PARSED: dict[str, set[str]] = {}


def _parsed_fields(spec: BundleFile) -> set[str]:
    """Model fields whose values the parser fully checked, or that no column sets."""
    if spec.name not in _PARSED:
        checked_by_model = {c.model_field for c in spec.columns if c.kind in (TEXT, INT, DECIMAL, KEY)}
        _PARSED[spec.name] = _field_names(spec.model) - checked_by_model
    return _PARSED[spec.name]


def _field_names(model) -> set[str]:
    if model not in _FIELD_NAMES:
        _FIELD_NAMES[model] = {f.name for f in model._meta.concrete_fields}
    return _FIELD_NAMES[model]

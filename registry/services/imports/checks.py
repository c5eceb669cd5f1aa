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

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError

from registry.models import (
    AdverseEvent,
    DeviceComponent,
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
from registry.models.plausibility import overlap_message
from registry.models.sites import parse_emails
from registry.models.visits import NOT_DONE

from ..bundles import (
    ADVERSE_EVENTS,
    COMPONENTS,
    DECIMAL,
    IMPLANTS,
    INT,
    KEY,
    PAIN_SCORES,
    PATIENTS,
    PROGRAMMING_SESSIONS,
    PROM_ANSWERS,
    REMOVAL_DETAIL_KEPT,
    SITES,
    TEXT,
    VISITS,
    BundleFile,
    cell,
    visit_key,
)
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
        for column in spec.columns:
            if column.name not in table.present:
                continue
            try:
                value = _parse(column, raw[column.name])
            except _Bad as bad:
                self.error(spec, line, column.name, raw[column.name], str(bad))
                row.bad.add(column.name)
                continue
            if column.kind == KEY or column.model_field not in _field_names(spec.model):
                continue  # keys and the pain score's visit columns are resolved by hand
            model_field = spec.model._meta.get_field(column.model_field)
            if value is None and _required(model_field):
                self.error(spec, line, column.name, "", "expected a value.")
                row.bad.add(column.name)
                continue
            row.values[column.model_field] = _empty_value(model_field) if value is None else value
        return row

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
        by_field = {c.model_field: c.name for c in spec.columns}
        missing = {c.model_field for c in spec.columns if c.name not in table.present}
        bad_fields = {spec.column(c).model_field for c in row.bad if c in by_field.values()}
        # Field checks the parser has already made exactly (codes, dates, yes/no) are
        # skipped for speed; text lengths, numbers and the model's clean() all run.
        skip = list(set(exclude) | missing | bad_fields | _parsed_fields(spec))
        found: dict = {}
        try:
            obj.clean_fields(exclude=skip)
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
                             (PROGRAMMING_SESSIONS, self.check_programming)):
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
            patient = self.fake_pk(Patient(registry_id=registry_id, site=site, **row.values))
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
            implant = self.fake_pk(Implant(ref=ref, patient=patient, **row.values))
            self.implants[ref] = implant
            if self.clean(table, row, implant, exclude=["patient"],
                          parents={"patient": patient}) and patient is not None:
                # The model's clean() compares with the implants in the registry; those
                # of this file are compared here, with the same rule and message.
                earlier = [i for i in self.new["implants"] if i.patient is patient]
                overlap = overlap_message(implant, earlier)
                if overlap:
                    self.error(spec, line, "implant_date", raw.get("implant_date", ""), overlap)
                    implant._bundle_invalid = True
                    continue
                self.new["implants"].append(implant)
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
                visit = Visit(patient=patient, implant=implant, **{**row.values, "status": status},
                              entered_by=source or EnteredBy.IMPORT)
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
            score = PainScore(visit=visit, **row.values)
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
            answer = PromAnswer(visit=visit, **row.values)
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
                if raw.get("removal_detail") in ("", REMOVAL_DETAIL_KEPT):
                    row.bad.add("removal_detail")  # the export withholds it: not a difference
                if self.compare(table, row, existing, "this component"):
                    self.count(spec, "unchanged")
                continue
            component = DeviceComponent(implant=implant, **row.values)
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
                if not raw.get("contacts"):
                    row.bad.add("contacts")  # the export withholds it: not a difference
                if self.compare(table, row, existing, "this programming session"):
                    self.count(spec, "unchanged")
                continue
            session = ProgrammingSession(implant=implant, **row.values)
            if self.clean(table, row, session, exclude=["implant"], parents={"implant": implant}):
                self.new["programming_sessions"].append(session)
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
            event = AdverseEvent(patient=patient, implant=implant, **row.values)
            if self.clean(table, row, event, exclude=["patient", "implant"],
                          parents={"patient": patient, "implant": implant}) \
                    and patient is not None:
                self.new["adverse_events"].append(event)
                self.count(spec, "new")


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

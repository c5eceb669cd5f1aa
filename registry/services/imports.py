"""Importing a CSV bundle (retrospective cohorts, archives, moves between installations).

`bundle_import` reads a folder or a .zip in the format of services.bundles and
docs/import-format.md, validates the WHOLE bundle first and writes nothing when
anything is wrong; then it writes everything in one transaction, with history
rows (user and reason) for every record, and records an ImportRun.

Validation uses the models' own rules: each row becomes an unsaved instance and
`full_clean()` runs on it (so the admin and the import refuse the same things);
the model's field names are mapped back to the CSV columns. What spans rows -
keys, duplicates, references, what is already in the registry - is checked here,
in bulk.

Re-import: rows whose key is already in the registry are left alone when they
say the same thing (a no-op, counted as unchanged) and are errors when they
differ (change those in the admin, with a reason). A visit that the registry
only has as scheduled (not yet done) is filled in from the bundle.
"""

import csv
import datetime
import decimal
import io
import re
import zipfile
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied, ValidationError
from django.db import IntegrityError, models, transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone
from simple_history.utils import bulk_update_with_history

from registry.models import (
    AdverseEvent,
    Implant,
    ImportRun,
    PainScore,
    Patient,
    Site,
    Visit,
    VisitStatus,
)
from registry.models.sites import parse_emails

from . import access
from .audit import SYSTEM_USERNAME, bulk_create_audited
from .bundles import (
    ADVERSE_EVENTS,
    BOOL,
    CODE,
    CODES,
    DATE,
    DECIMAL,
    FILES,
    IMPLANTS,
    INT,
    KEY,
    PAIN_SCORES,
    PATIENTS,
    SITES,
    TEXT,
    VISITS,
    BundleFile,
    Column,
    cell,
    visit_key,
)
from .scheduling import implants_schedule_bulk

REFERENCE_BUNDLE = Path(settings.BASE_DIR) / "fixtures" / "seed_reference"
REFERENCE_SITE = "RAD"
MAX_UNCOMPRESSED = 2 * 1024**3  # a zip bomb guard; 10,000 patients are ~20 MB
STORED_ERRORS = 1000  # ImportRun keeps the first ones; the report has all
CHUNK = 900  # SQLite allows 999 parameters per query

DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
INT_RE = re.compile(r"^-?\d+$")
DECIMAL_RE = re.compile(r"^-?\d+(\.\d+)?$")
EMPTY_MESSAGES = {"This field cannot be blank.", "This field cannot be null."}


@dataclass(frozen=True)
class BundleError:
    """One problem in the bundle: where it is, what was found, what was expected."""

    file: str
    line: int | None
    column: str
    value: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        column = f" {self.column}" if self.column else ""
        value = f" '{self.value}'" if self.value or self.column else ""
        return f"{where}{column}{value}: {self.message}"

    def as_dict(self) -> dict:
        return {"file": self.file, "line": self.line, "column": self.column,
                "value": self.value, "message": self.message}


@dataclass
class ImportReport:
    """What an import found and did. `ok` is False when anything was wrong (then
    nothing was written)."""

    source: str
    dry_run: bool
    errors: list[BundleError] = field(default_factory=list)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    scheduled: int | None = None
    run: ImportRun | None = None

    @property
    def ok(self) -> bool:
        return not self.errors

    def count(self, name: str, what: str = "new") -> int:
        return self.counts.get(name, {}).get(what, 0)

    def summary(self) -> str:
        parts = []
        for name, c in self.counts.items():
            label = name.replace("_", " ")
            bits = [f"{c.get('new', 0)} new"]
            if c.get("updated"):
                bits.append(f"{c['updated']} filled in")
            if c.get("unchanged"):
                bits.append(f"{c['unchanged']} unchanged")
            parts.append(f"{label}: {', '.join(bits)}")
        text = "; ".join(parts) or "empty bundle"
        if self.scheduled:
            text += f"; {self.scheduled} follow-up visits scheduled"
        return text


class ImportRefused(Exception):
    """The bundle could not be read at all (not a folder or zip, unreadable)."""


# ---------------------------------------------------------------- reading


def _read_source(source) -> tuple[str, dict[str, bytes], list[BundleError]]:
    """The bundle's files as bytes, by file name, from a folder, a .zip path or a
    binary file object holding a zip."""
    errors: list[BundleError] = []
    known = {spec.name for spec in FILES}
    files: dict[str, bytes] = {}
    if isinstance(source, str | Path):
        path = Path(source)
        name = str(path)
        if path.is_dir():
            for child in sorted(path.iterdir()):
                if child.suffix.lower() != ".csv":
                    continue
                if child.name in known:
                    files[child.name] = child.read_bytes()
                else:
                    errors.append(BundleError(child.name, None, "", "", _unknown_file()))
            return name, files, errors
        if not path.is_file():
            raise ImportRefused(f"{path}: no such folder or .zip file.")
        handle = path.open("rb")
    else:
        name = getattr(source, "name", "upload")
        handle = source
    try:
        with zipfile.ZipFile(handle) as archive:
            members = [m for m in archive.infolist() if not m.is_dir()
                       and not m.filename.startswith("__MACOSX/")
                       and not PurePosixPath(m.filename).name.startswith("._")
                       and m.filename.lower().endswith(".csv")]
            if sum(m.file_size for m in members) > MAX_UNCOMPRESSED:
                raise ImportRefused(f"{name}: more than 2 GB of CSV once unpacked.")
            for member in members:
                base = PurePosixPath(member.filename).name
                if base not in known:
                    errors.append(BundleError(member.filename, None, "", "", _unknown_file()))
                elif base in files:
                    errors.append(BundleError(member.filename, None, "", "",
                                              f"a second {base} in the zip; keep one."))
                else:
                    files[base] = archive.read(member)
    except zipfile.BadZipFile:
        raise ImportRefused(f"{name}: not a .zip file or a folder.") from None
    finally:
        if isinstance(source, str | Path):
            handle.close()
    return str(name), files, errors


def _unknown_file() -> str:
    return "unknown file; expected " + ", ".join(spec.name for spec in FILES) + "."


@dataclass
class _Table:
    spec: BundleFile
    present: set[str]
    rows: list[tuple[int, dict[str, str]]]


def _table(spec: BundleFile, data: bytes, errors: list[BundleError]) -> _Table:
    try:
        text = data.decode("utf-8-sig")  # with or without BOM (Excel writes one)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        errors.append(BundleError(spec.name, line, "", "", "expected UTF-8 text (save the file "
                                  "as 'CSV UTF-8')."))
        return _Table(spec, set(), [])
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        errors.append(BundleError(spec.name, 1, "", "", "the file is empty; expected a header "
                                  "row: " + ",".join(spec.required_columns)))
        return _Table(spec, set(), [])
    known = set(spec.column_names)
    for name in header:
        if name not in known:
            errors.append(BundleError(spec.name, 1, name, name,
                                      "unknown column; expected " + ", ".join(spec.column_names)))
    seen = set()
    for name in header:
        if name in seen and name in known:
            errors.append(BundleError(spec.name, 1, name, name, "the column appears twice."))
        seen.add(name)
    for name in spec.required_columns:
        if name not in header:
            errors.append(BundleError(spec.name, 1, name, "", "missing required column."))
    rows = []
    try:
        for values in reader:
            line = reader.line_num
            if not any(v.strip() for v in values):
                continue  # blank lines
            if len(values) != len(header):
                errors.append(BundleError(spec.name, line, "", ",".join(values)[:80],
                                          f"expected {len(header)} values as in the header, "
                                          f"found {len(values)}."))
                continue
            rows.append((line, {h: v.strip() for h, v in zip(header, values, strict=True)
                                if h in known}))
    except csv.Error as exc:
        errors.append(BundleError(spec.name, reader.line_num, "", "", f"unreadable CSV: {exc}."))
    return _Table(spec, known & set(header), rows)


# ---------------------------------------------------------------- values


class _Bad(Exception):
    pass


def _parse(column: Column, text: str):
    """A cell's value, or _Bad(expected)."""
    if text == "":
        if column.mandatory:
            raise _Bad("expected a value.")
        return None
    kind = column.kind
    if kind in (TEXT, KEY):
        return text
    if kind == CODE:
        if text not in column.codes:
            raise _Bad("expected one of " + ", ".join(column.codes) + ".")
        return text
    if kind == CODES:
        codes = [part.strip() for part in text.split(";") if part.strip()]
        unknown = [c for c in codes if c not in column.codes]
        if unknown:
            raise _Bad(f"unknown code {', '.join(unknown)}; expected codes separated by ';' "
                       "from " + ", ".join(column.codes) + ".")
        return codes
    if kind == INT:
        if not INT_RE.match(text):
            raise _Bad(f"expected {_int_expectation(column)}.")
        value = int(text)
        low_high = column.int_range
        if low_high and not low_high[0] <= value <= low_high[1]:
            raise _Bad(f"expected {_int_expectation(column)}.")
        return value
    if kind == DATE:
        if not DATE_RE.match(text):
            raise _Bad("expected a date as YYYY-MM-DD.")
        try:
            return datetime.date.fromisoformat(text)
        except ValueError:
            raise _Bad("expected a date as YYYY-MM-DD (this day does not exist).") from None
    if kind == BOOL:
        lowered = text.lower()
        if lowered not in ("yes", "no"):
            raise _Bad("expected yes or no.")
        return lowered == "yes"
    if kind == DECIMAL:
        if not DECIMAL_RE.match(text):
            raise _Bad("expected a number with '.' as decimal mark.")
        return decimal.Decimal(text)
    raise AssertionError(kind)


def _int_expectation(column: Column) -> str:
    if column.int_range:
        return f"a whole number from {column.int_range[0]} to {column.int_range[1]}"
    return "a whole number"


def _required(model_field: models.Field) -> bool:
    """An empty cell is an error (the admin would say 'This field is required')."""
    return not (model_field.null or model_field.blank or model_field.has_default())


def _empty_value(model_field: models.Field):
    """What an empty cell means for a field: missing (None), blank text, or the default."""
    if model_field.null:
        return None
    if model_field.blank and isinstance(model_field, models.CharField | models.TextField):
        return ""
    if model_field.has_default():
        return model_field.get_default()
    return "" if isinstance(model_field, models.CharField | models.TextField) else None


# ---------------------------------------------------------------- validation


@dataclass
class _Row:
    line: int
    raw: dict[str, str]
    values: dict[str, object]  # model field -> value (key columns excluded)
    bad: set[str]  # columns already reported


class _Validator:
    """Validates a whole bundle against itself and the registry; collects the writes."""

    def __init__(self, tables: dict[str, _Table], errors: list[BundleError],
                 progress: Callable[[str, int, int], None] | None):
        self.tables = tables
        self.errors = errors
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
        self.existing_events: dict[tuple, AdverseEvent] = {}

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

    # -- registry look-ups, in bulk

    def load_registry(self):
        self.sites = {s.code: s for s in Site.objects.all()}
        ids: set[str] = set()
        refs: set[str] = set()
        for name in (PATIENTS.name, IMPLANTS.name, VISITS.name, PAIN_SCORES.name,
                     ADVERSE_EVENTS.name):
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
        for chunk in _chunks(list(visits_by_pk)):
            for score in PainScore.objects.filter(visit_id__in=chunk):
                key, visit = visits_by_pk[score.visit_id]
                score.visit = visit
                self.existing_scores[(key, score.pain_site, score.recall)] = score

    # -- files

    def run(self):
        self.load_registry()
        for spec, method in ((SITES, self.check_sites), (PATIENTS, self.check_patients),
                             (IMPLANTS, self.check_implants), (VISITS, self.check_visits),
                             (PAIN_SCORES, self.check_scores),
                             (ADVERSE_EVENTS, self.check_events)):
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
            if existing is not None and existing.status == VisitStatus.COMPLETED:
                if self.compare(table, row, existing, f"visit {' '.join(key)}"):
                    self.count(spec, "unchanged")
                    self.visits[key] = existing
                continue
            if existing is not None:  # scheduled / missed: fill it in
                visit = existing
                for name, value in row.values.items():
                    setattr(visit, name, value)
                visit.status = VisitStatus.COMPLETED
            else:
                visit = Visit(patient=patient, implant=implant, status=VisitStatus.COMPLETED,
                              **row.values)
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


def _chunks(items: list, size: int = CHUNK):
    for start in range(0, len(items), size):
        yield items[start:start + size]


# ---------------------------------------------------------------- writing


class _RegistryChanged(Exception):
    """Visits the bundle fills in were changed in the registry after validation."""

    def __init__(self, errors: list[BundleError]):
        super().__init__(f"{len(errors)} visit(s) changed since validation")
        self.errors = errors


def _lock_visits_to_fill_in(v: _Validator) -> None:
    """Lock the scheduled visits the bundle fills in, and refuse the import when one
    changed since it was validated: validation runs outside the transaction, so a
    nurse's save in between would otherwise be overwritten (optimistic locking on
    `version`, as record_save does)."""
    if not v.visit_updates:
        return
    current: dict[int, int] = {}
    # In pk order, so two imports lock in the same order; the reminder job skips
    # locked rows instead of waiting, so it cannot deadlock with this.
    for chunk in _chunks(sorted(visit.pk for visit in v.visit_updates)):
        current.update(Visit.objects.select_for_update().filter(pk__in=chunk)
                       .order_by("pk").values_list("pk", "version"))
    lines = {visit.pk: v.visit_lines.get(key) for key, visit in v.visits.items()}
    changed = [BundleError(VISITS.name, lines.get(visit.pk), "timepoint", visit.timepoint,
                           "this visit was changed in the registry after the bundle was checked "
                           "(someone was working on it); nothing was imported: import the "
                           "bundle again to check it against the registry as it is now.")
               for visit in v.visit_updates if current.get(visit.pk) != visit.version]
    if changed:
        raise _RegistryChanged(changed)


def _write(v: _Validator, *, actor, reason: str, progress) -> int | None:
    """Everything the validator collected, in one transaction, with history."""
    _lock_visits_to_fill_in(v)
    steps = [("sites", Site), ("patients", Patient), ("implants", Implant), ("visits", Visit),
             ("pain_scores", PainScore), ("adverse_events", AdverseEvent)]
    total = sum(len(v.new[name]) for name, _ in steps) + len(v.visit_updates)
    done = 0
    for name, model in steps:
        objs = v.new[name]
        for obj in objs:
            if obj.pk is not None and obj.pk < 0:
                obj.pk = None
            # Point at the parents' real pks (they were temporary during validation).
            for relation in ("site", "patient", "implant", "visit"):
                if hasattr(obj, f"{relation}_id"):
                    parent = getattr(obj, relation)
                    if parent is not None:
                        setattr(obj, relation, parent)
        for start in range(0, len(objs), 5000):
            bulk_create_audited(objs[start:start + 5000], model, actor=actor, reason=reason)
            done += len(objs[start:start + 5000])
            if progress:
                progress("writing", done, total)
        if objs and objs[0].pk is None:  # back-ends that return no ids (not PG, SQLite)
            raise IntegrityError(f"{model.__name__}: the database returned no ids.")
    if v.visit_updates:
        v.visit_updates.sort(key=lambda visit: visit.pk)
        now = timezone.now()
        for visit in v.visit_updates:
            visit.version += 1
            visit.updated_at = now  # bulk_update ignores auto_now; updated_since reads it
        bulk_update_with_history(
            v.visit_updates, Visit, fields=[
                "status", "date_done", "nrs", "satisfaction", "pgic", "would_choose_again",
                "opioid_mme", "stimulation_use", "version", "updated_at"],
            batch_size=1000, default_user=actor, default_change_reason=reason)
        done += len(v.visit_updates)
        if progress:
            progress("writing", done, total)
    # Next registry ids continue after the imported ones.
    highest: dict[int, int] = {}
    for patient in v.new["patients"]:
        match = re.search(r"(\d+)$", patient.registry_id)
        if match:
            highest[patient.site_id] = max(highest.get(patient.site_id, 0), int(match.group(1)))
    for site_id, number in highest.items():
        # The counter is not clinical data (excluded from history).
        Site.objects.filter(pk=site_id).update(
            patient_sequence=Greatest(F("patient_sequence"), number))
    if not v.new["implants"]:
        return None
    if progress:
        progress("scheduling follow-up", 0, len(v.new["implants"]))
    change = implants_schedule_bulk(implants=v.new["implants"], actor=actor, reason=reason)
    if progress:
        progress("scheduling follow-up", len(v.new["implants"]), len(v.new["implants"]))
    return (change.created + change.past) or None


# ---------------------------------------------------------------- the service


def _may_import(actor) -> bool:
    return actor is not None and (
        getattr(actor, "username", None) == SYSTEM_USERNAME or access.is_data_manager(actor))


def bundle_import(*, source, actor, reason: str, dry_run: bool = False,
                  progress: Callable[[str, int, int], None] | None = None) -> ImportReport:
    """Validate a whole bundle and, when it is faultless and not a dry run, import it.

    `source`: a folder, a .zip path, or a binary file object holding a zip.
    Promises: every error of the bundle in the report (file, line, column, value,
    expected), not only the first; nothing written when there is any error or on
    a dry run; otherwise all rows in one transaction with history rows by `actor`
    with `reason`; rows already in the registry with the same content are left
    alone (a re-import is a no-op); an ImportRun records each call.
    Refuses (PermissionDenied) actors other than data managers and the system
    user, (ValueError) an empty reason, (ImportRefused) a source that is neither
    a folder nor a zip.
    """
    if not _may_import(actor):
        raise PermissionDenied("Only data managers may import bundles.")
    reason = (reason or "").strip()
    if not reason:
        raise ValueError("reason: give the reason for the import (it goes into the audit trail).")
    name, files, errors = _read_source(source)
    report = ImportReport(source=name, dry_run=dry_run, errors=errors)
    tables = {}
    for spec in FILES:
        if spec.name in files:
            tables[spec.name] = _table(spec, files[spec.name], errors)
        elif spec.required:
            errors.append(BundleError(spec.name, None, "", "", "missing file (required)."))
    validator = _Validator(tables, errors, progress)
    validator.run()
    report.counts = validator.counts
    if errors or dry_run:
        report.run = _record(report, actor=actor, reason=reason)
        return report
    try:
        with transaction.atomic():
            report.scheduled = _write(validator, actor=actor, reason=reason, progress=progress)
            report.run = _record(report, actor=actor, reason=reason)
    except _RegistryChanged as exc:
        report.errors.extend(exc.errors)
        report.run = _record(report, actor=actor, reason=reason)
    except (IntegrityError, ValidationError) as exc:
        # Someone changed the registry between validation and writing: nothing was kept.
        report.errors.append(BundleError(name, None, "", "", f"the import was rolled back: {exc}"))
        report.run = _record(report, actor=actor, reason=reason)
    return report


def _record(report: ImportReport, *, actor, reason: str) -> ImportRun:
    return ImportRun.objects.create(
        user=actor if getattr(actor, "pk", None) else None,
        source=report.source[-255:],
        dry_run=report.dry_run,
        reason=reason[:255],
        succeeded=report.ok,
        counts={**report.counts, **({"scheduled": report.scheduled} if report.scheduled else {}),
                "errors": len(report.errors)},
        errors=[e.as_dict() for e in report.errors[:STORED_ERRORS]],
    )


def staged_bundle_path(run: ImportRun) -> Path:
    """Where an uploaded bundle waits between its dry run and the data manager's
    confirmation (keyed by the dry run's ImportRun; see registry.admin.imports)."""
    folder = Path(getattr(settings, "REGISTRY_IMPORT_DIR", "") or
                  Path(settings.BASE_DIR) / "var" / "imports")
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"import-run-{run.pk}.zip"


STAGED_HOURS = 24  # a previewed upload waits this long for its confirmation


def staged_bundles_prune() -> datetime.datetime:
    """Delete staged uploads older than STAGED_HOURS; returns the cut-off."""
    cutoff = timezone.now() - datetime.timedelta(hours=STAGED_HOURS)
    folder = Path(getattr(settings, "REGISTRY_IMPORT_DIR", "") or
                  Path(settings.BASE_DIR) / "var" / "imports")
    for stale in folder.glob("import-run-*.zip"):
        modified = datetime.datetime.fromtimestamp(stale.stat().st_mtime, tz=datetime.UTC)
        if modified < cutoff:
            stale.unlink(missing_ok=True)
    return cutoff


def staged_bundle_ready(run: ImportRun) -> Path | None:
    """The staged bundle of a dry run if it is still waiting, else None.

    A preview older than STAGED_HOURS has expired: the data manager looks at the
    registry as it is now, not as it was a day ago. Expired files (of any dry
    run, confirmed or not) are deleted on the way, so uploads do not pile up.
    """
    cutoff = staged_bundles_prune()
    path = staged_bundle_path(run)
    if run.created_at < cutoff:
        path.unlink(missing_ok=True)
        return None
    return path if path.exists() else None


def reference_cohort_load(*, actor) -> str:
    """Import the first seed paper's cohort (fixtures/seed_reference, site RAD) once.

    A no-op when site RAD already has patients. Returns a one-line message.
    """
    if Patient.objects.filter(site__code=REFERENCE_SITE).exists():
        return "Reference cohort (site RAD) already loaded."
    report = bundle_import(source=REFERENCE_BUNDLE, actor=actor,
                           reason="Reference cohort of the first seed paper (fixtures/seed_reference)")
    if not report.ok:
        return (f"Reference cohort NOT loaded: {len(report.errors)} error(s), first: "
                f"{report.errors[0]}")
    return f"Reference cohort (site RAD): {report.summary()}."

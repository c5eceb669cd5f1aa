"""Importing a CSV bundle (retrospective cohorts, archives, moves between installations).

`bundle_import` reads a folder or a .zip in the format of services.bundles and
docs/import-format.md, validates the WHOLE bundle first and writes nothing when
anything is wrong; then it writes everything in one transaction, with history
rows (user and reason) for every record, and records an ImportRun.

Validation uses the models' own rules: each row becomes an unsaved instance and
`full_clean()` runs on it (so the admin and the import refuse the same things);
the model's field names are mapped back to the CSV columns. What spans rows -
keys, duplicates, references, what is already in the registry - is checked in
`checks`, in bulk.

Dispositions (`dispositions.csv`) are not bulk-written: once the rest is written and
scheduled, each is recorded through `services.disposition.disposition_record`, in file
order, as the admin records it (the consent, the schedule and the reminders follow its
date); the bundle check applies the same rules first (`disposition_errors`), and a
refusal at that stage still rolls the whole import back, named by line and column.

Re-import: rows whose key is already in the registry are left alone when they
say the same thing (a no-op, counted as unchanged) and are errors when they
differ (change those in the admin, with a reason). A visit that the registry
only has as scheduled (not yet done) is filled in from the bundle.

The package, by concern: `reading` (files from a folder or zip, CSV rows of
text), `values` (one cell as a model value), `lookups` (what the registry
already holds, in bulk), `checks` (the whole bundle against itself and the
registry), `writing` (one transaction with history) and `staging` (admin
uploads waiting for confirmation). `bundle_import` below runs them in order.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction

from registry.models import ImportRun, Patient
from registry.models.plausibility import site_days_remembered

from .. import access
from .. import checks as data_checks
from ..audit import SYSTEM_USERNAME
from ..bundles import FILES
from .checks import _Validator
from .reading import BundleError, ImportRefused, _read_source, _table
from .staging import STAGED_HOURS, staged_bundle_path, staged_bundle_ready, staged_bundles_prune
from .writing import _RegistryChanged, _write

__all__ = [
    "REFERENCE_BUNDLE", "REFERENCE_SITE", "STAGED_HOURS", "STORED_ERRORS",
    "BundleError", "ImportRefused", "ImportReport", "bundle_import", "reference_cohort_load",
    "staged_bundle_path", "staged_bundle_ready", "staged_bundles_prune",
]

REFERENCE_BUNDLE = Path(settings.BASE_DIR) / "fixtures" / "seed_reference"
REFERENCE_SITE = "RAD"
STORED_ERRORS = 1000  # ImportRun keeps the first ones; the report has all


@dataclass
class ImportReport:
    """What an import found and did. `ok` is False when anything was wrong (then
    nothing was written)."""

    source: str
    dry_run: bool
    errors: list[BundleError] = field(default_factory=list)
    # Values possible but unusual (the models' unusual()): reported, not refused.
    warnings: list[BundleError] = field(default_factory=list)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    # How the files were read, when not as documented (e.g. semicolons for commas).
    notes: list[str] = field(default_factory=list)
    scheduled: int | None = None
    run: ImportRun | None = None
    checks: "data_checks.CheckRun | None" = None  # the data checks over the imported patients

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
        if self.checks and self.checks.opened:
            text += f"; {self.checks.opened} data queries opened"
        return text


# ---------------------------------------------------------------- the service


def _may_import(actor) -> bool:
    return actor is not None and (
        getattr(actor, "username", None) == SYSTEM_USERNAME or access.is_data_manager(actor))


def bundle_import(*, source, actor, reason: str, dry_run: bool = False,
                  progress: Callable[[str, int, int], None] | None = None,
                  source_name: str | None = None) -> ImportReport:
    """Validate a whole bundle and, when it is faultless and not a dry run, import it.

    `source`: a folder, a .zip path, or a binary file object holding a zip.
    Promises: every error of the bundle in the report (file, line, column, value,
    expected), not only the first; nothing written when there is any error or on
    a dry run; otherwise all rows in one transaction with history rows by `actor`
    with `reason`; rows already in the registry with the same content are left
    alone (a re-import is a no-op); an ImportRun records each call.
    Refuses (PermissionDenied) actors other than data managers and the system
    user, (ValueError) an empty reason, (ImportRefused) a source that is neither
    a folder nor a zip. `source_name`: what the report and the run call the source
    (the uploaded file's name, not the path it was staged at).
    """
    if not _may_import(actor):
        raise PermissionDenied("Only data managers may import bundles.")
    reason = (reason or "").strip()
    if not reason:
        raise ValueError("reason: give the reason for the import (it goes into the audit trail).")
    name, files, errors = _read_source(source)
    name = source_name or name
    report = ImportReport(source=name, dry_run=dry_run, errors=errors)
    tables = {}
    for spec in FILES:
        if spec.name in files:
            tables[spec.name] = _table(spec, files[spec.name], errors, report.notes)
        elif spec.required:
            errors.append(BundleError(spec.name, None, "", "", "missing file (required)."))
    validator = _Validator(tables, errors, progress)
    with site_days_remembered():
        validator.run()
    report.counts = validator.counts
    report.warnings = validator.warnings
    if errors or dry_run:
        report.run = _record(report, actor=actor, reason=reason)
        return report
    try:
        with transaction.atomic():
            report.scheduled = _write(validator, actor=actor, reason=reason, progress=progress)
            report.run = _record(report, actor=actor, reason=reason)
        # The data checks over what came in (a finding opens a query for the site).
        if progress:
            progress("data checks", 0, 1)
        # record_invalid is the validator's own clean(), just run on every imported row.
        report.checks = data_checks.checks_run(patients=_imported_patients(validator),
                                               import_validated=True)
    except _RegistryChanged as exc:
        report.errors.extend(exc.errors)
        report.run = _record(report, actor=actor, reason=reason)
    except (IntegrityError, ValidationError) as exc:
        # Someone changed the registry between validation and writing: nothing was kept.
        report.errors.append(BundleError(name, None, "", "", f"the import was rolled back: {exc}"))
        report.run = _record(report, actor=actor, reason=reason)
    return report


def _imported_patients(v) -> set[int]:
    ids = {p.pk for p in v.new["patients"]}
    for name in ("implants", "visits", "adverse_events", "contact_attempts"):
        ids.update(obj.patient_id for obj in v.new[name])
    ids.update(visit.patient_id for visit in v.visit_updates)
    ids.update(disposition.patient_id for _line, disposition in v.dispositions)
    return ids


def _record(report: ImportReport, *, actor, reason: str) -> ImportRun:
    return ImportRun.objects.create(
        user=actor if getattr(actor, "pk", None) else None,
        source=report.source[-255:],
        dry_run=report.dry_run,
        reason=reason[:255],
        succeeded=report.ok,
        counts={**report.counts, **({"scheduled": report.scheduled} if report.scheduled else {}),
                **({"notes": report.notes} if report.notes else {}), "errors": len(report.errors)},
        errors=[e.as_dict() for e in report.errors[:STORED_ERRORS]],
    )


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

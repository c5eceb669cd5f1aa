"""Uploads waiting between the admin's dry run and the data manager's confirmation."""

import datetime
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from registry.models import (
    ImportRun,
)


def staged_bundle_path(run: ImportRun) -> Path:
    """Where an uploaded bundle waits between its dry run and the data manager's
    confirmation (keyed by the dry run's ImportRun; see registry.admin.imports)."""
    folder = Path(settings.REGISTRY_IMPORT_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"import-run-{run.pk}.zip"


STAGED_HOURS = 24  # a previewed upload waits this long for its confirmation


def staged_bundles_prune() -> datetime.datetime:
    """Delete staged uploads older than STAGED_HOURS; returns the cut-off."""
    cutoff = timezone.now() - datetime.timedelta(hours=STAGED_HOURS)
    folder = Path(settings.REGISTRY_IMPORT_DIR)
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

"""The admin's import as a background job: confirmed on the page, run by a Celery task
(`registry.tasks.import_bundle`), its progress polled by the page.

`import_job_create` notes a job for a faultless dry run; the channel enqueues the
task with the job id after the commit; `import_job_run` (the task) imports the
staged bundle with the dry run's user as actor and its reason in every history
row (the same `bundle_import` the command and the old confirm call), reporting
rows checked, written and implants scheduled as it goes; `import_job_status`
gives the page what it may show: counts and words, never a server path.

The state lives in the cache (Redis in production; the in-process worker of the
tests shares the test's local memory), not in the database: the import writes
in one transaction, which would hide progress rows until it commits.
Promises: a job runs once (a second delivery of the task finds it claimed);
a job is only ever shown to the user who started it.
"""

import logging
import uuid

from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.utils import timezone

from registry.models import ImportRun

from . import bundle_import
from .staging import STAGED_HOURS, staged_bundle_ready

log = logging.getLogger(__name__)

KEEP_SECONDS = STAGED_HOURS * 3600
SHOWN_ERRORS = 50  # the page lists the first ones; the import run keeps more
TASK = "registry.tasks.import_bundle"  # enqueued by name: services do not import tasks

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"


def _key(job_id: str) -> str:
    return f"registry:import-job:{job_id}"


def _put(state: dict) -> None:
    cache.set(_key(state["job"]), state, KEEP_SECONDS)


def import_job_create(*, dry_run: ImportRun, actor) -> str:
    """A queued job importing the bundle staged for `dry_run` (a faultless dry run of
    `actor`'s); its id. Refuses (ValueError) any other run."""
    if not (dry_run.dry_run and dry_run.succeeded and dry_run.user_id == actor.pk):
        raise ValueError(f"import run {dry_run.pk}: not a faultless dry run of yours.")
    job = uuid.uuid4().hex
    _put({"job": job, "user_id": actor.pk, "dry_run_id": dry_run.pk, "source": dry_run.source,
          "state": QUEUED, "stage": "waiting for a worker", "checked": {}, "written": [0, 0],
          "scheduling": [0, 0], "run_id": None, "summary": "", "errors": [], "error_count": 0,
          "created": timezone.now().isoformat(), "finished": None})
    return job


def import_job_status(job_id: str, user) -> dict | None:
    """The job's state for `user` (None: no such job, expired, or someone else's),
    with `percent` (0-100) and the rows checked so far."""
    state = cache.get(_key(job_id)) if job_id else None
    if state is None or state["user_id"] != getattr(user, "pk", None):
        return None
    return {**state, "percent": percent(state), "rows_checked": rows_checked(state)[0],
            "rows_to_check": rows_checked(state)[1]}


def rows_checked(state: dict) -> tuple[int, int]:
    done = sum(d for d, _t in state["checked"].values())
    total = sum(t for _d, t in state["checked"].values())
    return done, total


def percent(state: dict) -> int:
    """Checking is the first half, writing most of the rest, scheduling the last 5 %."""
    if state["state"] in (DONE, FAILED):
        return 100
    done, total = rows_checked(state)
    value = 50 * done / total if total else 0
    written, to_write = state["written"]
    if to_write:
        value = 50 + 45 * written / to_write
    scheduled, to_schedule = state["scheduling"]
    if to_schedule:
        value = 95 + 5 * scheduled / to_schedule
    return min(99, int(value))


def _error_words(error) -> str:
    return str(error)  # file, line, column, value and what was expected (BundleError)


def import_job_run(*, job_id: str) -> dict:
    """Run the job (the task's body). Safe to call twice: the second call finds the
    job claimed and does nothing."""
    state = cache.get(_key(job_id))
    if state is None:
        log.warning("import job %s: expired or unknown", job_id)
        return {"job": job_id, "skipped": "no such job"}
    if not cache.add(_key(job_id) + ":claim", 1, KEEP_SECONDS):
        return {"job": job_id, "skipped": "already claimed"}
    state.update(state=RUNNING, stage="reading the bundle")
    _put(state)

    def progress(stage: str, done: int, total: int) -> None:
        if stage.startswith("validating "):
            state["checked"][stage.removeprefix("validating ")] = [done, total]
            state["stage"] = f"checking {stage.removeprefix('validating ')}"
        elif stage == "writing":
            state["written"] = [done, total]
            state["stage"] = "writing"
        elif stage == "data checks":
            state["stage"] = "running the data checks"
        else:
            state["scheduling"] = [done, total]
            state["stage"] = "scheduling follow-up visits"
        _put(state)

    try:
        dry_run = ImportRun.objects.get(pk=state["dry_run_id"])
        actor = get_user_model().objects.get(pk=state["user_id"])
        staged = staged_bundle_ready(dry_run)
        if staged is None:
            return _finish(state, FAILED, errors=["This dry run was already imported or has expired; "
                                                  "upload the bundle again."])
        report = bundle_import(source=staged, actor=actor, reason=dry_run.reason, progress=progress,
                               source_name=dry_run.source)
        if not report.ok:  # the registry changed since the dry run: nothing written
            return _finish(state, FAILED, run_id=report.run.pk, error_count=len(report.errors),
                           errors=[_error_words(e) for e in report.errors[:SHOWN_ERRORS]])
        staged.unlink(missing_ok=True)
        return _finish(state, DONE, run_id=report.run.pk, summary=report.summary())
    except Exception as exc:
        # Said on the page in words; the traceback (server paths) goes to the log only.
        log.exception("import job %s failed", job_id)
        return _finish(state, FAILED, errors=[f"The import stopped ({type(exc).__name__}); nothing "
                                              "was written. The administrator finds the details "
                                              "in the worker's log."])


def _finish(state: dict, outcome: str, *, errors: list[str] | None = None, **values) -> dict:
    state.update(state=outcome, stage="finished" if outcome == DONE else "stopped",
                 errors=errors or [], finished=timezone.now().isoformat(), **values)
    state["error_count"] = values.get("error_count", len(state["errors"]))
    _put(state)
    return {"job": state["job"], "state": outcome, "run_id": state["run_id"]}


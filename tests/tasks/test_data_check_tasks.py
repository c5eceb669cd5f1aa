"""The nightly data checks on a real Celery worker (Redis broker, PostgreSQL), started the
way beat starts it: from the beat entry migration 0013 created."""

import datetime

from django_celery_beat.models import PeriodicTask
from django_celery_beat.schedulers import DatabaseScheduler, ModelEntry

from config.celery_app import app
from registry import tasks
from registry.models import DataQuery, QueryStatus, Visit, VisitStatus
from registry.services.audit import record_save, system_user
from tests.factories import make_implant, make_patient
from tests.mailserver import restore_reference_data
from tests.tasks.test_reminder_tasks import (
    pg_worker,
    worker,  # noqa: F401 (the worker fixture)
)

CHECKS = "registry.tasks.run_data_checks"


def completed_without_nrs(site):
    implant = make_implant(make_patient(site, consent_date=datetime.date(2019, 6, 1)))
    visit = Visit.objects.get(implant=implant, timepoint="m1")
    visit.status, visit.date_done = VisitStatus.COMPLETED, visit.target_date
    return record_save(visit, actor=system_user(), reason="test")


@pg_worker
def test_the_nightly_entry_runs_the_checks_on_a_worker(site_a, site_b, worker):  # noqa: F811
    planted = [completed_without_nrs(site_a), completed_without_nrs(site_b)]
    scheduler = DatabaseScheduler(app=app, lazy=True)
    # The entry as beat loads it (all_as_schedule leaves out crontabs not due this hour).
    entry = ModelEntry(PeriodicTask.objects.get(task=CHECKS, enabled=True), app=app)
    assert (entry.schedule.hour, entry.schedule.minute) == ({2}, {30})
    scheduler.apply_async(entry, advance=False)  # what beat does when the entry is due
    worker.wait(lambda: worker.count(CHECKS) == 1, "the nightly checks")
    opened = DataQuery.objects.filter(rule="visit_completed_without_nrs", status=QueryStatus.OPEN)
    assert sorted(opened.values_list("record_id", flat=True)) == sorted(v.pk for v in planted)
    assert {q.opened_by.username for q in opened} == {"registry-system"}
    # A second night opens nothing new.
    scheduler.apply_async(entry, advance=False)
    worker.wait(lambda: worker.count(CHECKS) == 2, "the second night")
    assert DataQuery.objects.count() == 2


def test_the_task_reports_what_it_did_for_the_sites_given(site_a, site_b):
    restore_reference_data()  # the follow-up protocol, if a transactional test flushed it
    completed_without_nrs(site_a)
    completed_without_nrs(site_b)
    result = tasks.run_data_checks.apply(args=[[site_b.pk]]).get()
    assert (result["opened"], result["closed"]) == (1, 0)
    assert DataQuery.objects.get().patient.site == site_b

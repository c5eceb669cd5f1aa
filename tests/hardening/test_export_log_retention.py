"""The export log stays bounded: REST list-page rows past
REGISTRY_EXPORT_LOG_RETENTION_DAYS go, daily, from the beat schedule; whole exports stay."""

import datetime

from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from registry import tasks
from registry.models import ExportLog
from registry.services.export_log import export_log_record


def _row(user, dataset, age_days):
    row = export_log_record(user=user, dataset=dataset, fmt="json", filters={}, dates="iso", rows=1)
    ExportLog.objects.filter(pk=row.pk).update(
        created_at=timezone.now() - datetime.timedelta(days=age_days))
    return row.pk


def test_old_list_pages_are_pruned_and_whole_exports_are_kept(nurse, settings):
    settings.REGISTRY_EXPORT_LOG_RETENTION_DAYS = 730
    old_page = _row(nurse, "/api/v1/visits/", 731)
    recent_page = _row(nurse, "/api/v1/visits/", 729)
    old_export = _row(nurse, "visits", 3000)
    assert tasks.prune_export_log.delay().get() == 1
    assert set(ExportLog.objects.values_list("pk", flat=True)) == {recent_page, old_export}
    assert not ExportLog.objects.filter(pk=old_page).exists()


def test_the_prune_runs_daily_from_the_beat_schedule(db):
    entry = PeriodicTask.objects.get(task="registry.tasks.prune_export_log")
    assert entry.enabled and (entry.interval.every, entry.interval.period) == (1, "days")

"""The daily beat entry that bounds the export log's list-page rows
(REGISTRY_EXPORT_LOG_RETENTION_DAYS; editable in the admin: Periodic tasks).

Idempotent: an entry already there (edited by an operator) is left as it is.
"""

from django.db import migrations
from django.utils import timezone

TASK_NAME = "Export log: drop list-page rows past retention (daily)"
TASK = "registry.tasks.prune_export_log"


def create_beat_entry(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    if PeriodicTask.objects.filter(task=TASK).exists():
        return
    daily, _ = IntervalSchedule.objects.get_or_create(every=1, period="days")
    PeriodicTask.objects.create(
        name=TASK_NAME, task=TASK, interval=daily, enabled=True,
        description="Deletes REST list-page rows of the export log older than "
                    "REGISTRY_EXPORT_LOG_RETENTION_DAYS; whole exports are kept "
                    "(registry.services.export_log.export_log_prune).",
    )
    # Beat watches this row to notice schedule changes.
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def remove_beat_entry(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=TASK_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("registry", "0010_exportlog_aborted_at"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]
    operations = [migrations.RunPython(create_beat_entry, remove_beat_entry)]

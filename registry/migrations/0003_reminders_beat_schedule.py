"""The hourly beat entry for follow-up reminders (editable in the admin: Periodic tasks).

Hourly, not daily: each site sends once per local day, from its own local
morning (REGISTRY_REMINDER_LOCAL_HOUR), and the reminder log stops repeats.
Idempotent: an entry already there (edited by an operator) is left as it is.
"""

from django.db import migrations
from django.utils import timezone

TASK_NAME = "Follow-up reminders (hourly; each site once per local day)"
TASK = "registry.tasks.send_reminders"


def create_beat_entry(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    if PeriodicTask.objects.filter(task=TASK).exists():
        return
    hourly, _ = IntervalSchedule.objects.get_or_create(every=1, period="hours")
    PeriodicTask.objects.create(
        name=TASK_NAME, task=TASK, interval=hourly, enabled=True,
        description="Sends each site's follow-up digest and marks missed visits "
                    "(registry.services.reminders).",
    )
    # Beat watches this row to notice schedule changes.
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def remove_beat_entry(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=TASK_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("registry", "0002_default_protocol"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]
    operations = [migrations.RunPython(create_beat_entry, remove_beat_entry)]

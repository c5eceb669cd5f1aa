"""A reminder is about one window of a visit: (visit, kind, window) is unique.

The log allowed one row per (visit, kind) ever, so a visit moved to a new window
(implant date corrected, follow-up resumed) was never reminded again. Existing
rows get the window the visit had when the reminder was claimed (from the
visit's history), so visits moved before this migration are reminded for their
new window too; nothing is deleted.
"""

from django.db import migrations, models
from django.db.models import F, OuterRef, Subquery
from django.db.models.functions import Coalesce


def window_as_claimed(apps, schema_editor):
    ReminderLog = apps.get_model("registry", "ReminderLog")
    Visit = apps.get_model("registry", "Visit")
    HistoricalVisit = apps.get_model("registry", "HistoricalVisit")
    as_claimed = HistoricalVisit.objects.filter(
        id=OuterRef("visit_id"), history_date__lte=OuterRef("claimed_at"),
    ).order_by("-history_date", "-history_id")
    now = Visit.objects.filter(pk=OuterRef("visit_id"))
    # A reminder always had a window end; a window without a start (set by hand) gets
    # the digest day, so the row stays unique and matches no current window.
    ReminderLog.objects.update(**{
        name: Coalesce(Subquery(as_claimed.values(name)[:1]), Subquery(now.values(name)[:1]),
                       F("digest_date"), output_field=models.DateField())
        for name in ("window_start", "window_end")
    })


class Migration(migrations.Migration):

    dependencies = [
        ("registry", "0006_admin_due_window_index"),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="reminderlog",
            name="one_reminder_per_visit_kind",
        ),
        migrations.AddField(
            model_name="reminderlog",
            name="window_start",
            field=models.DateField(null=True,
                                   help_text="The visit's window this reminder was about."),
        ),
        migrations.AddField(
            model_name="reminderlog",
            name="window_end",
            field=models.DateField(null=True),
        ),
        migrations.RunPython(window_as_claimed, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="reminderlog",
            name="window_start",
            field=models.DateField(help_text="The visit's window this reminder was about."),
        ),
        migrations.AlterField(
            model_name="reminderlog",
            name="window_end",
            field=models.DateField(),
        ),
        migrations.AddConstraint(
            model_name="reminderlog",
            constraint=models.UniqueConstraint(
                fields=("visit", "kind", "window_start", "window_end"),
                name="one_reminder_per_visit_kind_window"),
        ),
    ]

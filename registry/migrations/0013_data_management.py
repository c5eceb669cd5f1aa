"""Data management (issue 18): queries with their thread, missing-data reasons beside the
visit's values, and the nightly beat entry of the data checks (idempotent, as 0011's).
"""

import django.db.models.deletion
import simple_history.models
from django.conf import settings
from django.db import migrations, models
from django.utils import timezone

TASK_NAME = "Data checks: open and close queries (nightly)"
TASK = "registry.tasks.run_data_checks"


def create_beat_entry(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    if PeriodicTask.objects.filter(task=TASK).exists():
        return
    # 02:30 UTC: after every European site's evening entry, before the 06:00 digests.
    nightly, _ = CrontabSchedule.objects.get_or_create(
        minute="30", hour="2", day_of_week="*", day_of_month="*", month_of_year="*",
        timezone="UTC")
    PeriodicTask.objects.create(
        name=TASK_NAME, task=TASK, crontab=nightly, enabled=True,
        description="Runs every data check (registry.services.checks): a query per new finding, "
                    "fixed findings' queries closed.")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def remove_beat_entry(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=TASK_NAME).delete()


class Migration(migrations.Migration):

    dependencies = [
        ('registry', '0012_proms'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.AddField(
            model_name='historicalvisit',
            name='nrs_missing',
            field=models.CharField(blank=True, choices=[('not_asked', 'Not asked'), ('declined', 'Asked but declined'), ('unknown', 'Unknown'), ('not_applicable', 'Not applicable'), ('lost_to_follow_up', 'Lost to follow-up')], max_length=20, verbose_name='NRS missing because'),
        ),
        migrations.AddField(
            model_name='historicalvisit',
            name='opioid_mme_missing',
            field=models.CharField(blank=True, choices=[('not_asked', 'Not asked'), ('declined', 'Asked but declined'), ('unknown', 'Unknown'), ('not_applicable', 'Not applicable'), ('lost_to_follow_up', 'Lost to follow-up')], max_length=20, verbose_name='opioid use missing because'),
        ),
        migrations.AddField(
            model_name='historicalvisit',
            name='pgic_missing',
            field=models.CharField(blank=True, choices=[('not_asked', 'Not asked'), ('declined', 'Asked but declined'), ('unknown', 'Unknown'), ('not_applicable', 'Not applicable'), ('lost_to_follow_up', 'Lost to follow-up')], max_length=20, verbose_name='PGIC missing because'),
        ),
        migrations.AddField(
            model_name='historicalvisit',
            name='satisfaction_missing',
            field=models.CharField(blank=True, choices=[('not_asked', 'Not asked'), ('declined', 'Asked but declined'), ('unknown', 'Unknown'), ('not_applicable', 'Not applicable'), ('lost_to_follow_up', 'Lost to follow-up')], max_length=20, verbose_name='satisfaction missing because'),
        ),
        migrations.AddField(
            model_name='historicalvisit',
            name='visit_missing',
            field=models.CharField(blank=True, choices=[('not_asked', 'Not asked'), ('declined', 'Asked but declined'), ('unknown', 'Unknown'), ('not_applicable', 'Not applicable'), ('lost_to_follow_up', 'Lost to follow-up')], help_text='For a missed or not applicable visit: why it was not done.', max_length=20, verbose_name='visit not done because'),
        ),
        migrations.AddField(
            model_name='visit',
            name='nrs_missing',
            field=models.CharField(blank=True, choices=[('not_asked', 'Not asked'), ('declined', 'Asked but declined'), ('unknown', 'Unknown'), ('not_applicable', 'Not applicable'), ('lost_to_follow_up', 'Lost to follow-up')], max_length=20, verbose_name='NRS missing because'),
        ),
        migrations.AddField(
            model_name='visit',
            name='opioid_mme_missing',
            field=models.CharField(blank=True, choices=[('not_asked', 'Not asked'), ('declined', 'Asked but declined'), ('unknown', 'Unknown'), ('not_applicable', 'Not applicable'), ('lost_to_follow_up', 'Lost to follow-up')], max_length=20, verbose_name='opioid use missing because'),
        ),
        migrations.AddField(
            model_name='visit',
            name='pgic_missing',
            field=models.CharField(blank=True, choices=[('not_asked', 'Not asked'), ('declined', 'Asked but declined'), ('unknown', 'Unknown'), ('not_applicable', 'Not applicable'), ('lost_to_follow_up', 'Lost to follow-up')], max_length=20, verbose_name='PGIC missing because'),
        ),
        migrations.AddField(
            model_name='visit',
            name='satisfaction_missing',
            field=models.CharField(blank=True, choices=[('not_asked', 'Not asked'), ('declined', 'Asked but declined'), ('unknown', 'Unknown'), ('not_applicable', 'Not applicable'), ('lost_to_follow_up', 'Lost to follow-up')], max_length=20, verbose_name='satisfaction missing because'),
        ),
        migrations.AddField(
            model_name='visit',
            name='visit_missing',
            field=models.CharField(blank=True, choices=[('not_asked', 'Not asked'), ('declined', 'Asked but declined'), ('unknown', 'Unknown'), ('not_applicable', 'Not applicable'), ('lost_to_follow_up', 'Lost to follow-up')], help_text='For a missed or not applicable visit: why it was not done.', max_length=20, verbose_name='visit not done because'),
        ),
        migrations.CreateModel(
            name='DataQuery',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True, db_index=True)),
                ('version', models.PositiveIntegerField(default=1, editable=False)),
                ('record_type', models.CharField(max_length=24)),
                ('record_id', models.PositiveBigIntegerField()),
                ('record_key', models.CharField(help_text='The record as a person names it.', max_length=80)),
                ('field', models.CharField(blank=True, help_text='The field or item asked about; empty for the whole record.', max_length=64)),
                ('rule', models.CharField(blank=True, help_text='The data check that opened it; empty when opened by a person.', max_length=64)),
                ('status', models.CharField(choices=[('open', 'Open (waiting for the site)'), ('answered', 'Answered (waiting for the data manager)'), ('closed', 'Closed'), ('cancelled', 'Cancelled')], default='open', max_length=10)),
                ('opened_at', models.DateTimeField()),
                ('answered_at', models.DateTimeField(blank=True, null=True)),
                ('closed_at', models.DateTimeField(blank=True, null=True)),
                ('closed_by_check', models.BooleanField(default=False)),
                ('answered_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('closed_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('opened_by', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('patient', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='queries', to='registry.patient')),
            ],
            options={
                'verbose_name': 'data query',
                'verbose_name_plural': 'data queries',
                'ordering': ['-opened_at', '-pk'],
            },
        ),
        migrations.CreateModel(
            name='HistoricalDataQuery',
            fields=[
                ('id', models.BigIntegerField(auto_created=True, blank=True, db_index=True, verbose_name='ID')),
                ('created_at', models.DateTimeField(blank=True, editable=False)),
                ('updated_at', models.DateTimeField(blank=True, db_index=True, editable=False)),
                ('version', models.PositiveIntegerField(default=1, editable=False)),
                ('record_type', models.CharField(max_length=24)),
                ('record_id', models.PositiveBigIntegerField()),
                ('record_key', models.CharField(help_text='The record as a person names it.', max_length=80)),
                ('field', models.CharField(blank=True, help_text='The field or item asked about; empty for the whole record.', max_length=64)),
                ('rule', models.CharField(blank=True, help_text='The data check that opened it; empty when opened by a person.', max_length=64)),
                ('status', models.CharField(choices=[('open', 'Open (waiting for the site)'), ('answered', 'Answered (waiting for the data manager)'), ('closed', 'Closed'), ('cancelled', 'Cancelled')], default='open', max_length=10)),
                ('opened_at', models.DateTimeField()),
                ('answered_at', models.DateTimeField(blank=True, null=True)),
                ('closed_at', models.DateTimeField(blank=True, null=True)),
                ('closed_by_check', models.BooleanField(default=False)),
                ('history_id', models.AutoField(primary_key=True, serialize=False)),
                ('history_date', models.DateTimeField()),
                ('history_change_reason', models.TextField(null=True)),
                ('history_type', models.CharField(choices=[('+', 'Created'), ('~', 'Changed'), ('-', 'Deleted')], max_length=1)),
                ('answered_by', models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('closed_by', models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('history_user', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('opened_by', models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('patient', models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='registry.patient')),
            ],
            options={
                'verbose_name': 'historical data query',
                'verbose_name_plural': 'historical data queries',
                'ordering': ('-history_date', '-history_id'),
                'get_latest_by': ('history_date', 'history_id'),
            },
            bases=(simple_history.models.HistoricalChanges, models.Model),
        ),
        migrations.CreateModel(
            name='HistoricalQueryMessage',
            fields=[
                ('id', models.BigIntegerField(auto_created=True, blank=True, db_index=True, verbose_name='ID')),
                ('created_at', models.DateTimeField(blank=True, editable=False)),
                ('updated_at', models.DateTimeField(blank=True, db_index=True, editable=False)),
                ('version', models.PositiveIntegerField(default=1, editable=False)),
                ('action', models.CharField(choices=[('open', 'Opened'), ('answer', 'Answered'), ('note', 'Note'), ('close', 'Closed'), ('reopen', 'Reopened'), ('cancel', 'Cancelled')], max_length=8)),
                ('text', models.TextField(max_length=4000)),
                ('history_id', models.AutoField(primary_key=True, serialize=False)),
                ('history_date', models.DateTimeField()),
                ('history_change_reason', models.TextField(null=True)),
                ('history_type', models.CharField(choices=[('+', 'Created'), ('~', 'Changed'), ('-', 'Deleted')], max_length=1)),
                ('author', models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('history_user', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('query', models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='registry.dataquery')),
            ],
            options={
                'verbose_name': 'historical query message',
                'verbose_name_plural': 'historical query messages',
                'ordering': ('-history_date', '-history_id'),
                'get_latest_by': ('history_date', 'history_id'),
            },
            bases=(simple_history.models.HistoricalChanges, models.Model),
        ),
        migrations.CreateModel(
            name='QueryMessage',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True, db_index=True)),
                ('version', models.PositiveIntegerField(default=1, editable=False)),
                ('action', models.CharField(choices=[('open', 'Opened'), ('answer', 'Answered'), ('note', 'Note'), ('close', 'Closed'), ('reopen', 'Reopened'), ('cancel', 'Cancelled')], max_length=8)),
                ('text', models.TextField(max_length=4000)),
                ('author', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('query', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='messages', to='registry.dataquery')),
            ],
            options={
                'ordering': ['query', 'created_at', 'pk'],
            },
        ),
        migrations.AddIndex(
            model_name='dataquery',
            index=models.Index(fields=['status', 'patient'], name='query_status_patient'),
        ),
        migrations.AddIndex(
            model_name='dataquery',
            index=models.Index(fields=['record_type', 'record_id'], name='query_record'),
        ),
        migrations.AddIndex(
            model_name='dataquery',
            index=models.Index(fields=['rule', 'status'], name='query_rule_status'),
        ),
        migrations.AddConstraint(
            model_name='dataquery',
            constraint=models.UniqueConstraint(condition=models.Q(('status__in', ('open', 'answered')), models.Q(('rule', ''), _negated=True)), fields=('rule', 'record_type', 'record_id', 'field'), name='one_live_query_per_finding', violation_error_message='This check already has an open query on this field.'),
        ),
        migrations.AddConstraint(
            model_name='dataquery',
            constraint=models.CheckConstraint(condition=models.Q(('status__in', ['open', 'answered', 'closed', 'cancelled'])), name='query_status_known'),
        ),
        migrations.AddIndex(
            model_name='historicaldataquery',
            index=models.Index(fields=['history_date', 'id'], name='registry_hi_history_6761e6_idx'),
        ),
        migrations.AddIndex(
            model_name='historicalquerymessage',
            index=models.Index(fields=['history_date', 'id'], name='registry_hi_history_c9692c_idx'),
        ),
        migrations.RunPython(create_beat_entry, remove_beat_entry),
    ]

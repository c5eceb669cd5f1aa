"""Planner statistics on (status, nrs) of visits, PostgreSQL only.

Without them the planner multiplies "completed" by "NRS missing" as if they were
independent and expects ~190,000 completed visits without an NRS in a registry
of a million, where there are a handful; the admin's "missing NRS" lists then
get plans for a big result (parallel hash joins over every patient).
"""

from django.db import migrations


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "CREATE STATISTICS IF NOT EXISTS visit_status_nrs (mcv) ON status, nrs FROM registry_visit")


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP STATISTICS IF EXISTS visit_status_nrs")


class Migration(migrations.Migration):

    dependencies = [
        ("registry", "0004_admin_list_indexes"),
    ]

    operations = [migrations.RunPython(create, drop)]

from django.db import migrations

# 1 m +/-7 d, 3 m +/-14 d, 6 m and 12 m +/-30 d, then yearly +/-60 d to 20 years:
# follow-up in these registries runs 15+ years.
DEFAULT = [(1, 7, 7), (3, 14, 14), (6, 30, 30), (12, 30, 30)] + [
    (12 * year, 60, 60) for year in range(2, 21)
]


def create_default(apps, schema_editor):
    Protocol = apps.get_model("registry", "FollowUpProtocol")
    Timepoint = apps.get_model("registry", "ProtocolTimepoint")
    if Protocol.objects.filter(is_default=True).exists():
        return
    protocol = Protocol.objects.create(
        name="Standard neuromodulation follow-up",
        is_default=True,
        description="1, 3, 6 and 12 months, then yearly to 20 years after the implant.",
    )
    Timepoint.objects.bulk_create(
        Timepoint(protocol=protocol, months=m, window_before_days=b, window_after_days=a)
        for m, b, a in DEFAULT
    )


class Migration(migrations.Migration):
    dependencies = [("registry", "0001_initial")]
    operations = [migrations.RunPython(create_default, migrations.RunPython.noop)]

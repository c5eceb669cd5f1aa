"""A deceased patient gets no reminder from the real job: a Celery worker on Redis,
PostgreSQL and a real SMTP server (skips without them, as tests/tasks does)."""

import datetime

from registry import tasks
from registry.models import Disposition, ReminderLog, Visit, VisitStatus
from registry.services.disposition import disposition_record
from tests.mailserver import smtp_server_fixture  # noqa: F401 (the smtp_server fixture)
from tests.tasks.test_reminder_tasks import DAY, DIGEST, implanted, pg_worker, worker  # noqa: F401


@pg_worker
def test_a_deceased_patient_gets_no_reminder_from_the_worker(worker, site_a, nurse,  # noqa: F811
                                                              smtp_server):
    alive, _ = implanted(site_a, datetime.date(2019, 12, 1))
    dead, implant = implanted(site_a, datetime.date(2019, 12, 1))
    disposition_record(disposition=Disposition(
        patient=dead, status="deceased", date=datetime.date(2020, 3, 1), death_cause="cancer",
        death_device_relatedness="not_related", death_procedure_relatedness="not_related"),
        actor=nurse, reason="Death notified")
    tasks.send_reminders.delay(DAY.isoformat())
    worker.wait(lambda: worker.count(DIGEST) == 1, "the site digest")
    assert len(smtp_server.messages) == 1
    assert alive.registry_id in smtp_server.text()
    assert dead.registry_id not in smtp_server.text()
    assert not ReminderLog.objects.filter(visit__patient=dead).exists()
    # Nor was a visit of hers marked missed after the death (m1 closed before it).
    assert set(Visit.objects.filter(patient=dead, window_end__gte=datetime.date(2020, 3, 1))
               .values_list("status", flat=True)) == {VisitStatus.NOT_APPLICABLE}

"""The reminder job's beat schedule is editable in the admin by data managers only."""

import pytest
from django.urls import reverse
from django_celery_beat.models import PeriodicTask

TASK = "registry.tasks.send_reminders"


@pytest.fixture
def reminder_schedule(db):
    # Created by migration 0003; the test database is migrated.
    return PeriodicTask.objects.get(task=TASK)


def test_a_data_manager_can_open_and_change_the_reminder_schedule(client, data_manager,
                                                                   reminder_schedule):
    client.force_login(data_manager)
    index = client.get(reverse("admin:index")).content.decode()
    assert "Periodic tasks" in index
    listing = client.get(reverse("admin:django_celery_beat_periodictask_changelist"))
    assert listing.status_code == 200
    assert reminder_schedule.name in listing.content.decode()
    page = client.get(reverse("admin:django_celery_beat_periodictask_change",
                              args=[reminder_schedule.pk]))
    assert page.status_code == 200
    assert 'name="_save"' in page.content.decode()
    response = client.post(reverse("admin:django_celery_beat_periodictask_changelist"),
                           {"action": "disable_tasks", "_selected_action": [reminder_schedule.pk]})
    assert response.status_code == 302
    reminder_schedule.refresh_from_db()
    assert reminder_schedule.enabled is False


@pytest.mark.parametrize("who", ["nurse", "investigator"])
def test_nurses_and_investigators_cannot_see_or_change_the_schedule(client, request, who,
                                                                    reminder_schedule):
    client.force_login(request.getfixturevalue(who))
    assert "Periodic tasks" not in client.get(reverse("admin:index")).content.decode()
    assert client.get(reverse("admin:django_celery_beat_periodictask_changelist")).status_code == 403
    response = client.post(reverse("admin:django_celery_beat_periodictask_changelist"),
                           {"action": "disable_tasks", "_selected_action": [reminder_schedule.pk]})
    assert response.status_code == 403
    reminder_schedule.refresh_from_db()
    assert reminder_schedule.enabled is True

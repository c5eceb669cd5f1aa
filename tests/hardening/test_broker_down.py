"""The beat admin's "Run selected tasks" with the broker down: a message, not a 500."""

import pytest
from django.urls import reverse
from django_celery_beat.models import PeriodicTask

from config.celery_app import app
from registry.admin.scheduler import BROKER_DOWN


@pytest.fixture
def broker_down(monkeypatch):
    """Celery pointed at a port where nothing listens, not eager, no publish retries."""
    for key, value in (("task_always_eager", False), ("broker_url", "redis://127.0.0.1:9/0"),
                       ("broker_write_url", "redis://127.0.0.1:9/0"),
                       ("broker_transport_options", {"max_retries": 0}), ("task_publish_retry", False),
                       ("broker_connection_timeout", 1)):
        monkeypatch.setitem(app.conf, key, value)
    monkeypatch.setattr(app, "_pool", None)  # no connection kept from an earlier test
    monkeypatch.setattr(app.amqp, "_producer_pool", None)
    yield
    if app._pool is not None:
        app._pool.force_close_all()


def test_running_a_task_with_the_broker_down_says_so(client, data_manager, broker_down):
    task = PeriodicTask.objects.get(task="registry.tasks.send_reminders")
    client.force_login(data_manager)
    response = client.post(reverse("admin:django_celery_beat_periodictask_changelist"),
                           {"action": "run_tasks", "_selected_action": [task.pk]}, follow=True)
    assert response.status_code == 200
    shown = [str(m) for m in response.context["messages"]]
    assert BROKER_DOWN in shown
    assert not any("successfully run" in m for m in shown)

"""The beat schedule (django-celery-beat) in the admin, for data managers.

The reminder job's timing is a data manager's business (which hour, how often),
but registry users carry roles, not Django model permissions, so
django-celery-beat's own admin would show its pages to superusers only. Its
admin classes are kept and re-registered with the role rule: data managers may
view and change the schedule, nobody else (other than superusers) sees it.
Changes are in Django's admin log (who, when, what).
"""

from django.contrib import admin, messages
from django_celery_beat import admin as beat_admin
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)
from kombu.exceptions import OperationalError as BrokerUnreachable

from registry.services import access


class DataManagersSchedule:
    def _may(self, request) -> bool:
        return request.user.is_active and (
            request.user.is_superuser or access.is_data_manager(request.user))

    def has_module_permission(self, request):
        return self._may(request)

    def has_view_permission(self, request, obj=None):
        return self._may(request)

    def has_add_permission(self, request, *args):
        return self._may(request)

    def has_change_permission(self, request, obj=None):
        return self._may(request)

    def has_delete_permission(self, request, obj=None):
        return self._may(request)


BROKER_DOWN = ("The task queue cannot be reached, so nothing was started: the broker (Redis) is "
               "down or out of reach. Try again in a few minutes, or ask IT to check the broker; "
               "the schedule itself is unchanged.")


class RunTasksSaysWhenTheBrokerIsDown:
    """django-celery-beat's "Run selected tasks" enqueues on the broker; with the broker
    down that was a server error. Now it is a message, and nothing is half-started
    (tasks are sent one by one: the first refusal stops the rest)."""

    @admin.action(description="Run selected tasks")
    def run_tasks(self, request, queryset):
        try:
            return super().run_tasks(request, queryset)
        except (BrokerUnreachable, OSError):
            self.message_user(request, BROKER_DOWN, level=messages.ERROR)
            return None


for model, base in ((PeriodicTask, beat_admin.PeriodicTaskAdmin),
                    (ClockedSchedule, beat_admin.ClockedScheduleAdmin),
                    (CrontabSchedule, beat_admin.CrontabScheduleAdmin),
                    (SolarSchedule, beat_admin.SolarScheduleAdmin),
                    (IntervalSchedule, beat_admin.IntervalScheduleAdmin)):
    if admin.site.is_registered(model):
        admin.site.unregister(model)
    # The periodic task form's inline script, with the CSP nonce (settings: CONTENT_SECURITY_POLICY).
    extra = ({"change_form_template": "admin/registry/beat/periodictask_change_form.html"}
             if model is PeriodicTask else {})
    mixins = (DataManagersSchedule, RunTasksSaysWhenTheBrokerIsDown) if model is PeriodicTask else (
        DataManagersSchedule,)
    admin.site.register(model, type(base.__name__, (*mixins, base), extra))

from . import clinical, operations, outcomes, reminders  # noqa: F401

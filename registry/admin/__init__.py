from . import clinical, imports, operations, outcomes, reminders  # noqa: F401

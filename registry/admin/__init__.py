from . import clinical, imports, operations, outcomes, reminders, scheduler  # noqa: F401

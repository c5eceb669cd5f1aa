from . import accounts, clinical, imports, operations, outcomes, reminders, scheduler  # noqa: F401

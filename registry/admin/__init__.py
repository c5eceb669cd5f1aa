from . import clinical, operations, outcomes  # noqa: F401

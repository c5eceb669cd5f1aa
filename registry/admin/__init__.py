from . import clinical, operations  # noqa: F401

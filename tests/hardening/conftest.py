"""The interop channels' two-site cohort, for the fuzz tests."""

from tests.interop.conftest import cohort  # noqa: F401

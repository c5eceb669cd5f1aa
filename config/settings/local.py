"""Development: make run. Debug on, SQLite under var/, eager tasks by default."""

from .base import *  # noqa: F403
from .base import env

DEBUG = env.bool("DEBUG", default=True)

"""Audit trail of user accounts.

Activating, deactivating, unlocking a sign-in or resetting a second factor
changes who may use the registry, so each is a history row with who and why,
like role changes. Password hashes and sign-in times stay out of it.
"""

from django.contrib.auth import get_user_model
from simple_history import register

register(get_user_model(), app="registry", excluded_fields=["password", "last_login"])

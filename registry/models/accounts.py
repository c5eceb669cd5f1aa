"""Audit trail of user accounts.

Activating, deactivating, unlocking a sign-in or resetting a second factor
changes who may use the registry, so each is a history row with who and why,
like role changes. Password hashes and sign-in times stay out of it.
"""

from django.contrib.auth import get_user_model
from simple_history import register
from simple_history.models import HistoricalRecords


class UserHistory(HistoricalRecords):
    def post_save(self, instance, created, using=None, **kwargs):
        # Signing in saves last_login alone: not a change of the account.
        if kwargs.get("update_fields") == frozenset({"last_login"}):
            return
        super().post_save(instance, created, using=using, **kwargs)


# The actor column without a database constraint, as every history's (models.base.history).
register(get_user_model(), app="registry", records_class=UserHistory,
         excluded_fields=["password", "last_login"], user_db_constraint=False)

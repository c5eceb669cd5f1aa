"""A password "validator" that validates nothing: Django calls `password_changed()`
of every validator in AUTH_PASSWORD_VALIDATORS after any password change (admin
forms, `changepassword`, `registry_user`, the shell), which is where the user's
API tokens die with her old password."""

from simple_history.models import HistoricalRecords

from registry.services.tokens import api_tokens_revoke_all


class PasswordChangeRevokesTokens:
    def validate(self, password, user=None):
        return None

    def password_changed(self, password, user=None):
        if user is not None and user.pk:
            # The acting user comes from the request (simple-history's middleware) when
            # there is one; services that know better revoke first with their own actor.
            # Outside a request (`changepassword`, the shell) no actor is known but the
            # account itself: the revocation is hers, and says where it came from.
            request = getattr(HistoricalRecords.context, "request", None)
            if request is None:
                api_tokens_revoke_all(user=user, actor=user,
                                      reason="password changed outside a request (server shell)")
            else:
                api_tokens_revoke_all(user=user, reason="password changed")

    def get_help_text(self):
        return "Changing your password revokes your API tokens."

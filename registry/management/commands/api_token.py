from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from registry.services import access
from registry.services.audit import system_user
from registry.services.tokens import api_token_create


class Command(BaseCommand):
    help = (
        "Print a new API token for USERNAME (32 upper-case hex characters). Only its hash is "
        "stored: copy it now. Revoke tokens in the admin (API tokens)."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--label", default="", help="What the token is for.")
        parser.add_argument("--expires-days", type=int, default=None, metavar="N",
                            help=f"Expire the token after N days (default "
                                 f"{settings.REGISTRY_API_TOKEN_DAYS}, at most "
                                 f"{settings.REGISTRY_API_TOKEN_MAX_DAYS}).")
        parser.add_argument("--reason", default="api_token",
                            help="Reason stored in the token's history (default: api_token).")

    def handle(self, *args, username, label, expires_days, reason, **options):
        User = get_user_model()
        user = User.objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"username: no user '{username}'.")
        if not user.is_active:
            raise CommandError(f"username: user '{username}' is inactive.")
        if access.role_name(user) is None:
            raise CommandError(
                f"username: user '{username}' has no registry role; run registry_user first."
            )
        maximum = settings.REGISTRY_API_TOKEN_MAX_DAYS
        if expires_days is not None and not 1 <= expires_days <= maximum:
            raise CommandError(f"--expires-days: must be 1 to {maximum}, not {expires_days}.")
        try:
            key = api_token_create(user=user, label=label, expires_in_days=expires_days,
                                   actor=system_user(), reason=reason.strip() or "api_token")
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        self.stdout.write(key)

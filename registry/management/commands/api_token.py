from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from registry.services import access
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
                            help="Expire the token after N days (default: never).")

    def handle(self, *args, username, label, expires_days, **options):
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
        if expires_days is not None and expires_days < 1:
            raise CommandError(f"--expires-days: must be 1 or more, not {expires_days}.")
        self.stdout.write(api_token_create(user=user, label=label, expires_in_days=expires_days))

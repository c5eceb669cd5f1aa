import sys

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from registry.models import Role
from registry.services.audit import system_user
from registry.services.users import registry_user_save


class Command(BaseCommand):
    help = (
        "Create or update a registry user with a role bound to sites. "
        "Example: registry_user anna --role nurse --site NIJ --password-stdin"
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=Role.values,
                            help="nurse: data entry at her sites; investigator: read and export; "
                                 "data_manager: all sites, protocol, imports, corrections.")
        parser.add_argument("--site", action="append", default=[], metavar="CODE",
                            help="Site code the user works at (repeat for several).")
        parser.add_argument("--all-sites", action="store_true",
                            help="Registry-wide access (investigators; data managers always).")
        parser.add_argument("--password-stdin", action="store_true",
                            help="Read the password from the first line of standard input.")
        parser.add_argument("--email", default="")
        parser.add_argument("--no-password-validation", action="store_true",
                            help="Accept a weak password (demo set-ups only; refused under "
                                 "production settings).")
        parser.add_argument("--by", metavar="USERNAME", default=None,
                            help="Who makes this change, for the audit trail (default: the registry "
                                 "system user).")
        parser.add_argument("--reason", default="registry_user",
                            help="Reason stored in the role's history (default: registry_user).")

    def handle(self, *args, username, role, site, all_sites, password_stdin, email,
               no_password_validation, by, reason, **options):
        if no_password_validation and not settings.REGISTRY_DEMO_ALLOWED:
            raise CommandError("--no-password-validation: refused under production settings "
                               "(passwords need at least 12 characters, not common, not numeric).")
        actor = system_user()
        if by is not None:
            actor = get_user_model().objects.filter(username=by, is_active=True).first()
            if actor is None:
                raise CommandError(f"--by: no active user '{by}'.")
        if not reason.strip():
            raise CommandError("--reason: give a reason (it is stored in the history).")
        password = None
        if password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
            if not password:
                raise CommandError("--password-stdin: no password on standard input.")
        try:
            user, created = registry_user_save(
                username=username, role=role, site_codes=site, all_sites=all_sites,
                password=password, email=email, validate_pw=not no_password_validation,
                actor=actor, reason=reason.strip(),
            )
        except ValidationError as exc:
            raise CommandError("; ".join(
                f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items()
            ) if hasattr(exc, "error_dict") else " ".join(exc.messages)) from exc
        verb = "Created" if created else "Updated"
        sites = ", ".join(sorted(user.registry_role.sites.values_list("code", flat=True)))
        scope = "all sites" if user.registry_role.all_sites else (sites or "no site")
        self.stdout.write(f"{verb} {username}: {role} ({scope})")

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from registry.models import EproLink
from registry.services import epro
from registry.services.audit import system_user


class Command(BaseCommand):
    help = ("Print a new questionnaire link for a patient's visit (for a letter or a QR code in "
            "clinic). Only its hash is stored: copy it now. The creation is in the link's history.")

    def add_arguments(self, parser):
        parser.add_argument("registry_id")
        parser.add_argument("--timepoint", required=True, help="e.g. m3, m12, trial_end.")
        parser.add_argument("--implant", default="", help="Implant ref, when the patient has several.")
        parser.add_argument("--user", default="",
                            help="Who asks for the link (stored in its history; default: the system user).")
        parser.add_argument("--reason", default="questionnaire link printed (epro_link)")

    def handle(self, *args, registry_id, timepoint, implant, user, reason, **options):
        actor = system_user()
        if user:
            actor = get_user_model().objects.filter(username=user, is_active=True).first()
            if actor is None:
                raise CommandError(f"--user: no active user '{user}'.")
        try:
            visit = epro.visit_to_ask(registry_id=registry_id, timepoint=timepoint, implant_ref=implant)
            _link, token = epro.link_create(visit=visit, channel=EproLink.Channel.PRINTED, actor=actor,
                                            reason=reason.strip() or "epro_link")
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        self.stdout.write(epro.link_url(token))

from django.core.management.base import BaseCommand, CommandError

from registry.models import Site
from registry.services.audit import system_user
from registry.services.bundles import bundle_export, code_labels_markdown, format_reference_markdown


class Command(BaseCommand):
    help = (
        "Write the registry (or one site) as a CSV bundle into the folder PATH (must be new or "
        "empty): sites.csv, patients.csv, implants.csv, visits.csv (completed visits), "
        "pain_scores.csv, adverse_events.csv. Dates as recorded, no direct identifiers. The same "
        "registry always gives the same bytes; import_registry reads it back."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", nargs="?", help="Folder to write (created if missing).")
        parser.add_argument("--site", metavar="CODE", default=None, help="Only this site.")
        parser.add_argument("--format-reference", action="store_true",
                            help="Print the column reference of docs/import-format.md instead.")

    def handle(self, *args, path, site, format_reference, **options):
        if format_reference:
            self.stdout.write(format_reference_markdown() + "\n" + code_labels_markdown())
            return
        if not path:
            raise CommandError("path: give the folder to write the bundle into.")
        site_obj = None
        if site is not None:
            site_obj = Site.objects.filter(code=site.strip().upper()).first()
            if site_obj is None:
                raise CommandError(f"--site: no site '{site}'.")
        try:
            counts = bundle_export(target=path, site=site_obj, actor=system_user())
        except FileExistsError as exc:
            raise CommandError(f"path: {exc}") from None
        self.stdout.write(f"Wrote {path}: " + ", ".join(
            f"{n} {name.replace('_', ' ')}" for name, n in counts.items()) + ".")

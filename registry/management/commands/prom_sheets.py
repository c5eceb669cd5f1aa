"""Compare or rewrite the derived PROM sheets (models.PromSheet) from the answers."""

from django.core.management.base import BaseCommand, CommandError

from registry.services.proms import stored


class Command(BaseCommand):
    help = ("Check that every visit's PROM sheet (its answers and scores in one derived row, read by "
            "the exports, REDCap, FHIR and the outcomes) equals what its answers give (--check; exit "
            "status 1 when one differs), or rewrite them all from the answers (--rebuild: after a "
            "change of a scoring rule, or answers written around the application).")

    def add_arguments(self, parser):
        group = parser.add_mutually_exclusive_group(required=True)
        group.add_argument("--check", action="store_true", help="Report the sheets that differ.")
        group.add_argument("--rebuild", action="store_true", help="Rewrite every sheet.")
        parser.add_argument("--show", type=int, default=20, metavar="N",
                            help="--check: how many differences to list (default 20).")

    def handle(self, *args, check=False, rebuild=False, show=20, **options):
        if show < 0:
            raise CommandError(f"--show: give a number of differences >= 0, not {show}.")
        if rebuild:
            count = stored.sheets_rebuild()
            self.stdout.write(f"{count} PROM sheet(s) rewritten from the answers.")
            return
        differing = 0
        for visit_id, column, held, computed in stored.sheets_differing():
            differing += 1
            if differing <= show:
                self.stdout.write(f"visit {visit_id}: {column} is {held!r}, the answers give {computed!r}")
        if differing:
            self.stdout.write(f"{differing} difference(s); `manage.py prom_sheets --rebuild` rewrites "
                              f"the sheets from the answers.")
            raise SystemExit(1)
        self.stdout.write("Every PROM sheet equals its answers.")

"""Run the data checks now (operators, cron): the nightly job, synchronously."""

from django.core.management.base import BaseCommand, CommandError

from registry.models import Site
from registry.services import checks


class Command(BaseCommand):
    help = ("Run the data checks (registry.services.checks): open one query per new finding, "
            "close the queries whose finding is fixed. Safe to run again: a finding with an open "
            "query opens no other.")

    def add_arguments(self, parser):
        parser.add_argument("--site", action="append", dest="sites", metavar="CODE",
                            help="Only the patients of this site (repeatable).")
        parser.add_argument("--rule", action="append", dest="rules", metavar="NAME",
                            help=f"Only this rule (repeatable): {', '.join(checks.RULES)}.")

    def handle(self, *args, sites=None, rules=None, **options):
        chosen = None
        if sites:
            codes = [code.strip().upper() for code in sites]
            chosen = list(Site.objects.filter(code__in=codes))
            unknown = sorted(set(codes) - {site.code for site in chosen})
            if unknown:
                raise CommandError(f"--site: unknown site code '{unknown[0]}'.")
        try:
            run = checks.checks_run(sites=chosen, rules=rules)
        except ValueError as exc:
            raise CommandError(f"--rule: {exc}") from None
        for name, counts in run.by_rule.items():
            self.stdout.write(f"{name}: {counts['findings']} finding(s), {counts['opened']} opened, "
                              f"{counts['closed']} closed")
        self.stdout.write(run.summary())

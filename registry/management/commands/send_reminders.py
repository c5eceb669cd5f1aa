"""Run the daily follow-up reminder job now, synchronously (operators, cron)."""

import datetime

from django.core.management.base import BaseCommand, CommandError

from registry.models import Site
from registry.services import epro, reminders
from registry.services.audit import system_user


class Command(BaseCommand):
    help = (
        "Send each site's follow-up digest (visits due soon and overdue) and mark visits "
        "missed, exactly as the scheduled Celery job does. Safe to run again: reminders "
        "already sent are not sent twice."
    )

    def add_arguments(self, parser):
        parser.add_argument("--date", help="Day of the digest, YYYY-MM-DD (default: each "
                                           "site's today in its own time zone).")
        parser.add_argument("--dry-run", action="store_true",
                            help="Show what would be sent and marked missed; change nothing.")
        parser.add_argument("--site", action="append", dest="sites", metavar="CODE",
                            help="Only this site (repeatable).")

    def handle(self, *args, date=None, dry_run=False, sites=None, **options):
        day = None
        if date:
            try:
                day = datetime.date.fromisoformat(date)
            except ValueError:
                raise CommandError(f"--date must be YYYY-MM-DD, not '{date}'.") from None
        chosen = Site.objects.order_by("code")
        if sites:
            codes = [code.strip().upper() for code in sites]
            known = set(Site.objects.filter(code__in=codes).values_list("code", flat=True))
            unknown = [code for code in codes if code not in known]
            if unknown:
                raise CommandError(f"--site: unknown site code '{unknown[0]}'.")
            chosen = chosen.filter(code__in=codes)
        try:
            results, errors = reminders.reminders_run(actor=system_user(), day=day,
                                                      sites=list(chosen), dry_run=dry_run)
        except ValueError as exc:
            raise CommandError(f"--date: {exc}") from None
        for result in results:
            verb = "would send" if dry_run else ("sent" if result.sent else "sent nothing")
            line = (f"{result.site_code} {result.day}: {verb} {len(result.due_soon)} due soon, "
                    f"{len(result.overdue)} overdue; "
                    f"{'would mark' if dry_run else 'marked'} {result.marked_missed} missed")
            if result.skipped and not dry_run:
                line += f" ({result.skipped})"
            self.stdout.write(line)
            if dry_run and options.get("verbosity", 1) > 1:
                for item in result.due_soon + result.overdue:
                    self.stdout.write(f"  {item.kind:9} {item.registry_id} {item.timepoint_label} "
                                      f"{item.window_start}..{item.window_end} {item.admin_url}")
        # The patients' questionnaire e-mails, as the task sends them after the digest.
        for site in ([] if dry_run else list(chosen)):
            try:
                run = epro.invitations_send(site=site, day=day)
            except epro.InvitationsNotSent as exc:
                errors.append(str(exc))
                continue
            if run.sent:
                self.stdout.write(f"{site.code} {run.day}: sent {len(run.sent)} questionnaire e-mails "
                                  "to patients")
        if errors:
            raise CommandError("; ".join(errors))

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from registry.services import access
from registry.services.audit import system_user
from registry.services.imports import ImportRefused, bundle_import


class Command(BaseCommand):
    help = (
        "Import a CSV bundle (a folder or a .zip; format in docs/import-format.md). The whole "
        "bundle is validated first: every error is printed (file:line column 'value': what was "
        "expected) and nothing is written unless there are none. Rows already in the registry "
        "with the same content are skipped, so re-importing a bundle is a no-op."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="Folder or .zip holding the bundle's CSV files.")
        parser.add_argument("--dry-run", action="store_true",
                            help="Validate and count only; write nothing.")
        parser.add_argument("--user", metavar="USERNAME", default=None,
                            help="Data manager recorded in the audit trail (default: the "
                                 "registry system user).")
        parser.add_argument("--reason", metavar="TEXT", default=None,
                            help="Reason recorded in the audit trail (default: 'Import of "
                                 "<file name>').")
        parser.add_argument("--quiet", action="store_true", help="No progress bar.")

    def handle(self, *args, path, dry_run, user, reason, quiet, **options):
        actor = self._actor(user)
        source = Path(path)
        if not source.exists():
            raise CommandError(f"path: no such folder or .zip file '{path}'.")
        reason = reason if reason is not None else f"Import of {source.name}"
        if not reason.strip():
            raise CommandError("--reason: must not be empty.")
        bars: dict[str, tqdm] = {}

        def progress(stage, done, total):
            if quiet:
                return
            bar = bars.get(stage)
            if bar is None:
                for other in bars.values():
                    other.close()
                bar = bars[stage] = tqdm(total=total, desc=stage, unit="row",
                                         file=self.stderr._out, leave=False,
                                         disable=None)  # off when stderr is no terminal
            bar.total = total
            bar.update(done - bar.n)

        try:
            report = bundle_import(source=source, actor=actor, reason=reason, dry_run=dry_run,
                                   progress=progress)
        except ImportRefused as exc:
            raise CommandError(str(exc)) from None
        finally:
            for bar in bars.values():
                bar.close()
        for note in report.notes:
            self.stdout.write(note)
        if not report.ok:
            for error in report.errors:
                self.stderr.write(str(error))
            raise CommandError(f"{len(report.errors)} error(s) in {report.source}; nothing was "
                               "imported.")
        if dry_run:
            self.stdout.write(f"Dry run, nothing written. Would import: {report.summary()}.")
        else:
            self.stdout.write(f"Imported {report.source} (import run {report.run.pk}): "
                              f"{report.summary()}.")

    def _actor(self, username):
        if username is None:
            return system_user()
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"--user: no user '{username}'.")
        if not user.is_active:
            raise CommandError(f"--user: user '{username}' is inactive.")
        if not access.is_data_manager(user):
            raise CommandError(f"--user: '{username}' is not a data manager; only data managers "
                               "import bundles.")
        return user

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from registry.services.audit import system_user
from registry.services.synthetic import synthetic_registry


class Command(BaseCommand):
    help = (
        "Add a deterministic synthetic registry (for demos and benchmarks): "
        "seed_synthetic --patients 100000 --sites 20 --seed 1"
    )

    def add_arguments(self, parser):
        parser.add_argument("--patients", type=int, required=True, metavar="N")
        parser.add_argument("--seed", type=int, default=1, metavar="S")
        parser.add_argument("--sites", type=int, default=None, metavar="K",
                            help="Spread over K numbered sites S01..SK (default: the demo sites).")
        parser.add_argument("--full-schedule", action="store_true",
                            help="Schedule follow-up to the end of the protocol (as a new implant "
                                 "gets), not only the next year: mostly scheduled visits.")
        parser.add_argument("--quiet", action="store_true", help="No progress bar.")

    def handle(self, *args, patients, seed, sites, quiet, full_schedule, **options):
        if patients < 1:
            raise CommandError(f"--patients: must be 1 or more, not {patients}.")
        if sites is not None and not 1 <= sites <= 99:
            raise CommandError(f"--sites: must be between 1 and 99, not {sites}.")
        with tqdm(total=patients, unit="patient", disable=quiet or None,
                  file=self.stderr._out) as bar:
            counts = synthetic_registry(patients=patients, seed=seed, sites=sites,
                                        actor=system_user(), progress=bar.update,
                                        full_schedule=full_schedule)
        self.stdout.write(", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items()))

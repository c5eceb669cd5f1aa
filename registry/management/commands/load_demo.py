from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from registry.models import Patient, Role, Site
from registry.services.audit import system_user
from registry.services.synthetic import DEMO_SITES, synthetic_registry
from registry.services.users import registry_user_save

DEMO_PASSWORD = "registry-demo"  # demo only: documented in the README


class Command(BaseCommand):
    help = (
        "Load the demo registry (three sites, all four therapies, both indications) and the "
        "demo users nurse, investigator and datamanager (password registry-demo). Safe to re-run: "
        "existing demo data is left as it is."
    )

    def add_arguments(self, parser):
        parser.add_argument("--patients", type=int, default=90)
        parser.add_argument("--seed", type=int, default=2026)

    def handle(self, *args, patients, seed, **options):
        # The demo users' password is public (README) and shorter than the validators allow.
        if not settings.REGISTRY_DEMO_ALLOWED:
            raise CommandError("load_demo refuses to run under production settings: its users "
                               "have a published password.")
        demo_codes = [code for code, *_ in DEMO_SITES]
        if Patient.objects.filter(site__code__in=demo_codes).exists():
            self.stdout.write("Demo cohort already loaded.")
        else:
            counts = synthetic_registry(patients=patients, seed=seed, actor=system_user())
            self.stdout.write("Demo cohort: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
        self._reference_cohort()
        users = [
            ("nurse", Role.NURSE, ["AMS"], False),
            ("investigator", Role.INVESTIGATOR, [], True),
            ("datamanager", Role.DATA_MANAGER, demo_codes + self._reference_sites(), True),
        ]
        for username, role, sites, all_sites in users:
            registry_user_save(username=username, role=role, site_codes=sites,
                               all_sites=all_sites, password=DEMO_PASSWORD, validate_pw=False,
                               actor=system_user(), reason="load_demo")
        self.stdout.write("Demo users: nurse (AMS), investigator (all sites), datamanager "
                          f"- password '{DEMO_PASSWORD}'")

    def _reference_sites(self):
        return list(Site.objects.filter(code="RAD").values_list("code", flat=True))

    def _reference_cohort(self):
        """The first seed's 15 SCS patients, from fixtures/seed_reference (import issue)."""
        try:
            from registry.services.imports import reference_cohort_load
        except ImportError:
            return
        self.stdout.write(reference_cohort_load(actor=system_user()))

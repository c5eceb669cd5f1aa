"""Server time and SQL queries of the record status grid at 5,000 patients per site.

Seeds (once) a PostgreSQL database with one site of 5,000 synthetic patients and
their full follow-up schedule, then times the grid page (test Client, in-process)
for a nurse of that site: the first, a middle and the last page, at 50 and 200
patients a page. Writes nothing else (the nurse is created in a transaction that
is rolled back).

    psql -h 127.0.0.1 -U postgres -c 'CREATE DATABASE registry_grid'
    export DATABASE_URL=postgres://postgres@127.0.0.1:5432/registry_grid
    .venv/bin/python manage.py migrate
    .venv/bin/python manage.py seed_synthetic --patients 5000 --sites 1 --full-schedule
    psql -h 127.0.0.1 -U postgres -d registry_grid -c ANALYZE
    .venv/bin/python bench/status_grid.py [--runs 5]
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")


class Rollback(Exception):
    pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per page (median reported)")
    parser.add_argument("--site", default="S01")
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings
    from django.db import connection, transaction
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    from registry.models import Patient, Role, Site, Visit
    from registry.services.users import registry_user_save

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    if connection.vendor != "postgresql":
        sys.exit("Point DATABASE_URL at a PostgreSQL database seeded as the docstring says.")
    site = Site.objects.get(code=args.site)
    patients = Patient.objects.filter(site=site).count()
    visits = Visit.objects.filter(patient__site=site).count()
    print(f"# site {site.code}: {patients} patients, {visits} visits; "
          f"load average {os.getloadavg()}", flush=True)
    url = reverse("admin:registry_status_grid", args=[site.pk])
    try:
        with transaction.atomic():
            nurse = registry_user_save(username="bench-grid-nurse", role=Role.NURSE,
                                       site_codes=[site.code], validate_pw=False)[0]
            client = Client()
            client.force_login(nurse)
            for per_page in (50, 200):
                last = -(-patients // per_page)
                for page in (1, max(1, last // 2), last):
                    params = {"page": page, "per_page": per_page}
                    assert client.get(url, params).status_code == 200  # warm-up
                    times = []
                    for _ in range(args.runs):
                        with CaptureQueriesContext(connection) as queries:
                            start = time.perf_counter()
                            response = client.get(url, params)
                            times.append((time.perf_counter() - start) * 1000)
                    assert response.status_code == 200
                    print(f"{per_page:4d} a page, page {page:4d}: {statistics.median(times):7.1f} ms "
                          f"(median of {args.runs}), {len(queries)} queries", flush=True)
            raise Rollback
    except Rollback:
        pass


if __name__ == "__main__":
    main()

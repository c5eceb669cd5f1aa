"""Server time of the nurses' admin pages at registry scale.

Runs the Django test Client in-process against an existing large registry (the
shared `registry_bench`, 100,000 patients / ~1,000,000 visits, see
docs/benchmarks.md) and prints the median time and the number of SQL queries
of each page, for a data manager (every site) and a nurse (one site).

It writes nothing: the two users and their sessions are created inside a
transaction that is rolled back at the end. The database must be migrated (the
admin's list indexes, migration 0004) and ANALYZEd (a freshly seeded database
has no planner statistics and every plan is wrong); the script warns otherwise.
To measure without touching the shared database, copy it first:

    psql -h 127.0.0.1 -U postgres -c 'CREATE DATABASE registry_bench_h3 TEMPLATE registry_bench'
    export DATABASE_URL=postgres://postgres@127.0.0.1:5432/registry_bench_h3
    .venv/bin/python manage.py migrate && psql -h 127.0.0.1 -U postgres -d registry_bench_h3 -c ANALYZE
    .venv/bin/python bench/admin_pages.py [--runs 5] [--site S01]
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
    parser.add_argument("--site", default="S01", help="the nurse's site code")
    parser.add_argument("--at", help="measure as if it were this UTC time (ISO, e.g. "
                        "2026-11-23T03:00:00Z: the European sites are a day ahead of New York, "
                        "so the follow-up filters take one branch per site day)")
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings
    from django.db import connection, transaction
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    from registry.models import AdverseEvent, Patient, Role, Visit
    from registry.services.users import registry_user_save

    # Not setup_test_environment(): its instrumented template rendering would be
    # measured too. Only the test client's host name is needed.
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    if args.at:
        import datetime

        from django.utils import timezone

        moment = datetime.datetime.fromisoformat(args.at.replace("Z", "+00:00"))
        timezone.now = lambda: moment  # the clock only; the data stays as it is
        print(f"# as at {moment.isoformat()}")
    if connection.vendor != "postgresql":
        sys.exit("Point DATABASE_URL at the PostgreSQL bench database.")
    counts = {m.__name__: m.objects.count() for m in (Patient, Visit, AdverseEvent)}
    print(f"# database {connection.settings_dict['NAME']}: {counts}")
    with connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(last_analyze, last_autoanalyze) FROM pg_stat_user_tables "
                       "WHERE relname = 'registry_visit'")
        if cursor.fetchone()[0] is None:
            print("# WARNING: registry_visit was never analyzed; run ANALYZE first", flush=True)
        cursor.execute("SELECT 1 FROM pg_indexes WHERE indexname = 'visit_completed_no_nrs'")
        if cursor.fetchone() is None:
            print("# WARNING: migration 0004 (admin list indexes) is not applied", flush=True)
        cursor.execute("SELECT split_part(version(), ' ', 2)")
        print(f"# PostgreSQL {cursor.fetchone()[0]}; load average {os.getloadavg()}", flush=True)

    def pages(site_code):
        patient = Patient.objects.filter(site__code=site_code).order_by("pk").first()
        visit = Visit.objects.filter(patient=patient).order_by("pk").last()
        p, v, e = (reverse(f"admin:registry_{m}_changelist") for m in ("patient", "visit", "adverseevent"))
        return [
            ("admin home (baseline)", reverse("admin:index")),
            ("patient list", p),
            ("patient list, overdue", p + "?follow_up=overdue"),
            ("patient list, due this week", p + "?follow_up=due_week"),
            ("patient list, missing NRS", p + "?follow_up=missing_nrs"),
            ("patient list, therapy DRG", p + "?therapy=DRG"),
            ("patient search by registry id", p + f"?q={patient.registry_id}"),
            ("visit list", v),
            ("visit list, overdue", v + "?follow_up=overdue"),
            ("visit list, due this week", v + "?follow_up=due_week"),
            ("visit list, missing NRS", v + "?follow_up=missing_nrs"),
            ("visit list, completed, site", v + f"?status=completed&site={patient.site_id}"),
            ("adverse-event list", e),
            ("adverse-event list, SAE/SADE", e + "?serious__exact=1"),
            ("patient change page (hub)", reverse("admin:registry_patient_change", args=[patient.pk])),
            ("visit change page", reverse("admin:registry_visit_change", args=[visit.pk])),
        ]

    results = []
    try:
        with transaction.atomic():
            users = {
                "data manager": registry_user_save(username="bench-dm", role=Role.DATA_MANAGER,
                                                   site_codes=[args.site], validate_pw=False)[0],
                f"nurse ({args.site})": registry_user_save(username="bench-nurse", role=Role.NURSE,
                                                           site_codes=[args.site], validate_pw=False)[0],
            }
            page_list = pages(args.site)
            for who, user in users.items():
                client = Client()
                client.force_login(user)
                for name, url in page_list:
                    response = client.get(url)  # warm-up
                    assert response.status_code == 200, (name, url, response.status_code)
                    times = []
                    for _ in range(args.runs):
                        with CaptureQueriesContext(connection) as queries:
                            start = time.perf_counter()
                            client.get(url)
                            times.append((time.perf_counter() - start) * 1000)
                    slowest = max(queries.captured_queries, key=lambda q: float(q["time"]))
                    results.append((who, name, statistics.median(times), len(queries),
                                    float(slowest["time"]) * 1000))
                    print(f"{who:14} {name:32} {statistics.median(times):7.1f} ms  "
                          f"{len(queries):3d} queries  slowest SQL {float(slowest['time']) * 1000:6.1f} ms",
                          flush=True)
            raise Rollback
    except Rollback:
        pass
    worst = max(results, key=lambda r: r[2])
    print(f"# slowest page: {worst[0]} / {worst[1]}: {worst[2]:.1f} ms (median of {args.runs})")


if __name__ == "__main__":
    main()

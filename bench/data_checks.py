"""Time of `run_data_checks` (services.checks.checks_run) over a whole registry.

Runs every rule over every patient of an existing large registry (the shared
`registry_bench`, 100,000 patients, see docs/benchmarks.md), twice: the first run
opens a query per finding, the second is the nightly re-run (finds the same, opens
none). Prints, per rule and run, wall time, findings, queries opened and closed and
the number of SQL queries. Everything happens in one transaction that is rolled back
at the end: the shared database is left as it was.

`--plant-proms F` first writes ODI answers (bulk, inside the same transaction) for a
fraction F of the completed follow-ups, one in twenty of them with only 7 of the 10
sections (too few to score), so the PROM rule has answers to read (the benchmark
registry has none).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/registry_bench \\
        .venv/bin/python bench/data_checks.py [--plant-proms 0.2] [--site S01] [--markdown]
"""

import argparse
import os
import random
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")


class Rollback(Exception):
    pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plant-proms", type=float, default=0.0, metavar="FRACTION")
    parser.add_argument("--site", action="append", dest="sites", metavar="CODE")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()

    import django

    django.setup()
    from django.db import connection, transaction

    from registry.models import Patient, PromAnswer, Site, Visit, VisitStatus
    from registry.models.instruments import INSTRUMENTS
    from registry.services import checks

    sites = list(Site.objects.filter(code__in=args.sites)) if args.sites else None
    scope = Patient.objects.filter(site__in=sites) if sites else Patient.objects.all()
    print(f"database: {connection.vendor} {connection.settings_dict['NAME']}, patients in scope: "
          f"{scope.count():,}, visits: {Visit.objects.filter(patient__in=scope).count():,}",
          file=sys.stderr)
    rows = []
    try:
        with transaction.atomic():
            if args.plant_proms:
                rng = random.Random(1)
                odi = INSTRUMENTS["odi"]
                ids = list(Visit.objects.filter(patient__in=scope, status=VisitStatus.COMPLETED)
                           .exclude(timepoint="baseline").values_list("pk", flat=True))
                chosen = rng.sample(ids, int(len(ids) * args.plant_proms))
                start = time.perf_counter()
                batch = []
                for n, visit_id in enumerate(chosen):
                    items = odi.items[:7] if n % 20 == 0 else odi.items
                    batch += [PromAnswer(visit_id=visit_id, instrument="odi",
                                         instrument_version=odi.version, item=i.code,
                                         value=rng.randint(0, 5)) for i in items]
                    if len(batch) > 20000:
                        PromAnswer.objects.bulk_create(batch)
                        batch = []
                PromAnswer.objects.bulk_create(batch)
                print(f"planted ODI answers at {len(chosen):,} visits "
                      f"({(len(chosen) + 19) // 20:,} too incomplete to score) in "
                      f"{time.perf_counter() - start:.1f} s", file=sys.stderr)
            for run_no in (1, 2):
                for name in checks.RULES:
                    executed = [0]

                    def count(execute, sql, params, many, context, executed=executed):
                        executed[0] += 1
                        return execute(sql, params, many, context)

                    with connection.execute_wrapper(count):
                        start = time.perf_counter()
                        run = checks.checks_run(sites=sites, rules=[name])
                        wall = time.perf_counter() - start
                    counts = run.by_rule[name]
                    rows.append((run_no, name, wall, counts["findings"], counts["opened"],
                                 counts["closed"], executed[0]))
                    print(f"run {run_no} {name:<32} {wall:8.2f} s  {counts['findings']:>7,} findings "
                          f"{counts['opened']:>7,} opened {counts['closed']:>5,} closed "
                          f"{executed[0]:>7,} queries", file=sys.stderr)
            raise Rollback
    except Rollback:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for run_no in (1, 2):
        mine = [r for r in rows if r[0] == run_no]
        print(f"run {run_no} total: {sum(r[2] for r in mine):.1f} s, "
              f"{sum(r[6] for r in mine):,} queries", file=sys.stderr)
    print(f"peak RSS of the process: {peak:.0f} MiB (rolled back)", file=sys.stderr)
    if args.markdown:
        print("| run | rule | wall time | findings | opened | closed | SQL queries |")
        print("| ---: | --- | ---: | ---: | ---: | ---: | ---: |")
        for run_no, name, wall, found, opened, closed, n in rows:
            print(f"| {run_no} | {name} | {wall:.2f} s | {found:,} | {opened:,} | {closed:,} | {n:,} |")
        for run_no in (1, 2):
            mine = [r for r in rows if r[0] == run_no]
            print(f"| {run_no} | **all rules** | {sum(r[2] for r in mine):.1f} s | "
                  f"{sum(r[3] for r in mine):,} | {sum(r[4] for r in mine):,} | "
                  f"{sum(r[5] for r in mine):,} | {sum(r[6] for r in mine):,} |")
        print(f"\nPeak RSS of the benchmark process: {peak:.0f} MiB.")


if __name__ == "__main__":
    main()

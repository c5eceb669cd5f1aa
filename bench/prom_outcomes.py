"""Time and peak memory of the PROM outcome summary (services.proms.outcomes) on a large
synthetic registry with PROM answers.

Runs `prom_outcomes` in-process (read-only) and prints per case the median wall time, the
CPU time of this process, the SQL execute time, the number of queries and the process's
peak RSS. The registry is made by seed_synthetic, which now writes PROM answers:

    export DATABASE_URL=postgres://postgres@127.0.0.1:5432/registry_proms_bench
    .venv/bin/python manage.py migrate
    .venv/bin/python manage.py seed_synthetic --patients 20000 --sites 20 --seed 1
    psql -h 127.0.0.1 -U postgres -d registry_proms_bench -c ANALYZE
    .venv/bin/python bench/prom_outcomes.py [--runs 3] [--markdown]
"""

import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")

CASES = [
    ("overall, last follow-up", {}),
    ("group_by=therapy", {"group_by": "therapy"}),
    ("timepoint=m12", {"timepoint": "m12"}),
    ("pain_site=phantom_limb", {"pain_site": "phantom_limb"}),
    ("value_set=US", {"value_set": "US"}),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="timed runs per case (median reported)")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args()

    import django

    django.setup()
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from registry.models import Patient, PromAnswer
    from registry.services import outcomes, plots
    from registry.services.proms.outcomes import prom_outcomes

    def dashboard():
        result = prom_outcomes(patients=Patient.objects.all())
        plots.prom_mic_svg(result["overall"]["scores"], result["overall"]["holistic"])
        outcomes.prom_paragraph(result)
        return result

    jobs = [(label, lambda p=params: prom_outcomes(patients=Patient.objects.all(), **p))
            for label, params in CASES]
    jobs.append(("dashboard part: summary + plot + paragraph", dashboard))
    print(f"database: {connection.vendor} {connection.settings_dict['NAME']}, "
          f"patients: {Patient.objects.count():,}, PROM answers: {PromAnswer.objects.count():,}",
          file=sys.stderr)
    rows = []
    for label, job in jobs:
        times, cpu_times, sql_times, queries = [], [], [], 0
        for _ in range(args.runs):
            with CaptureQueriesContext(connection) as captured:
                start, cpu_start = time.perf_counter(), time.process_time()
                result = job()
                times.append(time.perf_counter() - start)
                cpu_times.append(time.process_time() - cpu_start)
            queries = len(captured.captured_queries)
            sql_times.append(sum(float(q["time"]) for q in captured.captured_queries))
        overall = result["overall"]
        paired = max((s["n_paired"] or 0) for s in overall["scores"])
        wall, cpu, sql = (statistics.median(x) for x in (times, cpu_times, sql_times))
        rows.append((label, wall, cpu, sql, queries, overall["n_patients"], paired,
                     overall["holistic"].get("n_evaluable")))
        print(f"{label:<44} {wall:7.2f} s  (CPU {cpu:5.2f} s, SQL {sql:5.2f} s, {queries} queries)  "
              f"n={overall['n_patients']} most pairs={paired} value set={result['value_set']}",
              file=sys.stderr)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of the process: {peak:.0f} MiB", file=sys.stderr)
    if args.markdown:
        print("| case | median wall time | CPU of the Python process | SQL execute | queries | patients "
              "| most pairs (one score) | holistic evaluable |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for label, wall, cpu, sql, queries, n, paired, holistic in rows:
            print(f"| {label} | {wall:.2f} s | {cpu:.2f} s | {sql:.2f} s | {queries} | {n:,} | {paired:,} "
                  f"| {holistic:,} |")
        print(f"\nPeak RSS of the benchmark process: {peak:.0f} MiB.")


if __name__ == "__main__":
    main()

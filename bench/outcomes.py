"""Time of the outcome service on the whole benchmark registry.

Runs `services.outcomes` in-process against an existing large registry (the
shared `registry_bench`, 100,000 patients / ~1,000,000 visits, see
docs/benchmarks.md) and prints, per case, the median wall time, the CPU time of
this process (fetching rows, pandas, SciPy, matplotlib: less sensitive to a busy
machine than wall time), the time spent executing SQL, the number of queries and
the process's peak memory. Read-only: it only SELECTs.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/registry_bench \\
        .venv/bin/python bench/outcomes.py [--runs 3] [--markdown]
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
    ("one site (S01)", {"site": "S01"}),
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

    from registry.models import Patient
    from registry.services import outcomes, plots

    def dashboard(**params):
        report = outcomes.outcome_report(patients=Patient.objects.all(), **params)
        s = report["summary"]
        plots.nrs_pairs_svg(report["pairs"], total=s["n_paired"])
        plots.responder_rate_svg(report["by_therapy"])
        plots.km_svg(report["km"]["years"], report["km"]["survival"], explants=s["explants"],
                     n=s["n_patients"])
        plots.ae_category_svg(s["ae_by_category"], n_patients=s["n_patients"])
        return s

    jobs = [(label, lambda p=params: outcomes.outcome_summary(patients=Patient.objects.all(), **p))
            for label, params in CASES]
    jobs.append(("dashboard: report + 4 SVG plots", dashboard))

    print(f"database: {connection.vendor} {connection.settings_dict['NAME']}, "
          f"patients: {Patient.objects.count()}", file=sys.stderr)
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
        summary = result.get("overall", result)
        wall, cpu, sql = (statistics.median(x) for x in (times, cpu_times, sql_times))
        rows.append((label, wall, cpu, sql, queries, summary["n_patients"], summary["n_paired"]))
        print(f"{label:<34} {wall:7.2f} s  (CPU here {cpu:5.2f} s, SQL execute {sql:5.2f} s, "
              f"{queries} queries)  n={summary['n_patients']} paired={summary['n_paired']}",
              file=sys.stderr)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of the process: {peak:.0f} MiB", file=sys.stderr)
    if args.markdown:
        print("| case | median wall time | CPU of the Python process | SQL execute | queries | patients "
              "| paired |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for label, wall, cpu, sql, queries, n, paired in rows:
            print(f"| {label} | {wall:.2f} s | {cpu:.2f} s | {sql:.2f} s | {queries} | {n:,} | {paired:,} |")
        print(f"\nPeak RSS of the benchmark process: {peak:.0f} MiB.")


if __name__ == "__main__":
    main()

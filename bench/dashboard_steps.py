"""Where the outcome dashboard's time and memory go, step by step (issue 21).

    DATABASE_URL=postgres://... .venv/bin/python bench/dashboard_steps.py [--user bench-dm] [--runs 2]
        [--no-user] [--summary]

The steps of the admin view (registry/admin/outcomes.py) and of `bench/channels.py --child
dashboard`, in one fresh process per run: ePRO response rates, the cohort read, the report,
the PROM outcomes, explant incidence, IPG longevity, attrition, the eight SVG plots. Prints
per run one JSON line: {step: [seconds, peak RSS in MiB after it]}, the total and the peak.
The libraries are imported before the clock starts (as a web worker has them after its
first request); `imports_mib` is the RSS they take.

`--no-user`: the whole registry without a user (`patients=Patient.objects.all()`, as the
commands do: the queries of a data manager of all sites, whom the access rule does not
narrow), without the response rates (they need a user): for a database the benchmark may
only read. `--summary`: the outcome summary alone (`bench/channels.py --child outcomes`).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def peak() -> int:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def child(username: str | None, summary: bool) -> dict:
    import django

    django.setup()
    from django.contrib.auth import get_user_model

    from registry.models import Patient
    from registry.services import outcomes
    from registry.services.outcomes import analysis  # noqa: F401

    if not summary:  # as bench/channels.py: the summary's process loads no plot library
        from registry.services import epro, plots
        from registry.services.outcomes import survival  # noqa: F401
        from registry.services.proms.outcomes import prom_outcomes

    if username:
        who = {"user": get_user_model().objects.get(username=username)}
    else:
        who = {"patients": Patient.objects.all()}
    out = {"imports_mib": peak()}

    def step(name, fn):
        start = time.perf_counter()
        result = fn()
        out[name] = [round(time.perf_counter() - start, 3), peak()]
        return result

    start = time.perf_counter()
    if summary:
        s = step("summary", lambda: outcomes.outcome_summary(**who))
        out.update(total=round(time.perf_counter() - start, 3), peak_mib=peak(), patients=s["n_patients"])
        return out
    if username:
        step("response_rates", lambda: epro.response_rates(who["user"]))
    cohort = step("cohort", lambda: outcomes.outcome_cohort(**who))
    report = step("report", lambda: outcomes.outcome_report(prepared=cohort))
    s = report["summary"]
    proms = step("proms", lambda: prom_outcomes(prepared=cohort))
    incidence = step("incidence", lambda: outcomes.explant_incidence(prepared=cohort))
    longevity = step("longevity", lambda: outcomes.ipg_longevity(prepared=cohort))
    waterfall = step("attrition", lambda: outcomes.attrition(prepared=cohort))

    def draw():
        plots.report_svgs(report, proms)
        plots.survival_svgs(incidence, longevity, waterfall)

    step("plots", draw)
    out["total"] = round(time.perf_counter() - start, 3)
    out["peak_mib"] = peak()
    out["patients"] = s["n_patients"]
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--user", default="bench-dm")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--no-user", action="store_true")
    parser.add_argument("--summary", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        sys.path.insert(0, str(ROOT))
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
        print(json.dumps(child(None if args.no_user else args.user, args.summary)))
        return
    flags = ["--no-user"] * args.no_user + ["--summary"] * args.summary
    for _ in range(args.runs):
        out = subprocess.run([sys.executable, __file__, "--child", "--user", args.user, *flags], cwd=ROOT,
                             check=True, capture_output=True, text=True).stdout
        print(out.strip().splitlines()[-1], f"load {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()

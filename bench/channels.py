"""Every output channel against PostgreSQL's own COPY, in one run (issue 21).

    .venv/bin/python bench/channels.py --patients 10000 [--db registry_bench] [--write-doc]
        [--skip import pycap] [--import-patients 10000]

1. Reuses the database --db if it holds --patients patients, else (re-)creates it with
   `seed_synthetic --patients N --sites 20 --seed 1` and ANALYZE; migrates it either way and
   adds a data manager of all sites (`bench-dm`).
2. The reference: `psql -c "COPY (<the visits export's SELECT>) TO STDOUT WITH CSV"`.
3. Each channel in its own fresh process (so its peak RSS is its own), reading the whole
   answer as the view streams it (service functions, no HTTP): REST CSV and JSON of the
   visits, REDCap records flat/eav x csv/json (raw), REDCap flat csv label, FHIR bulk
   NDJSON per type (Patient and AdverseEvent also for an investigator, made inside a
   rolled-back transaction), outcome summary and dashboard (as the admin view: one cohort
   read, the report, PROM outcomes, survival and attrition, eight SVG plots; `--child
   dashboard_nrs` is the report and its four plots alone, `--child dashboard_no_proms` the
   dashboard without the PROM outcomes and their plot).
4. `bench/import_bundle.py --patients M` (its own database) and `bench/redcap_pycap.py
   --formats csv` (PyCap's `export_records()` in one call through gunicorn, client and server
   memory) unless skipped.
5. Prints the table; with --write-doc replaces the `channels` section at the end of
   docs/benchmarks.md (machine, date, load before/after each row).
"""

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

from import_bundle import database_name  # the --db check, one place

ROOT = Path(__file__).resolve().parent.parent
PG = "postgres://postgres@127.0.0.1:5432"
PSQL = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-X", "-q"]
USER = "bench-dm"
INVESTIGATOR = "bench-investigator"

CHANNELS = [
    ("rest_csv", "REST visits CSV (`export_csv_stream`, COPY)"),
    ("rest_json", "REST visits JSON (`export_json_stream`, SQL)"),
    ("redcap_flat_csv", "REDCap records flat csv raw"),
    ("redcap_flat_json", "REDCap records flat json raw"),
    ("redcap_eav_csv", "REDCap records eav csv raw"),
    ("redcap_eav_json", "REDCap records eav json raw"),
    ("redcap_flat_csv_label", "REDCap records flat csv label"),
    ("fhir_Observation", "FHIR bulk NDJSON Observation"),
    ("fhir_Patient", "FHIR bulk NDJSON Patient"),
    ("fhir_AdverseEvent", "FHIR bulk NDJSON AdverseEvent"),
    ("fhir_Observation_shifted", "FHIR bulk NDJSON Observation, investigator (shifted dates)"),
    ("fhir_Patient_shifted", "FHIR bulk NDJSON Patient, investigator (PSEUDED)"),
    ("fhir_AdverseEvent_shifted", "FHIR bulk NDJSON AdverseEvent, investigator (shifted dates)"),
    ("outcomes", "Outcome summary, whole registry"),
    ("dashboard", "Outcome dashboard, as the admin view (report, PROMs, survival, attrition + 8 SVG plots)"),
]


def sh(args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw).stdout


def load() -> str:
    return f"{os.getloadavg()[0]:.1f}"


# --- child: one channel, in a fresh process ---------------------------------------------

def child(channel: str) -> dict:
    import django

    django.setup()
    from django.db import transaction

    if channel.endswith("_shifted"):
        # An investigator of all sites, made for this run only: the database is left as it was.
        from registry.services.users import registry_user_save

        with transaction.atomic():
            registry_user_save(username=INVESTIGATOR, role="investigator", all_sites=True, password=None,
                               validate_pw=False)
            result = measure(channel.removesuffix("_shifted"), INVESTIGATOR)
            transaction.set_rollback(True)
        return result
    return measure(channel, USER)


def measure(channel: str, username: str) -> dict:
    from django.contrib.auth import get_user_model

    from registry.interop import redcap as redcap_view
    from registry.models import Visit
    from registry.services import exports, outcomes, redcap
    from registry.services.access import visible
    from registry.services.export_log import RowCounter

    user = get_user_model().objects.get(username=username)
    visits = visible(Visit.objects.all(), user)
    counter = RowCounter()

    def drain(chunks):
        size = 0
        for chunk in chunks:
            size += len(chunk)
        return size

    # What a channel uses is imported before the clock starts, as a web worker has it
    # after its first request (pandas, SciPy and matplotlib load on first use, issue 21);
    # the peak RSS counts it.
    if channel in ("outcomes", "dashboard", "dashboard_nrs"):
        from registry.services.outcomes import analysis  # noqa: F401
    if channel.startswith("dashboard"):
        from registry.services import epro, plots
        from registry.services.outcomes import survival  # noqa: F401
        from registry.services.proms.outcomes import prom_outcomes

    start = time.perf_counter()
    size, rows = 0, None
    if channel == "statement":
        return {"statement": exports.copy_statement("visits", visits), "visits": visits.count()}
    if channel == "statement_proms":
        # The same visit rows with what REDCap's PROM forms add to each: every item's value
        # and the instrument's answer rows, from the visit's PROM sheet (issue 21's "COPY of
        # the same rows" for the REDCap records, which carry the PROM forms).
        from django.db.models import F

        from registry.models import PromSheet
        from registry.services.datasets.rows import copy_sql

        names = [f.attname for f in PromSheet._meta.concrete_fields
                 if f.attname.startswith(("item_", "rows_"))]
        select = exports.dataset_queryset("visits", visits).annotate(
            **{f"sheet_{name}": F(f"prom_sheet__{name}") for name in names})
        return {"statement": copy_sql(select), "visits": visits.count()}
    if channel == "statement_eav":
        # REDCap's eav rows (one per non-empty value of the flat rows) as plain SQL rows:
        # "COPY of the same rows" for the eav exports (services.redcap.fast.eav_rows_sql).
        from registry.services.datasets import pg
        from registry.services.redcap import fast

        sql = fast.eav_rows_sql(redcap.RecordExport(user=user, labels=False))
        return {"statement": f"COPY ({pg.bound(sql, 'default')}) TO STDOUT WITH (FORMAT csv)"}
    if channel == "rest_csv":
        size = drain(exports.export_csv_stream("visits", visits, counter=counter))
        rows = counter.rows
    elif channel == "rest_json":
        size = drain(exports.export_json_stream("visits", visits, counter=counter))
        rows = counter.rows
    elif channel.startswith("redcap_"):
        _, record_type, fmt, *label = channel.split("_")
        export = redcap.RecordExport(user=user, labels=bool(label))
        size = drain(redcap_view.record_stream(export, record_type, fmt, counter))
        rows = counter.rows
    elif channel.startswith("fhir_"):
        from registry.services import fhir

        found = fhir.fhir_search(user=user, resource_type=channel[5:], params=fhir.fhir_since_params(None))
        size = drain(found.ndjson(counter))  # as the bulk file view streams it
        rows = counter.rows
    elif channel == "outcomes":
        summary = outcomes.outcome_summary(user=user)
        rows = summary["n_patients"]
    elif channel in ("dashboard", "dashboard_no_proms"):
        # As the admin view (registry/admin/outcomes.py): one cohort read, every analysis
        # and all eight plots (four of the report, PROM MIC, explant incidence, IPG
        # longevity, attrition), the response rates. `dashboard_no_proms`: all but the
        # PROM outcomes and their plot (to time the rest apart, issue 21).
        with_proms = channel == "dashboard"
        epro.response_rates(user)
        cohort = outcomes.outcome_cohort(user=user)
        report = outcomes.outcome_report(prepared=cohort)
        s = report["summary"]
        proms = prom_outcomes(prepared=cohort) if with_proms else None
        incidence = outcomes.explant_incidence(prepared=cohort)
        longevity = outcomes.ipg_longevity(prepared=cohort)
        waterfall = outcomes.attrition(prepared=cohort)
        plots.report_svgs(report, proms)
        plots.survival_svgs(incidence, longevity, waterfall)
        rows = s["n_patients"]
    elif channel == "dashboard_nrs":
        # The report and its four plots only (the dashboard child before issue 21's PROM,
        # survival and attrition plots joined it), to compare with earlier tables.
        report = outcomes.outcome_report(user=user)
        s = report["summary"]
        plots.report_svgs(report)
        rows = s["n_patients"]
    else:
        raise SystemExit(f"unknown channel {channel}")
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "rows": rows, "bytes": size,
            "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_child(env, channel: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", channel], cwd=ROOT, env=env,
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


# --- parent ---------------------------------------------------------------------------------

def ensure_db(db: str, patients: int, env: dict) -> float | None:
    """Reuse or seed --db; returns the seeding time (None when reused)."""
    exists = sh(PSQL + ["-d", "postgres", "-Atc", f"SELECT 1 FROM pg_database WHERE datname = '{db}'"])
    count = None
    if exists.strip():
        try:
            count = int(sh(PSQL + ["-d", db, "-Atc", "SELECT count(*) FROM registry_patient"]).strip())
        except subprocess.CalledProcessError:
            count = None
    seeded = None
    if count != patients:
        print(f"seeding {db} with {patients} patients (found {count})", file=sys.stderr)
        sh(PSQL + ["-d", "postgres", "-c", f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"])
        sh(PSQL + ["-d", "postgres", "-c", f"CREATE DATABASE {db}"])
        sh([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env)
        start = time.perf_counter()
        sh([sys.executable, "manage.py", "seed_synthetic", "--patients", str(patients), "--sites", "20",
            "--seed", "1"], cwd=ROOT, env=env)
        seeded = time.perf_counter() - start
        sh(PSQL + ["-d", db, "-c", "ANALYZE"])
    else:
        sh([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env)
    sh([sys.executable, "-c", "import django; django.setup(); "
        "from registry.services.users import registry_user_save; "
        f"registry_user_save(username={USER!r}, role='data_manager', site_codes=[], "
        "all_sites=True, password=None, validate_pw=False)"], cwd=ROOT, env=env)
    return seeded


def time_copy(db: str, statement: str) -> tuple[float, int, int]:
    start = time.perf_counter()
    proc = subprocess.Popen(PSQL + ["-d", db, "-c", statement], stdout=subprocess.PIPE)
    lines, size = 0, 0
    while chunk := proc.stdout.read(1 << 16):
        lines += chunk.count(b"\n")
        size += len(chunk)
    proc.wait()
    return time.perf_counter() - start, lines, size


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--db", default="registry_bench", type=database_name)
    parser.add_argument("--import-patients", type=int, default=10_000)
    parser.add_argument("--skip", nargs="*", default=[], help="channels (or import, pycap) to leave out")
    parser.add_argument("--write-doc", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        sys.path.insert(0, str(ROOT))
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
        print(json.dumps(child(args.child), default=str))
        return
    if args.db in ("postgres", "registry", "registry_bench_h8"):
        sys.exit("--db: a database of its own (it may be re-created).")
    env = {**os.environ, "DATABASE_URL": f"{PG}/{args.db}", "DJANGO_SETTINGS_MODULE": "config.settings.local",
           "DEBUG": "False", "ALLOWED_HOSTS": "127.0.0.1,localhost"}
    started = datetime.datetime.now(datetime.UTC)
    uptime_before = sh(["uptime"]).strip()
    seeded = ensure_db(args.db, args.patients, env)
    info = run_child(env, "statement")
    rows = []
    copy_s, copy_rows, copy_bytes = time_copy(args.db, info["statement"])
    copy_rows -= 0  # COPY ... WITH CSV writes no header
    rows.append(("copy", "`psql` COPY of the visits export's SELECT (reference)", copy_s, copy_rows,
                 copy_bytes, None, load()))
    print(f"COPY {copy_s:.2f} s {copy_rows} rows", file=sys.stderr)
    proms_s, _, proms_bytes = time_copy(args.db, run_child(env, "statement_proms")["statement"])
    rows.append(("copy_proms", "`psql` COPY of the same SELECT with the PROM forms' items and answer "
                 "counts (REDCap's reference)", proms_s, copy_rows, proms_bytes, None, load()))
    print(f"COPY with PROM items {proms_s:.2f} s", file=sys.stderr)
    eav_s, eav_rows, eav_bytes = None, None, None
    if not all(f"redcap_eav_{fmt}" in args.skip for fmt in ("csv", "json")) and "redcap" not in args.skip:
        eav_s, eav_rows, eav_bytes = time_copy(args.db, run_child(env, "statement_eav")["statement"])
        rows.append(("copy_eav", "`psql` COPY of REDCap's eav rows, one per value (the eav exports' "
                     "reference)", eav_s, eav_rows, eav_bytes, None, load()))
        print(f"COPY of the eav rows {eav_s:.2f} s", file=sys.stderr)
    for channel, label in CHANNELS:
        if channel in args.skip or channel.split("_")[0] in args.skip:
            continue
        before = load()
        result = run_child(env, channel)
        rows.append((channel, label, result["seconds"], result["rows"], result["bytes"], result["peak_mib"],
                     f"{before}-{load()}"))
        print(f"{label}: {result}", file=sys.stderr)
    extra = []
    if "import" not in args.skip:
        before = load()
        out = sh([sys.executable, "bench/import_bundle.py", "--patients", str(args.import_patients),
                  "--db", f"{args.db}_import"], cwd=ROOT, env={**os.environ})
        result = json.loads(out[out.index("{"):])
        extra.append(("import", f"Bundle import of {result['patients']:,} patients / {result['visits']:,} "
                      f"visits (`bench/import_bundle.py`; stages {result['stages_s']})",
                      result["import_s"], result["visits"], None, None, f"{before}-{load()}"))
        sh(PSQL + ["-d", "postgres", "-c", f"DROP DATABASE IF EXISTS {args.db}_import WITH (FORCE)"])
        print(f"import: {result}", file=sys.stderr)
    if "pycap" not in args.skip:
        before = load()
        out = sh([sys.executable, "bench/redcap_pycap.py", "--formats", "csv"], cwd=ROOT,
                 env={**env, "BENCH_WRITABLE_DB": "1"})
        result = json.loads(out.strip().splitlines()[-1])
        extra.append(("pycap", f"PyCap `export_records(format_type='csv')`, one call over HTTP "
                      f"(gunicorn, 1 sync worker); client peak {result['client_peak_mib']} MiB",
                      result["seconds"], result["rows"], result["bytes"], result["server_peak_mib"],
                      f"{before}-{load()}"))
        print(f"pycap: {result}", file=sys.stderr)
    text = table(args, rows + extra, copy_s, copy_rows, started, uptime_before, seeded, proms_s, eav_s)
    print(text)
    if args.write_doc:
        write_doc(text)


def target(key: str, seconds: float, count, ratio: float | None, peak) -> str:
    """Issue 21's target for the row and whether this run met it."""
    fits = peak is None or peak < 300
    if key.startswith(("rest", "redcap")):
        return f"≥ 0.5x, < 300 MiB: {'met' if ratio >= 0.5 and fits else 'NOT met'}"
    if key.startswith("fhir"):
        return f"≥ 50,000/s: {'met' if count / seconds >= 50_000 else 'NOT met'}"
    if key in ("outcomes", "dashboard"):
        return f"< 2 s, < 300 MiB: {'met' if seconds < 2 and fits else 'NOT met'}"
    if key == "import":
        return f"< 15 s: {'met' if seconds < 15 else 'NOT met'}"
    if key == "pycap":
        return "one call: met"
    return ""


def table(args, rows, copy_s, copy_rows, started, uptime_before, seeded, proms_s, eav_s=None) -> str:
    copy_rate = copy_rows / copy_s
    lines = [
        f"Command: `.venv/bin/python bench/channels.py --patients {args.patients} --db {args.db}"
        f"{' --skip ' + ' '.join(args.skip) if args.skip else ''} --write-doc`",
        "",
        f"- Machine: {platform.platform()}, {os.cpu_count()} cores, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, "
        f"PostgreSQL on the same machine.",
        f"- Date: {started:%Y-%m-%d %H:%M} UTC. Load at the start: `{uptime_before}`; per row below.",
        f"- Data: `{args.db}`, {args.patients:,} patients, {copy_rows:,} visits"
        + (f" (seeded in this run: {seeded / 60:.1f} min)." if seeded else " (reused)."),
        "- Each channel ran in a fresh process reading the whole answer as the view streams it "
        "(no HTTP, except PyCap); peak RSS = that process's maximum (Django and the libraries "
        "included).",
        "- vs COPY = COPY's seconds / the channel's seconds for the same registry (the visit rows: "
        "REDCap adds enrolment and AE rows, eav one row per value, FHIR one resource per score). "
        "REDCap's flat rows are against the second reference: the same visit rows with the PROM "
        "forms' items, which every REDCap visit row carries; the eav rows against the third: "
        "COPY of the eav rows themselves (one per value, as plain SQL rows).",
        "",
        "| channel | seconds | rows / resources | rows/s | MB | vs COPY | peak RSS | load | target |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for key, label, seconds, count, size, peak, when in rows:
        rate = f"{count / seconds:,.0f}" if count and seconds else ""
        reference = proms_s if key.startswith(("redcap", "pycap", "copy_proms")) else copy_s
        if key.startswith(("redcap_eav", "copy_eav")) and eav_s:
            reference = eav_s
        ratio = f"{reference / seconds:.2f}x" if seconds else ""
        if key.startswith(("redcap", "pycap", "copy_eav")):
            ratio += f" ({copy_s / seconds:.2f}x of the first)"
        goal = target(key, seconds, count, reference / seconds if seconds else None, peak)
        lines.append(f"| {label} | {seconds:.2f} | {count if count is not None else '':,} | {rate} | "
                     f"{size / 1e6:.0f} | {ratio} | {f'{peak:.0f} MiB' if peak else ''} | {when} | {goal} |"
                     if size is not None else
                     f"| {label} | {seconds:.2f} | {count if count is not None else ''} | {rate} | | "
                     f"{ratio} | {f'{peak:.0f} MiB' if peak else ''} | {when} | {goal} |")
    lines.append(f"\nCOPY reference rate: {copy_rate:,.0f} rows/s; with the PROM items "
                 f"{copy_rows / proms_s:,.0f} rows/s.")
    return "\n".join(lines)


def write_doc(text: str) -> None:
    doc = ROOT / "docs" / "benchmarks.md"
    content = doc.read_text(encoding="utf-8")
    start, end = "<!-- section: channels (issue 21) -->", "<!-- end: channels -->"
    section = f"{start}\n## Every channel against COPY, one run (issue 21)\n\n{text}\n{end}"
    if start in content:
        head, rest = content.split(start, 1)
        _, tail = rest.split(end, 1)
        content = f"{head}{section}{tail}"
    else:
        content = content.rstrip("\n") + "\n\n" + section + "\n"
    doc.write_text(content, encoding="utf-8")


if __name__ == "__main__":
    main()

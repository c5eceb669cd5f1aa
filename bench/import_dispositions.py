"""Import of dispositions through the disposition service (issue 20), on PostgreSQL.

Usage (PostgreSQL on 127.0.0.1, user postgres):

    .venv/bin/python bench/import_dispositions.py [--patients 10000] [--share 0.1] [--db registry_bench_clin]

The bundle of bench/import_bundle.py (same generator, same seed) plus a dispositions.csv
for `--share` of its patients (deceased, withdrawn, follow-up completed, transferred out:
after the last visit). Each disposition is recorded through
`services.disposition.disposition_record`, one by one, after the bulk write and the
schedule, as the admin records it (the consent and the schedule follow its date), so its
cost is per row; the script reports the import's stages, the dispositions' share and the
time per disposition. Drops and re-creates `--db` (never the shared registry_bench) and
drops it again at the end.
"""

import argparse
import csv
import datetime
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from import_bundle import INNER, PG, PSQL, ROOT, database_name, generate  # noqa: E402

STATUSES = (("deceased", ["", "", "", "cancer", "not_related", "not_related"]),
            ("withdrawn", ["no_contact", "patient_decision", "", "", "", ""]),
            ("completed", ["", "", "", "", "", ""]),
            ("transferred", ["", "", "", "", "", ""]))


def add_dispositions(folder: Path, share: float, seed: int) -> int:
    rng = random.Random(seed)
    last: dict[str, datetime.date] = {}
    with open(folder / "visits.csv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            day = datetime.date.fromisoformat(row["visit_date"])
            last[row["registry_id"]] = max(last.get(row["registry_id"], day), day)
    with open(folder / "patients.csv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):  # retrospective: consent may follow the visits
            consent = datetime.date.fromisoformat(row["consent_date"])
            last[row["registry_id"]] = max(last[row["registry_id"]], consent)
    rows = []
    for registry_id in sorted(last):
        if rng.random() >= share:
            continue
        status, rest = rng.choice(STATUSES)
        day = min(last[registry_id] + datetime.timedelta(days=rng.randint(30, 300)),
                  datetime.date(2026, 6, 30))
        rows.append([registry_id, status, day.isoformat(), *rest, ""])
    with open(folder / "dispositions.csv", "w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh, lineterminator="\n")
        out.writerow(["registry_id", "status", "date", "withdrawal_level", "withdrawal_reason",
                      "transferred_to", "death_cause", "death_device_relatedness",
                      "death_procedure_relatedness", "note"])
        out.writerows(rows)
    return len(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--share", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--db", default="registry_bench_clin", type=database_name)
    args = parser.parse_args()
    if args.db in ("registry_bench", "postgres"):
        sys.exit("--db: use your own database, never the shared one.")
    folder = ROOT / "var" / "bench" / f"import_dispositions_{args.patients}"
    counts = generate(folder, args.patients, args.seed)
    counts["dispositions"] = add_dispositions(folder, args.share, args.seed)
    print(f"bundle {folder}: {counts}", file=sys.stderr)
    subprocess.run(PSQL + ["-c", f"DROP DATABASE IF EXISTS {args.db}"], check=True)
    subprocess.run(PSQL + ["-c", f"CREATE DATABASE {args.db}"], check=True)
    env = {**os.environ, "DATABASE_URL": f"{PG}/{args.db}",
           "DJANGO_SETTINGS_MODULE": "config.settings.local"}
    try:
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        load_before = os.getloadavg()[0]
        started = time.perf_counter()
        run = subprocess.run([sys.executable, "-c", INNER, str(folder)], cwd=ROOT, env=env,
                             capture_output=True, text=True)
        if run.returncode:
            sys.exit(run.stderr[-3000:])
        result = json.loads(run.stdout.strip().splitlines()[-1])
        result["wall_s"] = round(time.perf_counter() - started, 1)
    finally:
        subprocess.run(PSQL + ["-c", f"DROP DATABASE IF EXISTS {args.db}"], check=True)
    recorded = result["stages_s"].get("recording dispositions")
    result.update({"patients": counts["patients"], "dispositions": counts["dispositions"],
                   "ms_per_disposition": round(1000 * recorded / counts["dispositions"], 1)
                   if recorded and counts["dispositions"] else None,
                   "load": f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after"})
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""Visits CSV export over HTTP vs psql COPY of the same SELECT, at registry scale.

Usage (PostgreSQL with the shared `registry_bench` database ready):

    .venv/bin/python bench/export_csv.py [--rounds 2] [--json] [--write-doc]

What it does, all in one run on one machine:
1. copies `registry_bench` to `registry_bench_h5` (TEMPLATE; the shared one stays
   read-only), ANALYZEs it, and adds a data manager with an API token to the copy;
2. builds the COPY statement the export view runs (services.exports.copy_statement,
   same filters, same SELECT) and times `psql -c "COPY (...) TO STDOUT WITH CSV"`;
3. serves the app with gunicorn (1 sync worker, port 8105) and times
   GET /api/v1/exports/visits/?format=csv, reading the body as it streams;
4. records the worker's peak RSS (VmHWM from /proc) and a list endpoint's latency
   (first page and 20 pages deep by cursor, page_size=100);
5. drops the copy. With --write-doc, the result replaces the `exports` section of
   docs/benchmarks.md.
"""

import argparse
import datetime
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
PG = "postgres://postgres@127.0.0.1:5432"
SOURCE, COPY_DB = "registry_bench", "registry_bench_h5"
PORT = 8105
PSQL = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-X", "-q"]


def sh(args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw).stdout


def make_copy():
    sh(PSQL + ["-d", "postgres", "-c", f"DROP DATABASE IF EXISTS {COPY_DB}"])
    for attempt in range(30):
        try:
            sh(PSQL + ["-d", "postgres", "-c", f"CREATE DATABASE {COPY_DB} TEMPLATE {SOURCE}"])
            # Fresh planner statistics: the seeded database may not have been analysed yet.
            sh(PSQL + ["-d", COPY_DB, "-c", "ANALYZE"])
            return
        except subprocess.CalledProcessError as exc:  # someone is connected to the template
            if attempt == 29:
                raise SystemExit(f"could not copy {SOURCE}: {exc.stderr}") from exc
            time.sleep(5)


def drop_copy():
    subprocess.run(PSQL + ["-d", "postgres", "-c", f"DROP DATABASE IF EXISTS {COPY_DB} WITH (FORCE)"],
                   check=False, capture_output=True)


def prepare(db_url):
    """Data manager + token in the copy, and the COPY statement the view will run."""
    os.environ["DATABASE_URL"] = db_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from registry.models import Role, Visit
    from registry.services.access import visible
    from registry.services.exports import copy_statement
    from registry.services.tokens import api_token_create
    from registry.services.users import registry_user_save

    user, _ = registry_user_save(username="bench_dm", role=Role.DATA_MANAGER, password=None)
    token = api_token_create(user=user, label="bench")
    statement = copy_statement("visits", visible(Visit.objects.all(), user))
    rows = Visit.objects.count()
    from django.db import connection

    connection.close()
    return token, statement, rows


def time_psql(db, statement):
    start = time.perf_counter()
    proc = subprocess.Popen(PSQL + ["-d", db, "-c", statement], stdout=subprocess.PIPE)
    lines = 0
    while chunk := proc.stdout.read(1 << 16):
        lines += chunk.count(b"\n")
    proc.wait()
    return time.perf_counter() - start, lines


def rss_peak_kb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def get(path, token, stream_lines=False):
    conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=600)
    start = time.perf_counter()
    conn.request("GET", path, headers={"Authorization": f"Token {token}"})
    response = conn.getresponse()
    if response.status != 200:
        raise SystemExit(f"GET {path}: {response.status} {response.read()[:300]!r}")
    lines, size = 0, 0
    if stream_lines:
        while chunk := response.read(1 << 16):
            lines += chunk.count(b"\n")
            size += len(chunk)
        body = None
    else:
        body = response.read()
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed, lines, size, body


def serve(db_url):
    env = dict(os.environ, DATABASE_URL=db_url, DJANGO_SETTINGS_MODULE="config.settings.local",
               DEBUG="False", ALLOWED_HOSTS="127.0.0.1,localhost")
    proc = subprocess.Popen(
        [str(ROOT / ".venv/bin/gunicorn"), "config.wsgi:application", "-b", f"127.0.0.1:{PORT}",
         "-w", "1", "--timeout", "900", "--log-level", "warning"],
        cwd=ROOT, env=env, start_new_session=True)
    for _ in range(100):
        time.sleep(0.3)
        try:
            http.client.HTTPConnection("127.0.0.1", PORT, timeout=2).request("HEAD", "/api/schema/")
            break
        except OSError:
            continue
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    return proc, int(children[0])


def rss_kb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def list_latency(token):
    first = [get("/api/v1/visits/?page_size=100", token)[0] for _ in range(5)]
    path, deep = "/api/v1/visits/?page_size=100", []
    for _ in range(20):
        elapsed, _, _, body = get(path, token)
        deep.append(elapsed)
        nxt = json.loads(body)["next"]
        parts = urlsplit(nxt)
        path = f"{parts.path}?{parts.query}"
    return statistics.median(first), statistics.median(deep[-5:])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="also time the JSON export once")
    parser.add_argument("--write-doc", action="store_true")
    args = parser.parse_args()
    db_url = f"{PG}/{COPY_DB}"
    make_copy()
    proc = None
    try:
        token, statement, visits = prepare(db_url)
        proc, worker = serve(db_url)
        get("/api/v1/sites/", token)  # warm-up: imports, first token use
        warm_mb = rss_kb(worker) / 1024
        psql_runs, http_runs = [], []
        for _ in range(args.rounds):
            seconds, lines = time_psql(COPY_DB, statement)
            psql_runs.append((seconds, lines))
            seconds, lines, size, _ = get("/api/v1/exports/visits/?format=csv", token, stream_lines=True)
            http_runs.append((seconds, lines - 1, size))  # minus the header line
        first_page, deep_page = list_latency(token)
        json_run = None
        if args.json:
            json_run = get("/api/v1/exports/visits/?format=json", token, stream_lines=True)
        peak_mb = rss_peak_kb(worker) / 1024
    finally:
        try:
            if proc is not None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)
        finally:
            drop_copy()
    pair_ratios = [p[0] / h[0] for p, h in zip(psql_runs, http_runs, strict=True)]
    psql_best = min(psql_runs)
    http_best = min(http_runs)
    rows = http_best[1]
    assert rows == psql_best[1] == visits, (rows, psql_best[1], visits)
    psql_rate, http_rate = rows / psql_best[0], rows / http_best[0]
    lines = [
        f"Visits CSV export, {rows:,} rows x 22 columns, {http_best[2] / 1e6:.0f} MB "
        f"({datetime.date.today()}, 2 cores / 24 GiB, PostgreSQL on the same machine, "
        f"best of {args.rounds}; `.venv/bin/python bench/export_csv.py --rounds {args.rounds}"
        f"{' --json' if args.json else ''}`):",
        "",
        "| | seconds | rows/s |",
        "| --- | ---: | ---: |",
        f"| `psql -c \"COPY (same SELECT) TO STDOUT WITH CSV\"` | {psql_best[0]:.2f} | {psql_rate:,.0f} |",
        f"| GET /api/v1/exports/visits/?format=csv (gunicorn, 1 sync worker) | {http_best[0]:.2f} | "
        f"{http_rate:,.0f} |",
    ]
    if json_run:
        lines.append(f"| GET /api/v1/exports/visits/?format=json (COPY stream parsed to typed rows) | "
                     f"{json_run[0]:.2f} | {(json_run[1] - 2) / json_run[0]:,.0f} |")
    lines += [
        "",
        f"- HTTP / COPY throughput, best vs best: **{http_rate / psql_rate:.2f}**; per back-to-back "
        f"pair: {', '.join(f'{r:.2f}' for r in pair_ratios)} (median "
        f"{statistics.median(pair_ratios):.2f}; target >= 0.8). All runs: "
        f"psql {', '.join(f'{s:.2f}' for s, _ in psql_runs)} s, HTTP "
        f"{', '.join(f'{s:.2f}' for s, _, _ in http_runs)} s.",
        f"- Web worker RSS after warm-up {warm_mb:.0f} MB; peak (VmHWM) over the whole run including "
        f"the exports: **{peak_mb:.0f} MB** (target < 300 MB).",
        f"- List endpoint GET /api/v1/visits/?page_size=100 (data manager, all sites): first page "
        f"{first_page * 1000:.0f} ms, 16-20 pages deep by cursor {deep_page * 1000:.0f} ms (medians).",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write_doc:
        doc = ROOT / "docs/benchmarks.md"
        content = doc.read_text()
        start, end = "<!-- section: exports (issue 5) -->", "<!-- end: exports -->"
        head, rest = content.split(start, 1)
        _, tail = rest.split(end, 1)
        doc.write_text(f"{head}{start}\n## Exports (issue 5)\n\n{text}\n{end}{tail}")


if __name__ == "__main__":
    main()

"""PyCap export of the whole registry in one call: time and client/server memory.

Serves the registry with gunicorn (1 sync worker) on 127.0.0.1:8108 from a
PostgreSQL database, creates a data-manager token there (so the database must
be a writable copy, not the shared registry_bench), then runs PyCap unchanged:

    psql -h 127.0.0.1 -U postgres -c 'CREATE DATABASE registry_bench_h8 TEMPLATE registry_bench'
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/registry_bench_h8 \
        .venv/bin/python bench/redcap_pycap.py --formats csv df
    psql -h 127.0.0.1 -U postgres -c 'DROP DATABASE registry_bench_h8'

Each format runs in its own client process, so its peak RSS is its own.
Server memory = peak RSS of the gunicorn worker, sampled every 0.1 s.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PORT = 8108


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except FileNotFoundError:
        pass
    return 0


def children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        text = (task / "children").read_text().split()
        out += [int(p) for p in text]
    return out


class Sampler(threading.Thread):
    """Peak RSS of the server's worker processes."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.running = pid, 0, True

    def run(self):
        while self.running:
            for child in children(self.pid) or [self.pid]:
                self.peak = max(self.peak, rss_kib(child))
            time.sleep(0.1)


def client(fmt: str, url: str, token: str) -> None:
    """One PyCap call; prints a JSON line with rows, seconds and peak RSS."""
    from redcap import Project

    project = Project(url, token)
    start = time.perf_counter()
    if fmt == "df":
        frame = project.export_records(format_type="df")
        rows, size = len(frame), None
        records = frame.index.get_level_values(0).nunique()
    elif fmt == "csv":
        text = project.export_records(format_type="csv")
        rows, size = text.count("\n") - 1, len(text)
        records = None
    else:
        data = project.export_records(format_type="json")
        rows, size = len(data), None
        records = len({r["record_id"] for r in data})
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"format": fmt, "rows": rows, "records": records, "bytes": size,
                      "seconds": round(seconds, 1), "client_peak_mib": round(peak / 1024)}))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--formats", nargs="+", default=["csv", "df"], choices=["csv", "df", "json"])
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client(args.client, args.url, args.token)
        return
    # bench/channels.py passes its own database (BENCH_WRITABLE_DB=1).
    if "_h8" not in os.environ.get("DATABASE_URL", "") and not os.environ.get("BENCH_WRITABLE_DB"):
        sys.exit("Set DATABASE_URL to a writable copy such as registry_bench_h8 (see the docstring).")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.local", "DEBUG": "False",
           "ALLOWED_HOSTS": "127.0.0.1,localhost"}
    python = sys.executable
    token = subprocess.run(
        [python, "-c", "import django; django.setup(); "
         "from registry.services.users import registry_user_save; "
         "from registry.services.tokens import api_token_create; "
         "user, _ = registry_user_save(username='bench-dm', role='data_manager', site_codes=[], "
         "all_sites=True, password=None, validate_pw=False); "
         "print(api_token_create(user=user, label='bench redcap'))"],
        cwd=ROOT, env=env, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    server = subprocess.Popen(
        [str(Path(python).parent / "gunicorn"), "config.wsgi", "-b", f"127.0.0.1:{PORT}",
         "-w", "1", "--timeout", "900"], cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{PORT}/redcap/api/"
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{PORT}/fhir/metadata", timeout=2)
                break
            except OSError:
                time.sleep(0.2)
        for fmt in args.formats:
            sampler = Sampler(server.pid)
            sampler.start()
            out = subprocess.run([python, __file__, "--client", fmt, "--url", url, "--token", token],
                                 cwd=ROOT, env=env, check=True, capture_output=True, text=True)
            sampler.running = False
            sampler.join()
            result = json.loads(out.stdout.strip().splitlines()[-1])
            result["server_peak_mib"] = round(sampler.peak / 1024)
            result["rows_per_s"] = round(result["rows"] / result["seconds"])
            print(json.dumps(result), flush=True)
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()

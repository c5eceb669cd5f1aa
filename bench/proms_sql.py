"""REDCap records and FHIR bulk Observations with the PROMs: SQL path against the Python path.

    DATABASE_URL=postgres://... .venv/bin/python bench/proms_sql.py [--user bench-dm]

The database must hold a seeded registry (`seed_synthetic`, PROM answers included). Each
channel's whole answer is read as the view streams it (service functions, no HTTP), first
by the Python path (the reference), then by PostgreSQL; both answers must be equal (bytes
for REDCap, resources for FHIR). Prints seconds, bytes and the peak RSS growth of each.
"""

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402

from registry.interop import redcap as redcap_view  # noqa: E402
from registry.models import Patient, PromAnswer  # noqa: E402
from registry.services import fhir, redcap  # noqa: E402
from registry.services.export_log import RowCounter  # noqa: E402
from registry.services.users import registry_user_save  # noqa: E402


def user(name: str):
    if not get_user_model().objects.filter(username=name).exists():
        registry_user_save(username=name, role="data_manager", site_codes=[], all_sites=True, password=None,
                           validate_pw=False)
    return get_user_model().objects.get(username=name)


def timed(make):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    body = b"".join(make())
    return body, time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--user", default="bench-dm")
    args = parser.parse_args()
    dm = user(args.user)
    print(f"{Patient.objects.count()} patients, {PromAnswer.objects.count()} PROM answers")
    rows = []
    for record_type, fmt in (("flat", "csv"), ("eav", "json")):
        for fast in (False, True):
            body, seconds, rss = timed(lambda f=fast, r=record_type, m=fmt: redcap_view.record_stream(
                redcap.RecordExport(user=dm), r, m, RowCounter(), fast=f))
            rows.append((f"REDCap records {record_type} {fmt} raw, PROM forms", "SQL" if fast else "Python",
                         seconds, len(body), rss, body))
        assert rows[-1][-1] == rows[-2][-1], "REDCap: SQL and Python bytes differ"
    for sql in (False, None):
        search = fhir.fhir_search(user=dm, resource_type="Observation", params={})
        body, seconds, rss = timed(lambda s=search, q=sql: s.ndjson(RowCounter(), sql=q))
        path = "Python" if sql is False else "SQL"
        rows.append(("FHIR bulk NDJSON Observation (PROM scores included)", path,
                     seconds, len(body), rss, [json.loads(line) for line in body.splitlines()]))
    assert rows[-1][-1] == rows[-2][-1], "FHIR: SQL and Python resources differ"
    print("| Channel | Path | Seconds | MB | Peak RSS growth (MB) |")
    print("|---|---|---:|---:|---:|")
    for name, path, seconds, size, rss, _ in rows:
        print(f"| {name} | {path} | {seconds:.1f} | {size / 1e6:.1f} | {rss / 1024:.0f} |")


if __name__ == "__main__":
    main()

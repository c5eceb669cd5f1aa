"""Bench only: fill PROM answers into a large registry that has none, in one SQL statement.

seed_synthetic writes PROM answers row by row through the ORM with history (~240 per
patient; 15 min for 20,000 patients on the shared machine), too slow for 100,000. This
script makes the same kind of answers with one INSERT ... SELECT in PostgreSQL:

- at every completed visit, each instrument the default protocol's PromSchedule asks for at
  that timepoint and the patient's diagnosis (PromSchedule.due_at, evaluated here in
  Python into a small VALUES table);
- values as services.synthetic._PromMaker makes them: in range (clamped to each item's
  low..high), tied to the NRS relief from baseline (worse at baseline, better as the NRS
  falls), with Gaussian-like noise (sum of four uniforms); 7 % of the instruments and 3 %
  of the items left out;
- every NOT NULL column filled (created_at/updated_at = now(), version 1,
  instrument_version from the definition). The history table is NOT written: the outcome
  summary never reads it, and a benchmark needs no audit trail. Do not use this on a
  registry anyone audits.

The unique (visit, instrument, item) constraint, the two other indexes and the foreign key
are dropped for the insert and rebuilt after it (same names and definitions, so the schema
is Django's again), then ANALYZE. Refuses a table that already holds answers.

    export DATABASE_URL=postgres://postgres@127.0.0.1:5432/registry_prom100k
    .venv/bin/python bench/prom_fill.py [--seed 0.16]
"""

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")

SKIP_INSTRUMENT = 0.07  # as services.synthetic._PromMaker
SKIP_ITEM = 0.03
EQ5D_START = {"pd": 4.0, "mo": 3.0, "ua": 3.2, "sc": 2.0, "ad": 2.6}
HIGHER_WORSE_START = {"odi": 0.55, "hads": 0.5, "pcs": 0.6}


def coefficients(code, item):
    """value = a + b * relief + c * nrs + d * noise (noise ~ N(0, 1)), as _PromMaker._value."""
    if code == "eq5d5l":
        if item.code == "vas":
            return 35, 45, 0, 10
        return EQ5D_START[item.code], -2.2, 0, 0.6
    if code == "bpi_sf":
        if item.code in ("worst", "least", "average", "now"):
            return 0, 0, 1, 1.0
        return 0, 0, 0.8, 1.5
    span = item.high - item.low
    worse = HIGHER_WORSE_START.get(code)
    if worse is not None:
        return item.low + span * worse, -0.35 * span, 0, span * 0.15
    return item.low + span * 0.4, 0.35 * span, 0, span * 0.15  # PSEQ: higher is better


def values_sql(rows):
    def lit(x):
        return "'" + x.replace("'", "''") + "'" if isinstance(x, str) else repr(float(x))
    return ", ".join("(" + ", ".join(lit(x) for x in row) + ")" for row in rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=float, default=0.16, help="PostgreSQL setseed(), -1..1")
    args = parser.parse_args()

    import django

    django.setup()
    from django.db import connection, transaction

    from registry.models import FollowUpProtocol, PromAnswer, Visit
    from registry.models.choices import Diagnosis
    from registry.services.proms.instruments import INSTRUMENTS, schedules_for

    if connection.vendor != "postgresql":
        sys.exit("prom_fill.py is PostgreSQL only.")
    if PromAnswer.objects.exists():
        sys.exit(f"{PromAnswer._meta.db_table} already holds answers; use a registry without any.")
    schedules = schedules_for(FollowUpProtocol.default())
    timepoints = sorted(set(Visit.objects.values_list("timepoint", flat=True).distinct()))
    due = [(tp, dx, row.instrument) for tp in timepoints for dx in Diagnosis.values
           for row in schedules if row.due_at(tp, dx)]
    items = [(code, instrument.version, item.code, item.low, item.high, *coefficients(code, item))
             for code, instrument in INSTRUMENTS.items() for item in instrument.items]
    table = PromAnswer._meta.db_table
    noise = "((random() + random() + random() + random() - 2) * 1.7320508)"
    insert = f"""
        INSERT INTO {table} (created_at, updated_at, version, visit_id, instrument,
                             instrument_version, item, value)
        WITH due(timepoint, diagnosis, instrument) AS (VALUES {values_sql(due)}),
        items(instrument, version, item, low, high, a, b, c, d) AS (VALUES {values_sql(items)}),
        baseline AS (
            SELECT patient_id, nrs FROM registry_visit
            WHERE timepoint = 'baseline' AND status = 'completed'),
        asked AS MATERIALIZED (
            SELECT v.id AS visit_id, due.instrument, coalesce(v.nrs, b.nrs, 0) AS nrs,
                   CASE WHEN b.nrs > 0
                        THEN greatest(0, 1 - coalesce(v.nrs, b.nrs)::float / b.nrs)
                        ELSE 0 END AS relief
            FROM registry_visit v
            JOIN registry_patient p ON p.id = v.patient_id
            LEFT JOIN baseline b ON b.patient_id = v.patient_id
            JOIN due ON due.timepoint = v.timepoint AND due.diagnosis = p.diagnosis
            WHERE v.status = 'completed' AND random() >= {SKIP_INSTRUMENT})
        SELECT now(), now(), 1, asked.visit_id, asked.instrument, i.version, i.item,
               least(i.high::int, greatest(i.low::int,
                     round(i.a + i.b * asked.relief + i.c * asked.nrs + i.d * {noise})::int))
        FROM asked JOIN items i ON i.instrument = asked.instrument
        WHERE random() >= {SKIP_ITEM}
    """
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("""
            SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
            WHERE conrelid = %s::regclass AND contype IN ('u', 'f')""", [table])
        constraints = cursor.fetchall()
        cursor.execute("""
            SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s
            AND indexname NOT IN (SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass)
            """, [table, table])
        indexes = cursor.fetchall()
        for name, _ in constraints:
            cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        cursor.execute("SET LOCAL work_mem = '256MB'")
        cursor.execute("SET LOCAL maintenance_work_mem = '512MB'")
        cursor.execute("SELECT setseed(%s)", [args.seed])
        start = time.perf_counter()
        cursor.execute(insert)
        print(f"inserted {cursor.rowcount:,} answers in {time.perf_counter() - start:.0f} s",
              file=sys.stderr)
        start = time.perf_counter()
        for _, definition in indexes:
            cursor.execute(definition)
        for name, definition in constraints:
            cursor.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
        print(f"rebuilt {len(indexes)} indexes and {len(constraints)} constraints in "
              f"{time.perf_counter() - start:.0f} s", file=sys.stderr)
    start = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    print(f"ANALYZE in {time.perf_counter() - start:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()

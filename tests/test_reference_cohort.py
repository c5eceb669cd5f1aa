"""The first seed's cohort, as shipped in fixtures/seed_reference, has the paper's raw figures."""

import csv
import datetime
import statistics
from pathlib import Path

BUNDLE = Path(__file__).resolve().parent.parent / "fixtures" / "seed_reference"


def rows(name):
    with open(BUNDLE / name, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def r1(x):
    return round(x + 1e-12, 1)


def test_the_reference_cohort_matches_the_paper():
    patients = rows("patients.csv")
    implants = {i["registry_id"]: i for i in rows("implants.csv")}
    visits = rows("visits.csv")
    events = rows("adverse_events.csv")
    assert len(patients) == 15
    assert sum(p["sex"] == "M" for p in patients) == 8
    assert {i["therapy"] for i in implants.values()} == {"SCS"}
    assert {p["etiology"] for p in patients} <= {"traumatic", "iatrogenic"}
    ages = [int(implants[p["registry_id"]]["implant_date"][:4]) - int(p["birth_year"])
            for p in patients]
    assert (r1(statistics.mean(ages)), r1(statistics.stdev(ages))) == (48.0, 12.0)
    baseline = {v["registry_id"]: int(v["nrs"]) for v in visits if v["timepoint"] == "baseline"}
    last = {}
    for v in visits:
        if v["timepoint"].startswith("m") and v["nrs"]:
            if v["registry_id"] not in last or v["visit_date"] > last[v["registry_id"]]["visit_date"]:
                last[v["registry_id"]] = v
    ids = sorted(baseline)
    before = [baseline[i] for i in ids]
    after = [int(last[i]["nrs"]) for i in ids]
    assert (r1(statistics.mean(before)), r1(statistics.stdev(before))) == (8.1, 0.8)
    assert (r1(statistics.mean(after)), r1(statistics.stdev(after))) == (3.0, 2.0)
    responders = sum((b - a) / b >= 0.5 for b, a in zip(before, after, strict=True))
    assert responders == 10
    assert all(int(last[i]["satisfaction"]) >= 4 for i in ids)
    years = [
        (datetime.date.fromisoformat(last[i]["visit_date"])
         - datetime.date.fromisoformat(implants[i]["implant_date"])).days / 365.25
        for i in ids
    ]
    assert round(min(years)) == 2 and round(max(years)) == 18
    assert [e["category"] for e in events] == ["infection_superficial"]

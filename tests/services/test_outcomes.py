"""The outcome service: the seed paper's figures from the reference cohort, every
figure against an independent computation on random cohorts, parameter
validation, access scoping and a bounded number of queries."""

import datetime
import math
import random

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from registry.models import PainScore, Patient
from registry.services import imports, outcomes
from registry.services.audit import record_save
from tests.factories import make_event, make_implant, make_patient, make_visit

TODAY = datetime.date.today()


# --- the reference cohort (first seed paper) -----------------------------------


@pytest.fixture
def reference_cohort(data_manager):
    message = imports.reference_cohort_load(actor=data_manager)
    assert "NOT loaded" not in message, message
    return data_manager


def test_the_reference_cohort_gives_the_papers_figures(reference_cohort):
    s = outcomes.outcome_summary(user=reference_cohort, site="RAD")
    assert s["n_patients"] == 15
    assert s["male"] == 8
    assert (round(s["age_mean"]), round(s["age_sd"])) == (48, 12)
    assert (round(s["nrs_baseline_mean"], 1), round(s["nrs_baseline_sd"], 1)) == (8.1, 0.8)
    assert (round(s["nrs_followup_mean"], 1), round(s["nrs_followup_sd"], 1)) == (3.0, 2.0)
    assert (s["responders"], s["n_responder_evaluable"]) == (10, 15)
    assert round(s["responder_rate"] * 100, 1) == 66.7  # the paper prints 63 % for 10/15
    assert round(s["nrs_reduction_of_means_pct"]) == 63
    assert s["wilcoxon_p"] < 0.01
    assert s["satisfied"] == s["n_satisfaction"] == 15
    assert s["patients_with_ae"] == 1
    assert s["ae_by_category"] == {"infection_superficial": {"patients": 1, "events": 1}}
    assert (round(s["followup_years_min"]), round(s["followup_years_max"])) == (2, 18)
    assert (s["excluded_no_baseline"], s["excluded_no_followup"], s["excluded_zero_baseline"]) == (0, 0, 0)
    assert s["explants"] == 0 and s["explant_free"]["5y"] == 1.0


def test_the_reference_cohort_paragraph_reads_like_the_paper(reference_cohort):
    s = outcomes.outcome_summary(user=reference_cohort, site="RAD")
    text = outcomes.outcome_paragraph(s)
    assert "15 patients (M = 8, 48 ± 12 years)" in text
    assert "At last follow-up (2–18 years), 67 % (10/15) of patients were responders" in text
    assert "63 % (8.1 ± 0.8 to 3.0 ± 2.0)" in text
    assert "p < 0.001" in text or "p < 0.01" in text
    assert "All patients with a rating (15/15) were satisfied" in text
    assert "one patient (7 %, 1/15): superficial infection" in text


# --- random cohorts against an independent computation -------------------------


def plan_cohort(seed: int, n: int = 36) -> list[dict]:
    """A random registry as plain data: what the test will write and then recompute."""
    rng = random.Random(seed)
    plan = []
    order = 0
    for i in range(n):
        postamp = rng.random() < 0.3
        patient = {
            "key": i, "site": rng.choice(["AAA", "BBB"]), "sex": rng.choice("MMFFU"),
            "birth_year": rng.randint(1940, 1995),
            "etiology": "postamputation" if postamp else rng.choice(["traumatic", "iatrogenic"]),
            "diagnosis": rng.choice(["rlp", "plp"]) if postamp else "pn",
            "withdrawn": i % 9 == 4, "implants": [], "visits": [], "events": [],
        }
        implant_date = datetime.date(2012, 1, 1) + datetime.timedelta(days=rng.randint(0, 3000))
        patient["consent_date"] = implant_date - datetime.timedelta(days=60)
        if patient["withdrawn"]:
            patient["withdrawal_date"] = implant_date + datetime.timedelta(days=rng.randint(200, 1500))
        stop = patient.get("withdrawal_date", TODAY)
        if i % 13 != 7:  # some patients never got an implant (trial failed)
            explant = None
            if rng.random() < 0.25:
                explant = implant_date + datetime.timedelta(days=rng.randint(100, 2500))
                explant = explant if explant < TODAY else None
            patient["implants"].append({"key": (i, 1), "therapy": rng.choice(["SCS", "DRG", "PNS"]),
                                        "implant_date": implant_date, "explant_date": explant})
            if i % 11 == 3:  # a second therapy later on: not the index implant
                second = implant_date + datetime.timedelta(days=400)
                patient["implants"].append({"key": (i, 2), "therapy": "PNS" if patient["implants"][0][
                    "therapy"] != "PNS" else "DRG", "implant_date": second, "explant_date": None})
        # Baseline: missing, without NRS, zero, or a usual score.
        kind = i % 10
        if kind != 1:
            nrs = None if kind == 2 else 0 if kind == 5 else rng.randint(4, 10)
            order += 1
            patient["visits"].append({"timepoint": "baseline", "implant": None, "order": order,
                                      "date": implant_date - datetime.timedelta(days=30), "nrs": nrs,
                                      "satisfaction": None, "pain": {}})
        if patient["implants"]:
            index = patient["implants"][0]
            for months in (3, 6, 12, 24, 36, 60):
                date = implant_date + datetime.timedelta(days=round(months * 30.44) + rng.randint(-5, 5))
                if date >= TODAY or date > stop or kind == 3 or rng.random() < 0.2:
                    continue
                order += 1
                patient["visits"].append({
                    "timepoint": f"m{months}", "implant": index["key"], "order": order, "date": date,
                    "nrs": None if rng.random() < 0.15 else rng.randint(0, 10),
                    "satisfaction": rng.choice([None, 1, 2, 3, 4, 5, 5]), "pain": {}})
            if i % 7 == 0 and kind != 3:
                order += 1
                patient["visits"].append({
                    "timepoint": "unscheduled", "implant": None, "order": order,
                    "date": min(stop, implant_date + datetime.timedelta(days=rng.randint(10, 900))),
                    "nrs": rng.randint(0, 10), "satisfaction": rng.choice([None, 3, 4]), "pain": {}})
            for second in patient["implants"][1:]:
                order += 1
                patient["visits"].append({
                    "timepoint": "m3", "implant": second["key"], "order": order,
                    "date": second["implant_date"] + datetime.timedelta(days=91), "nrs": rng.randint(0, 10),
                    "satisfaction": 5, "pain": {}})
                patient["events"].append({"implant": second["key"], "category": "lead_migration",
                                          "onset": second["implant_date"] + datetime.timedelta(days=20)})
            if rng.random() < 0.35:
                for _ in range(rng.choice([1, 1, 2])):
                    patient["events"].append({
                        "implant": rng.choice([index["key"], None]),
                        "category": rng.choice(["infection_superficial", "lead_migration", "csf_leak"]),
                        "onset": implant_date + datetime.timedelta(days=rng.randint(1, 300))})
        if postamp:
            for visit in patient["visits"]:
                visit["pain"][("residual_limb", "avg_7d")] = rng.randint(0, 10)
                visit["pain"][("residual_limb", "now")] = rng.randint(0, 10)
                if rng.random() < 0.8:
                    visit["pain"][("phantom_limb", "avg_7d")] = rng.randint(0, 10)
        plan.append(patient)
    return plan


def write_cohort(plan, sites, actor) -> None:
    """Write the plan through the services (with history), as nurses would."""
    for p in plan:
        extra = {}
        if p["withdrawn"]:
            extra = {"consent_status": "withdrawn", "withdrawal_date": p["withdrawal_date"]}
        patient = make_patient(sites[p["site"]], actor=actor, sex=p["sex"], birth_year=p["birth_year"],
                               etiology=p["etiology"], diagnosis=p["diagnosis"],
                               consent_date=p["consent_date"], **extra)
        implants = {}
        for imp in p["implants"]:
            implants[imp["key"]] = make_implant(
                patient, actor=actor, therapy=imp["therapy"], implant_date=imp["implant_date"],
                trial_start=imp["implant_date"] - datetime.timedelta(days=20),
                trial_end=imp["implant_date"] - datetime.timedelta(days=10),
                explant_date=imp["explant_date"],
                explant_reason="loss of efficacy" if imp["explant_date"] else "")
        for v in sorted(p["visits"], key=lambda v: v["order"]):
            visit = make_visit(patient, implants.get(v["implant"]), actor=actor, timepoint=v["timepoint"],
                               status="completed", date_done=v["date"], nrs=v["nrs"],
                               satisfaction=v["satisfaction"])
            for (pain_site, recall), score in v["pain"].items():
                record_save(PainScore(visit=visit, pain_site=pain_site, recall=recall, score=score),
                            actor=actor, reason="test")
        for e in p["events"]:
            make_event(patient, implants.get(e["implant"]), actor=actor, onset_date=e["onset"],
                       category=e["category"], outcome="ongoing", resolved_on=None)


def expected_rows(plan, *, therapy=(), etiology=(), diagnosis=(), site=(), year_from=None, year_to=None,
                  timepoint="last", pain_site=None, recall="avg_7d"):
    """Per-patient rows and events, straight from the plan (no service code)."""
    rows, events = [], []
    for p in plan:
        if (etiology and p["etiology"] not in etiology) or (diagnosis and p["diagnosis"] not in diagnosis) \
                or (site and p["site"] not in site):
            continue
        matching = [i for i in p["implants"]
                    if (not therapy or i["therapy"] in therapy)
                    and (year_from is None or i["implant_date"].year >= year_from)
                    and (year_to is None or i["implant_date"].year <= year_to)]
        if not matching:
            continue
        index = min(matching, key=lambda i: (i["implant_date"], i["key"]))

        def score(visit):
            return visit["nrs"] if pain_site is None else visit["pain"].get((pain_site, recall))

        base = [v for v in p["visits"] if v["timepoint"] == "baseline"]
        baseline = score(base[0]) if base else None
        if timepoint == "last":
            candidates = [v for v in p["visits"] if v["timepoint"] != "baseline" and score(v) is not None
                          and v["implant"] in (index["key"], None) and v["date"] > index["implant_date"]]
        else:
            candidates = [v for v in p["visits"] if v["timepoint"] == timepoint
                          and v["implant"] == index["key"] and score(v) is not None]
        # Latest by date; on the same day a scheduled timepoint, then the one entered last.
        last = max(candidates, key=lambda v: (v["date"], v["timepoint"] != "unscheduled", v["order"]),
                   default=None)
        last_contact = max([v["date"] for v in p["visits"]] + [index["implant_date"]])
        rows.append({
            "key": p["key"], "sex": p["sex"], "therapy": index["therapy"], "site": p["site"],
            "etiology": p["etiology"], "withdrawn": p["withdrawn"],
            "age": index["implant_date"].year - p["birth_year"],
            "baseline": baseline, "followup": score(last) if last else None,
            "years": (last["date"] - index["implant_date"]).days / 365.25 if last else None,
            "satisfaction": last["satisfaction"] if last else None,
            "explanted": index["explant_date"] is not None,
            "time": ((index["explant_date"] or last_contact) - index["implant_date"]).days / 365.25,
        })
        for e in p["events"]:
            if e["implant"] in (index["key"], None):
                events.append({"key": p["key"], "category": e["category"]})
    return rows, events


def kaplan_meier_at(times, explanted, t):
    """Product-limit estimate at t (those censored at an event time count as at risk)."""
    if not len(times) or max(times) < t:
        return None
    survival = 1.0
    for u in sorted({x for x, e in zip(times, explanted, strict=True) if e}):
        if u > t:
            break
        deaths = sum(1 for x, e in zip(times, explanted, strict=True) if e and x == u)
        at_risk = sum(1 for x in times if x >= u)
        survival *= 1 - deaths / at_risk
    return survival


def wilson(k, n, z=1.959963984540054):
    if n == 0:
        return None
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [centre - half, centre + half]


def expected_figures(rows, events, threshold=50) -> dict:
    df = pd.DataFrame(rows, columns=["key", "sex", "therapy", "site", "etiology", "withdrawn", "age",
                                     "baseline", "followup", "years", "satisfaction", "explanted", "time"])
    ev = pd.DataFrame(events, columns=["key", "category"])
    n = len(df)
    no_base = df["baseline"].isna()
    no_follow = df["baseline"].notna() & df["followup"].isna()
    paired = df[df["baseline"].notna() & df["followup"].notna()]
    before, after = paired["baseline"].astype(float), paired["followup"].astype(float)
    evaluable = paired[paired["baseline"] > 0]
    pct = (evaluable["baseline"] - evaluable["followup"]) / evaluable["baseline"] * 100
    responders = int((pct >= threshold - 1e-9).sum())
    sat = paired["satisfaction"].dropna()
    with_ae = ev["key"].nunique()
    wilcoxon = None
    if len(paired) and (before != after).any():
        wilcoxon = stats.wilcoxon(before, after).pvalue
    times, explanted = list(df["time"]), list(df["explanted"])
    return {
        "n_patients": n,
        "male": int((df["sex"] == "M").sum()),
        "withdrawn": int(df["withdrawn"].sum()),
        "age_mean": df["age"].mean() if n else None,
        "age_sd": df["age"].std(ddof=1) if n > 1 else None,
        "excluded_no_baseline": int(no_base.sum()),
        "excluded_no_followup": int(no_follow.sum()),
        "excluded_zero_baseline": int((paired["baseline"] == 0).sum()),
        "n_paired": len(paired),
        "n_responder_evaluable": len(evaluable),
        "followup_years_median": paired["years"].median() if len(paired) else None,
        "followup_years_min": paired["years"].min() if len(paired) else None,
        "followup_years_max": paired["years"].max() if len(paired) else None,
        "nrs_baseline_mean": before.mean() if len(paired) else None,
        "nrs_baseline_sd": before.std(ddof=1) if len(paired) > 1 else None,
        "nrs_followup_mean": after.mean() if len(paired) else None,
        "nrs_followup_sd": after.std(ddof=1) if len(paired) > 1 else None,
        "nrs_reduction_pct_mean": pct.mean() if len(evaluable) else None,
        "nrs_reduction_of_means_pct": (before.mean() - after.mean()) / before.mean() * 100
        if len(paired) and before.mean() else None,
        "responders": responders,
        "responder_rate": responders / len(evaluable) if len(evaluable) else None,
        "responder_rate_ci95": wilson(responders, len(evaluable)),
        "wilcoxon_p": wilcoxon,
        "satisfied": int((sat >= 4).sum()),
        "n_satisfaction": len(sat),
        "patients_with_ae": with_ae,
        "ae_rate": with_ae / n if n else None,
        "ae_by_category": {c: {"patients": g["key"].nunique(), "events": len(g)}
                           for c, g in ev.groupby("category")},
        "explants": int(df["explanted"].sum()),
        "explant_free": {f"{y}y": kaplan_meier_at(times, explanted, y) for y in (1, 2, 5)},
        "explant_free_at_risk": {f"{y}y": sum(1 for t in times if t >= y) for y in (1, 2, 5)},
    }


def assert_same(actual: dict, expected: dict, label: str):
    assert set(actual) == set(outcomes.SUMMARY_KEYS), label
    for key, value in expected.items():
        got = actual[key]
        if value is None or (isinstance(value, float) and math.isnan(value)):
            assert got is None, f"{label}: {key} = {got}, expected None"
        elif isinstance(value, dict):
            assert got.keys() == value.keys(), f"{label}: {key}"
            for sub, v in value.items():
                assert got[sub] == (pytest.approx(v) if v is not None else None), f"{label}: {key}.{sub}"
        else:
            assert got == pytest.approx(value, rel=1e-9, abs=1e-12), \
                f"{label}: {key} = {got}, expected {value}"


VARIANTS = [
    ("everyone, last follow-up", {}, {}),
    ("fixed 12-month follow-up", {"timepoint": "m12"}, {"timepoint": "m12"}),
    ("30 % threshold", {"threshold": 30}, {}),
    ("SCS or DRG only", {"therapy": "SCS,DRG"}, {"therapy": ("SCS", "DRG")}),
    ("one site, traumatic", {"site": "AAA", "etiology": "traumatic"},
     {"site": ("AAA",), "etiology": ("traumatic",)}),
    ("implanted 2014-2017", {"implant_year_from": 2014, "implant_year_to": 2017},
     {"year_from": 2014, "year_to": 2017}),
    ("residual limb pain, 7-day average", {"pain_site": "residual_limb"}, {"pain_site": "residual_limb"}),
    ("residual limb pain now", {"pain_site": "residual_limb", "recall": "now"},
     {"pain_site": "residual_limb", "recall": "now"}),
    ("phantom limb pain at 6 months", {"pain_site": "phantom_limb", "timepoint": "m6"},
     {"pain_site": "phantom_limb", "timepoint": "m6"}),
]


@pytest.mark.parametrize("seed", [7, 2024])
def test_every_figure_matches_an_independent_computation_on_a_random_cohort(
        seed, site_a, site_b, data_manager):
    plan = plan_cohort(seed)
    write_cohort(plan, {"AAA": site_a, "BBB": site_b}, data_manager)
    # The random cohort covers the awkward cases, or the comparison proves little.
    rows, _ = expected_rows(plan)
    frame = pd.DataFrame(rows)
    assert (frame["baseline"] == 0).any() and frame["baseline"].isna().any()
    assert (frame["baseline"].notna() & frame["followup"].isna()).any()
    assert frame["withdrawn"].any() and frame["explanted"].any()
    assert len(frame) < len(plan)  # patients without an implant are not in the cohort
    paired = frame.dropna(subset=["baseline", "followup"])
    assert (paired["baseline"] - paired["followup"]).duplicated().any()  # tied differences
    for label, params, plan_filters in VARIANTS:
        threshold = params.get("threshold", 50)
        rows, events = expected_rows(plan, **plan_filters)
        actual = outcomes.outcome_summary(user=data_manager, **params)
        assert_same(actual, expected_figures(rows, events, threshold), f"seed {seed}, {label}")


def test_groups_match_the_independent_computation_per_therapy(site_a, site_b, data_manager):
    plan = plan_cohort(11)
    write_cohort(plan, {"AAA": site_a, "BBB": site_b}, data_manager)
    result = outcomes.outcome_summary(user=data_manager, group_by="therapy")
    rows, events = expected_rows(plan)
    assert_same(result["overall"], expected_figures(rows, events), "overall")
    therapies = sorted({r["therapy"] for r in rows})
    assert [g["group"] for g in result["groups"]] == therapies
    for group in result["groups"]:
        subset = [r for r in rows if r["therapy"] == group["group"]]
        keys = {r["key"] for r in subset}
        expected = expected_figures(subset, [e for e in events if e["key"] in keys])
        assert_same({k: v for k, v in group.items() if k != "group"}, expected, group["group"])


def test_a_cohort_of_identical_scores_has_no_wilcoxon_p(site_a, data_manager):
    patient = make_patient(site_a, actor=data_manager)
    implant = make_implant(patient, actor=data_manager)
    make_visit(patient, actor=data_manager, nrs=6)
    make_visit(patient, implant, actor=data_manager, timepoint="m12", date_done=datetime.date(2021, 3, 1),
               nrs=6)
    s = outcomes.outcome_summary(user=data_manager)
    assert s["n_paired"] == 1 and s["wilcoxon_p"] is None
    assert s["responders"] == 0 and s["responder_rate"] == 0.0


def test_on_the_same_day_the_scheduled_visit_is_the_follow_up(site_a, data_manager):
    patient = make_patient(site_a, actor=data_manager)
    implant = make_implant(patient, actor=data_manager)
    make_visit(patient, actor=data_manager, nrs=8)
    day = datetime.date(2021, 3, 1)
    make_visit(patient, None, actor=data_manager, timepoint="unscheduled", date_done=day, nrs=7)
    make_visit(patient, implant, actor=data_manager, timepoint="m12", date_done=day, nrs=2)
    s = outcomes.outcome_summary(user=data_manager)
    assert s["nrs_followup_mean"] == 2 and s["responders"] == 1


def test_a_cohort_whose_paired_baselines_are_all_zero_still_gets_a_paragraph(site_a, data_manager):
    patient = make_patient(site_a, actor=data_manager)
    implant = make_implant(patient, actor=data_manager)
    make_visit(patient, actor=data_manager, nrs=0)
    make_visit(patient, implant, actor=data_manager, timepoint="m12", date_done=datetime.date(2021, 3, 1),
               nrs=2)
    s = outcomes.outcome_summary(user=data_manager)
    assert s["n_paired"] == 1 and s["nrs_reduction_of_means_pct"] is None
    text = outcomes.outcome_paragraph(s)
    assert "no computable average decrease in NRS" in text
    assert "1 with a baseline NRS of 0 could not be classified" in text
    report = outcomes.outcome_report(user=data_manager)
    assert report["paragraph"] == text


def test_a_nurse_cannot_tell_another_sites_code_from_an_unknown_one(site_a, site_b, nurse):
    for code in ("BBB", "ZZZ"):
        with pytest.raises(outcomes.OutcomeQueryError) as caught:
            outcomes.outcome_summary(user=nurse, site=code)
        assert caught.value.param == "site" and caught.value.value == code


def test_an_empty_cohort_gives_counts_of_zero_and_no_statistics(site_a, data_manager):
    s = outcomes.outcome_summary(user=data_manager)
    assert s["n_patients"] == 0 and s["responders"] == 0
    assert s["age_mean"] is None and s["wilcoxon_p"] is None and s["responder_rate_ci95"] is None
    assert outcomes.outcome_paragraph(s) == "No patients match this cohort."


@pytest.mark.parametrize("timepoint", ["last", "m12"])
def test_a_filter_matching_nobody_gives_an_empty_cohort_though_the_site_has_visits(
        timepoint, site_a, investigator, data_manager, settings):
    settings.REGISTRY_MIN_CELL = 1  # a one-patient cohort, not suppressed (tests/privacy)
    patient = make_patient(site_a, actor=data_manager)
    implant = make_implant(patient, actor=data_manager, therapy="SCS")
    make_visit(patient, actor=data_manager, nrs=8)
    make_visit(patient, implant, actor=data_manager, timepoint="m12", date_done=datetime.date(2021, 3, 1),
               nrs=3)
    make_event(patient, implant, actor=data_manager)
    s = outcomes.outcome_summary(user=investigator, therapy="DRG", timepoint=timepoint)
    assert s["n_patients"] == 0 and s["n_paired"] == 0 and s["patients_with_ae"] == 0
    assert s["explant_free_at_risk"]["1y"] == 0
    assert outcomes.outcome_summary(user=investigator, therapy="SCS", timepoint=timepoint)["n_paired"] == 1


# --- access and parameters -----------------------------------------------------


def test_a_nurse_sees_the_outcomes_of_her_own_site_only(site_a, site_b, nurse, data_manager):
    plan = plan_cohort(3, n=20)
    write_cohort(plan, {"AAA": site_a, "BBB": site_b}, data_manager)
    mine = outcomes.outcome_summary(user=nurse)
    rows, events = expected_rows(plan, site=("AAA",))
    assert_same(mine, expected_figures(rows, events), "nurse of AAA")
    assert mine["n_patients"] < outcomes.outcome_summary(user=data_manager)["n_patients"]


def test_a_user_without_a_role_gets_an_empty_cohort(site_a, outsider, data_manager):
    write_cohort(plan_cohort(5, n=6), {"AAA": site_a, "BBB": site_a}, data_manager)
    assert outcomes.outcome_summary(user=outsider)["n_patients"] == 0


def test_it_refuses_to_run_without_a_user_or_a_scoped_queryset(db):
    with pytest.raises(ValueError, match="user"):
        outcomes.outcome_summary(therapy="SCS")


@pytest.mark.parametrize("params, param, value", [
    ({"therapy": "SCS,XYZ"}, "therapy", "XYZ"),
    ({"etiology": "alien"}, "etiology", "alien"),
    ({"timepoint": "m0"}, "timepoint", "m0"),
    ({"timepoint": "yesterday"}, "timepoint", "yesterday"),
    ({"threshold": "0"}, "threshold", "0"),
    ({"threshold": "fifty"}, "threshold", "fifty"),
    ({"threshold": 101}, "threshold", 101),
    ({"implant_year_from": "20x5"}, "implant_year_from", "20x5"),
    ({"implant_year_from": 2020, "implant_year_to": 2010}, "implant_year_to", 2010),
    ({"pain_site": "elbow"}, "pain_site", "elbow"),
    ({"recall": "forever"}, "recall", "forever"),
    ({"group_by": "colour"}, "group_by", "colour"),
    ({"site": "ZZZ"}, "site", "ZZZ"),
    ({"therapie": "SCS"}, "therapie", "SCS"),
])
def test_it_refuses_a_bad_parameter_naming_it_and_its_value(params, param, value, data_manager):
    with pytest.raises(outcomes.OutcomeQueryError) as caught:
        outcomes.outcome_summary(user=data_manager, **params)
    assert caught.value.param == param
    assert caught.value.value == value
    assert str(value) in str(caught.value)


# --- bounded queries -----------------------------------------------------------


@pytest.mark.parametrize("params", [{}, {"pain_site": "residual_limb"}, {"group_by": "site", "site": "AAA"}])
def test_the_number_of_queries_does_not_grow_with_the_cohort(
        params, site_a, site_b, investigator, data_manager, django_assert_max_num_queries, settings):
    settings.REGISTRY_MIN_CELL = 1  # small cohorts on purpose: not suppressed (tests/privacy)
    sites = {"AAA": site_a, "BBB": site_b}
    write_cohort(plan_cohort(21, n=5), sites, data_manager)
    investigator = type(investigator).objects.get(pk=investigator.pk)  # no cached role
    with django_assert_max_num_queries(9):
        small = outcomes.outcome_summary(user=investigator, **params)
    write_cohort(plan_cohort(22, n=15), sites, data_manager)
    investigator = type(investigator).objects.get(pk=investigator.pk)
    with django_assert_max_num_queries(9):
        large = outcomes.outcome_summary(user=investigator, **params)
    size = (large.get("overall") or large)["n_patients"]
    assert size > (small.get("overall") or small)["n_patients"]
    assert size == Patient.objects.filter(site=site_a, implants__isnull=False).distinct().count()


def test_the_report_has_plot_data_for_the_dashboard(site_a, site_b, data_manager):
    plan = plan_cohort(8, n=12)
    write_cohort(plan, {"AAA": site_a, "BBB": site_b}, data_manager)
    report = outcomes.outcome_report(user=data_manager, max_pairs=5)
    summary = report["summary"]
    assert report["pairs_shown"] == 5 and len(report["pairs"]) == 5
    assert report["km"]["years"][0] == 0.0 and report["km"]["survival"][0] == 1.0
    assert np.all(np.diff(report["km"]["survival"]) <= 0)  # a survival curve never rises
    assert sum(g["n_patients"] for g in report["by_therapy"]) == summary["n_patients"]
    assert report["paragraph"] == outcomes.outcome_paragraph(summary)

"""Scores of every instrument for known answer sets, missing-item edge cases included, and
the EQ-5D-5L index in every value set against values computed here, independently of the
code under test, from the published coefficient tables."""

import itertools
import random

import pytest

from registry.services.proms.instruments import (
    INSTRUMENTS,
    SCORES,
    VALUE_SETS,
    answer_problem,
    check_value_set,
    is_scorable,
    score,
    value_set_for_country,
)

# Published decrements, levels 2-5 per dimension, and the constant taken off every state
# but 11111, typed again from the papers (NL Versteegh 2016 table 4, ENG Devlin 2018 table
# 5, US Pickard 2019 table 3, DE Ludwig 2018 table 3, BE Bouckaert 2022 table 4), as the
# R package eq5d (data-raw/VT.csv) holds them.
PUBLISHED = {
    "NL": (0.047, {"MO": [.035, .057, .166, .203], "SC": [.038, .061, .168, .168],
                   "UA": [.039, .087, .192, .192], "PD": [.066, .092, .360, .415],
                   "AD": [.070, .145, .356, .421]}),
    "ENG": (0.0, {"MO": [.058, .076, .207, .274], "SC": [.050, .080, .164, .203],
                  "UA": [.050, .063, .162, .184], "PD": [.063, .084, .276, .335],
                  "AD": [.078, .104, .285, .289]}),
    "US": (0.0, {"MO": [.096, .122, .237, .322], "SC": [.089, .107, .220, .261],
                 "UA": [.068, .101, .255, .255], "PD": [.060, .098, .318, .414],
                 "AD": [.057, .123, .299, .321]}),
    "DE": (0.0, {"MO": [.026, .042, .139, .224], "SC": [.050, .056, .169, .260],
                 "UA": [.036, .049, .129, .209], "PD": [.057, .109, .404, .612],
                 "AD": [.030, .082, .244, .356]}),
    "BE": (0.0376805, {"MO": [.031544398, .058561311, .178674496, .2267916],
                       "SC": [.023013325, .042723608, .1303526, .1654566],
                       "UA": [.025140523, .046672692, .142401521, .1807503],
                       "PD": [.067077669, .124527854, .379942857, .4822616],
                       "AD": [.061019419, .113280877, .345627574, .4387052]}),
}


def published_index(value_set: str, state: str) -> float:
    constant, table = PUBLISHED[value_set]
    if state == "11111":
        return 1.0
    value = 1 - constant
    for dim, level in zip(("MO", "SC", "UA", "PD", "AD"), state, strict=True):
        if level != "1":
            value -= table[dim][int(level) - 2]
    return value


def eq5d(state: str, value_set: str) -> float:
    answers = dict(zip(("mo", "sc", "ua", "pd", "ad"), map(int, state), strict=True))
    return score("eq5d5l", answers, value_set)["eq5d5l_index"]


@pytest.mark.parametrize("value_set,worst", [("NL", -0.446), ("ENG", -0.285), ("US", -0.573),
                                             ("DE", -0.661), ("BE", -0.532)])
def test_full_health_is_1_and_55555_is_the_published_worst(value_set, worst):
    assert eq5d("11111", value_set) == 1.0
    assert eq5d("55555", value_set) == worst


# Mixed states with the values the papers (and the eq5d package's tests) print.
@pytest.mark.parametrize("value_set,state,value", [
    ("ENG", "23245", 0.247), ("ENG", "11112", 0.922), ("ENG", "21111", 0.942),
    ("US", "21354", 0.090), ("US", "21111", 0.904), ("US", "11112", 0.943),
    ("DE", "12345", 0.141), ("DE", "21111", 0.974), ("DE", "11121", 0.943),
    ("NL", "55511", 0.390), ("NL", "44444", -0.289), ("NL", "21111", 0.918),
    ("BE", "15342", 0.309), ("BE", "54321", 0.491), ("BE", "22222", 0.755), ("BE", "44444", -0.215),
])
def test_mixed_states_match_the_published_values(value_set, state, value):
    assert eq5d(state, value_set) == value


@pytest.mark.parametrize("value_set", list(PUBLISHED))
def test_every_state_matches_the_coefficient_table(value_set):
    states = ["".join(s) for s in itertools.product("12345", repeat=5)]
    for state in random.Random(16).sample(states, 300) + ["11111", "55555", "12121", "51111"]:
        assert eq5d(state, value_set) == pytest.approx(round(published_index(value_set, state), 3),
                                                       abs=1e-9), state


def test_the_index_needs_all_five_dimensions_and_the_vas_stands_alone():
    assert score("eq5d5l", {"mo": 1, "sc": 1, "ua": 1, "pd": 2}) == {"eq5d5l_index": None,
                                                                       "eq5d5l_vas": None}
    assert score("eq5d5l", {"vas": 65}) == {"eq5d5l_index": None, "eq5d5l_vas": 65}
    assert not is_scorable("eq5d5l", {"mo": 1, "sc": 1, "ua": 1, "pd": 1, "ad": 1})


def test_the_value_set_comes_from_the_site_country_and_unknown_codes_are_refused():
    assert value_set_for_country("nl") == "NL" and value_set_for_country("GB") == "ENG"
    assert value_set_for_country("BE") == "BE" and value_set_for_country("FR") == "ENG"
    assert check_value_set("us") == "US"
    with pytest.raises(ValueError, match="'XX'.*NL, ENG, US, DE, BE"):
        check_value_set("XX")


def odi(*values):
    return score("odi", {f"s{n}": v for n, v in enumerate(values, start=1) if v is not None})["odi_score"]


def test_odi_is_the_sum_over_5_times_the_answered_sections():
    assert odi(*[0] * 10) == 0
    assert odi(*[5] * 10) == 100
    assert odi(3, 2, 1, 4, 0, 5, 2, 3, 1, 2) == 46.0  # 23 / 50
    assert odi(3, 2, 1, 4, 0, 5, 2, 3, 1, None) == 46.7  # 21 / 45 = 46.67
    assert odi(3, 2, 1, 4, 0, 5, 2, 3, None, None) == 50.0  # 20 / 40
    assert odi(3, 2, 1, 4, 0, 5, 2, None, None, None) is None  # 7 answered: fewer than 8


def test_bpi_severity_needs_all_four_and_interference_four_of_seven():
    severity = {"worst": 8, "least": 3, "average": 6, "now": 5}
    interference = {"general_activity": 7, "mood": 4, "walking": 6, "normal_work": 8, "relations": 2,
                    "sleep": 5, "enjoyment": 3}
    assert score("bpi_sf", {**severity, **interference}) == {"bpi_severity": 5.5,
                                                               "bpi_interference": 5.0}
    four = dict(list(interference.items())[:4])  # 25 / 4
    assert score("bpi_sf", four)["bpi_interference"] == 6.25
    three = dict(list(interference.items())[:3])
    assert score("bpi_sf", {**three, "worst": 8, "least": 3, "average": 6}) == {
        "bpi_severity": None, "bpi_interference": None}
    assert score("bpi_sf", {**interference, "mood": None})["bpi_interference"] == 5.17  # 31 / 6


def test_hads_odd_items_are_anxiety_even_depression_one_missing_prorated():
    answers = {f"q{n}": (3 if n % 2 else 1) for n in range(1, 15)}
    assert score("hads", answers) == {"hads_anxiety": 21, "hads_depression": 7}
    answers.update(q2=0, q4=2)
    assert score("hads", answers)["hads_depression"] == 7
    del answers["q2"]  # 7 over 6 items, x 7/6 = 8.17
    assert score("hads", answers) == {"hads_anxiety": 21, "hads_depression": 8.2}
    answers["q4"] = None  # a second depression item missing: no depression score
    assert score("hads", answers) == {"hads_anxiety": 21, "hads_depression": None}
    del answers["q1"]
    assert score("hads", answers)["hads_anxiety"] == 21.0  # 18 x 7/6
    del answers["q3"]
    assert score("hads", answers)["hads_anxiety"] is None


def test_pcs_and_pseq_are_totals_of_all_items():
    assert score("pcs", {f"q{n}": 4 for n in range(1, 14)}) == {"pcs_total": 52}
    assert score("pcs", {f"q{n}": 2 for n in range(1, 13)}) == {"pcs_total": None}
    assert score("pseq", {f"q{n}": n % 7 for n in range(1, 11)}) == {"pseq_total": 1 + 2 + 3 + 4 + 5 + 6
                                                                      + 0 + 1 + 2 + 3}
    assert score("pseq", {f"q{n}": 6 for n in range(1, 10)}) == {"pseq_total": None}


def test_answers_off_the_scale_or_to_unknown_items_name_the_value():
    assert answer_problem("odi", "s1", 5) is None
    assert "0-5; 6 is not on the scale" in answer_problem("odi", "s1", 6)
    assert "'s11' is not an item" in answer_problem("odi", "s11", 1)
    assert "1-5; 0 is not" in answer_problem("eq5d5l", "mo", 0)
    assert answer_problem("eq5d5l", "vas", 100) is None
    assert "Unknown instrument 'sf36'" in answer_problem("sf36", "q1", 1)
    assert "True" in answer_problem("hads", "q1", True)


def test_every_score_declares_its_rule_range_direction_and_citations():
    assert set(INSTRUMENTS) == {"eq5d5l", "odi", "bpi_sf", "hads", "pcs", "pseq"}
    assert set(SCORES) == {"eq5d5l_index", "eq5d5l_vas", "odi_score", "bpi_severity", "bpi_interference",
                           "hads_anxiety", "hads_depression", "pcs_total", "pseq_total"}
    for instrument in INSTRUMENTS.values():
        assert instrument.version and instrument.citation and "not held here" in instrument.licence
        for s in instrument.scores:
            assert s.rule and "(" in s.rule and s.direction
            assert set(s.items) <= set(instrument.item_codes)
            if s.mic:
                assert s.mic.citation
    for value_set in VALUE_SETS.values():
        assert "doi:" in value_set.citation

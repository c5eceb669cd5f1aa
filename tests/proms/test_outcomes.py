"""PROM outcomes: change from baseline, MIC, holistic responder, value set from the sites'
country, small-cell suppression (services.proms.outcomes)."""

import datetime

import pytest
from django.test import override_settings

from registry.services.outcomes import OutcomeQueryError
from registry.services.proms.answers import prom_answers_record
from registry.services.proms.instruments import VALUE_SETS
from registry.services.proms.outcomes import HOLISTIC_DEFINITION, prom_outcomes
from tests.factories import make_implant, make_patient, make_visit


def _odi(level):
    return {f"s{n}": level for n in range(1, 11)}


def _eq(level):
    return dict.fromkeys(("mo", "sc", "ua", "pd", "ad"), level) | {"vas": 50}


def _patient(site, actor, odi, eq, therapy="SCS", m12=True):
    patient = make_patient(site, actor=actor)
    implant = make_implant(patient, actor=actor, therapy=therapy)
    baseline = make_visit(patient, actor=actor)
    prom_answers_record(visit=baseline, instrument="odi", answers=_odi(odi[0]), actor=actor)
    prom_answers_record(visit=baseline, instrument="eq5d5l", answers=_eq(eq[0]), actor=actor)
    if m12:
        follow = make_visit(patient, implant, actor=actor, timepoint="m12",
                            date_done=datetime.date(2021, 3, 1))
        prom_answers_record(visit=follow, instrument="odi", answers=_odi(odi[1]), actor=actor)
        prom_answers_record(visit=follow, instrument="eq5d5l", answers=_eq(eq[1]), actor=actor)
    return patient


@pytest.fixture
def cohort(site_a, nurse):
    return [
        _patient(site_a, nurse, (3, 1), (3, 1)),  # ODI 60 -> 20, EQ 33333 -> 11111: responder
        _patient(site_a, nurse, (2, 2), (2, 2)),  # no change: impaired, not a responder
        _patient(site_a, nurse, (1, 1), (1, 1), therapy="DRG"),  # ODI 20 (not > 20), 11111: not impaired
    ]


def _score(cell, code):
    return next(s for s in cell["scores"] if s["score"] == code)


def test_change_mic_and_holistic_responder(cohort, data_manager):
    out = prom_outcomes(user=data_manager)
    overall = out["overall"]
    assert overall["n_patients"] == 3
    odi = _score(overall, "odi_score")
    assert odi["n_paired"] == 3
    assert odi["baseline_mean"] == pytest.approx(40.0)
    assert odi["change_mean"] == pytest.approx(-40 / 3)
    assert odi["change_sd"] == pytest.approx(23.094, abs=1e-3)
    # Direction-aware: ODI falls when better; only the 60 -> 20 patient reaches 10 points.
    assert odi["n_mic"] == 1 and odi["mic_rate"] == pytest.approx(1 / 3)
    assert odi["n_impaired"] == 2  # 60 and 40 are above 20 %; 20 is not
    assert "Ostelo" in odi["mic_citation"]
    index = _score(overall, "eq5d5l_index")
    nl = VALUE_SETS["NL"]
    expected = [nl.index(dict.fromkeys(("mo", "sc", "ua", "pd", "ad"), lv)) for lv in (3, 2, 1)]
    assert index["baseline_mean"] == pytest.approx(sum(expected) / 3, abs=1e-9)
    assert index["n_mic"] == 1  # EQ rises when better
    holistic = overall["holistic"]
    assert holistic["definition"] == HOLISTIC_DEFINITION and "Neuromodulation 2023" in holistic["definition"]
    assert (holistic["n_evaluable"], holistic["responders"], holistic["excluded_not_impaired"]) == (2, 1, 1)
    assert holistic["rate"] == pytest.approx(0.5)


def test_per_therapy_and_group_by(cohort, data_manager):
    out = prom_outcomes(user=data_manager, group_by="therapy")
    groups = {g["group"]: g for g in out["groups"]}
    assert groups["SCS"]["n_patients"] == 2 and groups["DRG"]["n_patients"] == 1
    assert _score(groups["SCS"], "odi_score")["n_mic"] == 1
    assert [g["group"] for g in out["by_therapy"]] == ["DRG", "SCS"]


def test_value_set_defaults_to_the_sites_country_and_is_stated(cohort, data_manager, site_b, nurse_b):
    out = prom_outcomes(user=data_manager)
    assert out["value_set"] == "NL" and "Versteegh" in out["value_set_note"]
    us = prom_outcomes(user=data_manager, value_set="us")
    assert us["value_set"] == "US"
    assert _score(us["overall"], "eq5d5l_index")["baseline_mean"] != \
        _score(out["overall"], "eq5d5l_index")["baseline_mean"]
    _patient(site_b, nurse_b, (3, 1), (3, 1))
    only_b = prom_outcomes(patients=None, user=nurse_b)
    assert only_b["value_set"] == "US"
    with pytest.raises(ValueError, match="Unknown EQ-5D-5L value set 'XX'"):
        prom_outcomes(user=data_manager, value_set="XX")


def test_missing_follow_up_and_timepoint(site_a, nurse, data_manager):
    _patient(site_a, nurse, (3, 1), (3, 1))
    _patient(site_a, nurse, (3, 1), (3, 1), m12=False)
    out = prom_outcomes(user=data_manager, timepoint="m12")
    odi = _score(out["overall"], "odi_score")
    assert (odi["n_baseline"], odi["n_paired"]) == (2, 1)
    assert out["overall"]["holistic"]["excluded_no_followup"] == 1
    assert _score(out["overall"], "pcs_total")["n_paired"] == 0
    assert _score(out["overall"], "pcs_total")["change_mean"] is None
    with pytest.raises(OutcomeQueryError):
        prom_outcomes(user=data_manager, timepoint="x")


@override_settings(REGISTRY_MIN_CELL=5)
def test_small_cells_are_suppressed_for_investigators(cohort, investigator, data_manager):
    out = prom_outcomes(user=investigator)
    assert out["overall"]["suppressed"] and out["overall"]["scores"] == []
    assert all(g["suppressed"] for g in out["by_therapy"])
    assert not prom_outcomes(user=data_manager)["overall"]["suppressed"]


def test_chunks_give_the_same_figures(cohort, data_manager, monkeypatch):
    from registry.services.proms import outcomes as module

    whole = prom_outcomes(user=data_manager)
    monkeypatch.setattr(module, "CHUNK", 1)
    assert prom_outcomes(user=data_manager) == whole


def test_pain_site_restricts_to_patients_with_that_pain_site(cohort, data_manager):
    from registry.models import PainScore, Visit

    visit = Visit.objects.filter(patient=cohort[0], timepoint="baseline").get()
    PainScore.objects.create(visit=visit, pain_site="back", recall="avg_7d", score=7)
    out = prom_outcomes(user=data_manager, pain_site="back")
    assert out["overall"]["n_patients"] == 1


# --- channels: REST API, dashboard, paragraph ---------------------------------------------

URL = "/api/v1/outcomes/proms/"


@pytest.fixture
def client_for():
    from rest_framework.test import APIClient

    from registry.services.tokens import api_token_create

    def build(user):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_create(user=user, label='test')}")
        return client

    return build


def test_the_api_gives_the_same_figures_and_refuses_bad_input(cohort, data_manager, client_for):
    client = client_for(data_manager)
    response = client.get(URL, {"group_by": "therapy"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["value_set"] == "NL" and "Versteegh" in body["value_set_note"]
    odi = _score(body["overall"], "odi_score")
    assert odi["n_mic"] == 1 and odi["change_mean"] == pytest.approx(-40 / 3)
    assert body["overall"]["holistic"]["responders"] == 1
    assert {g["group"] for g in body["groups"]} == {"SCS", "DRG"}
    bad = client.get(URL, {"value_set": "XX"})
    assert bad.status_code == 400 and "XX" in bad.json()["value_set"][0]
    bad = client.get(URL, {"therapy": "XYZ"})
    assert bad.status_code == 400 and "therapy" in bad.json()
    assert client.get(URL, {"value_set": "DE"}).json()["value_set"] == "DE"


def test_the_api_scopes_to_the_users_sites(cohort, nurse_b, client_for):
    body = client_for(nurse_b).get(URL).json()
    assert body["overall"]["n_patients"] == 0 and body["value_set"] == "US"


def test_the_dashboard_shows_the_prom_table_plot_and_paragraph(cohort, data_manager, client):
    client.force_login(data_manager)
    response = client.get("/admin/registry/outcomes/", {"value_set": "ENG"})
    assert response.status_code == 200
    page = response.content.decode()
    assert 'id="prom-outcomes"' in page and "Devlin" in page
    assert "reached the minimal important change" in page
    assert "holistic responders" in page and "EQ-5D-5L index by the value set ENG" in page
    assert "PROMs: minimal important change" in page  # the plot
    default = client.get("/admin/registry/outcomes/").content.decode()
    assert "value set NL" in default


def test_the_paragraph_states_figures_and_value_set(cohort, data_manager):
    from registry.services.outcomes import prom_paragraph

    text = prom_paragraph(prom_outcomes(user=data_manager))
    assert "ODI (%): 40.0 ± 20.0 at baseline and 26.7 ± 11.5 at follow-up (change -13.3, n = 3" in text
    assert "33 % (1/3) reached the minimal important change (10 points)" in text
    assert "50 % (1/2) of patients with at least one domain impaired" in text
    assert text.endswith("EQ-5D-5L index by the value set NL.")


def test_the_dashboard_leaves_the_proms_out_of_a_cohort_without_them(site_a, nurse, data_manager, client):
    patient = make_patient(site_a, actor=nurse)
    make_implant(patient, actor=nurse)
    make_visit(patient, actor=nurse)
    client.force_login(data_manager)
    page = client.get("/admin/registry/outcomes/").content.decode()
    assert 'id="outcome-summary"' in page and 'id="prom-outcomes"' not in page
    assert "PROMs: minimal important change" not in page


def test_the_outcomes_command_prints_the_prom_outcomes(cohort, capsys):
    import json

    from django.core.management import CommandError, call_command

    call_command("outcomes", "--proms")
    out = capsys.readouterr().out
    assert "value set NL" in out and "ODI (%): n=3" in out and "holistic responders" in out
    call_command("outcomes", "--proms", "--json", "--value-set", "DE")
    assert json.loads(capsys.readouterr().out)["value_set"] == "DE"
    with pytest.raises(CommandError, match="--value-set 'XX'"):
        call_command("outcomes", "--proms", "--value-set", "XX")

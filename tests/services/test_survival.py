"""Cumulative incidence of explant per cause (Aalen-Johansen, death competing) and IPG
longevity (Kaplan-Meier): the estimators against a hand computation and lifelines, and
the registry's censoring rules on a cohort built through the services."""

import datetime

import numpy as np
import pytest
from lifelines import AalenJohansenFitter, KaplanMeierFitter

from registry.models import ContactAttempt, DeviceComponent, Disposition, DispositionStatus, Implant, Patient
from registry.services.audit import system_user
from registry.services.components import component_save
from registry.services.disposition import contact_attempt_record, disposition_record
from registry.services.implants import implant_save
from registry.services.outcomes.analysis import _load, outcome_query_clean
from registry.services.outcomes.survival import (
    CENSORED,
    DAYS_PER_YEAR,
    DEATH,
    aalen_johansen,
    explant_incidence,
    explant_times,
    ipg_longevity,
    kaplan_meier,
)
from tests.factories import make_implant, make_patient, make_visit

D = datetime.date


def test_aalen_johansen_equals_a_hand_computation_with_ties():
    # 6 subjects; at t=2 one explant (infection) and one censoring tie; a death at 3.
    times = [1, 2, 2, 3, 4, 5]
    causes = ["infection", "infection", CENSORED, DEATH, "loss_of_efficacy", CENSORED]
    at, cif = aalen_johansen(times, causes)
    assert list(at) == [1, 2, 3, 4]
    # n: 6, 5, 3, 2. S: 5/6, 5/6*4/5=4/6, 4/6*2/3=8/18, 8/18*1/2=4/18.
    # CIF_infection = 1/6 + 5/6*1/5 = 2/6; CIF_death at 3 = 4/6*1/3 = 4/18;
    # CIF_loe at 4 = 8/18*1/2 = 4/18.
    assert cif["infection"] == pytest.approx([1 / 6, 2 / 6, 2 / 6, 2 / 6])
    assert cif[DEATH] == pytest.approx([0, 0, 4 / 18, 4 / 18])
    assert cif["loss_of_efficacy"] == pytest.approx([0, 0, 0, 4 / 18])
    # The causes and the survival add up to one.
    assert sum(c[-1] for c in cif.values()) + 4 / 18 == pytest.approx(1.0)


def test_kaplan_meier_equals_a_hand_computation():
    at, survival = kaplan_meier([1, 2, 2, 3, 4], [True, True, False, False, True])
    assert list(at) == [1, 2, 4]
    assert survival == pytest.approx([4 / 5, 4 / 5 * 3 / 4, 4 / 5 * 3 / 4 * 0])


def test_the_estimators_equal_lifelines_on_a_random_cohort():
    rng = np.random.default_rng(20)
    n = 200
    times = rng.exponential(5.0, n)
    codes = rng.choice([0, 1, 2, 3], size=n, p=[0.4, 0.3, 0.2, 0.1])  # 0 censored, 3 death
    names = {0: CENSORED, 1: "infection", 2: "loss_of_efficacy", 3: DEATH}
    at, cif = aalen_johansen(times, [names[c] for c in codes])
    for code in (1, 2, 3):
        fitter = AalenJohansenFitter(calculate_variance=False).fit(times, codes, event_of_interest=code)
        theirs = fitter.cumulative_density_.iloc[:, 0]
        assert cif[names[code]] == pytest.approx(theirs.reindex(at).to_numpy(), abs=1e-12)
    events = codes != 0
    at, survival = kaplan_meier(times, events)
    km = KaplanMeierFitter().fit(times, events).survival_function_.iloc[:, 0]
    assert survival == pytest.approx(km.reindex(at).to_numpy(), abs=1e-12)


def implanted(site, implant_date, **kwargs):
    patient = make_patient(site, consent_date=D(2015, 1, 1))
    implant = make_implant(patient, trial_start=implant_date - datetime.timedelta(days=20),
                           trial_end=implant_date - datetime.timedelta(days=10),
                           implant_date=implant_date, **kwargs)
    return patient, implant


def explanted(implant, on, code):
    implant.explant_date, implant.explant_reason_code = on, code
    return implant_save(implant=implant, actor=system_user(), reason="explant")


def disposed(patient, status, on, **fields):
    if status == DispositionStatus.DECEASED:
        fields = {"death_cause": "cardiovascular", "death_device_relatedness": "not_related",
                  "death_procedure_relatedness": "not_related", **fields}
    if status == DispositionStatus.WITHDRAWN:
        fields = {"withdrawal_level": "no_data", **fields}
    return disposition_record(disposition=Disposition(patient=patient, status=status, date=on,
                                                      **fields),
                              actor=system_user(), reason="test")


START = D(2016, 1, 1)


def day(n):
    return START + datetime.timedelta(days=n)


@pytest.fixture
def cohort(site_a):
    """Ten patients implanted on START, each with a known end (days after START):
    explants (infection 100, loss of efficacy 400, infection 700, battery 900), a death
    at 300 (competing), a death at 800 after an explant at 500 (explant counts), a
    withdrawal at 600 (censored there, its explant at 650 not counted), a patient lost at
    1000 with a last visit at 200 (censored at 200), an active one last seen at 1100, a
    transfer out of the registry at 450."""
    site = site_a
    expected = []  # (days, cause)
    p, i = implanted(site, START)
    explanted(i, day(100), "infection")
    expected.append((100, "infection"))
    p, i = implanted(site, START)
    explanted(i, day(400), "loss_of_efficacy")
    expected.append((400, "loss_of_efficacy"))
    p, i = implanted(site, START)
    explanted(i, day(700), "infection")
    expected.append((700, "infection"))
    p, i = implanted(site, START)
    explanted(i, day(900), "battery_depletion")
    expected.append((900, "battery_depletion"))
    p, i = implanted(site, START)
    disposed(p, DispositionStatus.DECEASED, day(300))
    expected.append((300, DEATH))
    p, i = implanted(site, START)
    explanted(i, day(500), "lead_migration")
    disposed(p, DispositionStatus.DECEASED, day(800))
    expected.append((500, "lead_migration"))
    p, i = implanted(site, START)
    make_visit(p, i, timepoint="m3", date_done=day(90), nrs=3)
    disposed(p, DispositionStatus.WITHDRAWN, day(600))
    explanted(i, day(650), "pain_resolved")
    expected.append((600, CENSORED))
    p, i = implanted(site, START)
    make_visit(p, i, timepoint="m6", date_done=day(200), nrs=3)
    for k in range(3):
        contact_attempt_record(attempt=ContactAttempt(patient=p, date=day(950 + k), method="phone",
                                                      outcome="no_answer"), actor=system_user())
    disposed(p, DispositionStatus.LOST, day(1000))
    expected.append((200, CENSORED))
    p, i = implanted(site, START)
    make_visit(p, i, timepoint="m36", date_done=day(1100), nrs=3)
    expected.append((1100, CENSORED))
    p, i = implanted(site, START)
    disposed(p, DispositionStatus.TRANSFERRED, day(450))
    expected.append((450, CENSORED))
    return site, expected


def test_the_registry_censors_as_it_says(cohort):
    site, expected = cohort
    p = _load(outcome_query_clean(), Patient.objects.all()).patients
    times, causes = explant_times(p, Patient.objects.all())
    got = sorted(zip((times * DAYS_PER_YEAR).round().astype(int).tolist(), causes.tolist(),
                     strict=True))
    assert got == sorted(expected)


def test_cumulative_incidence_equals_lifelines_with_death_competing(cohort):
    site, expected = cohort
    result = explant_incidence(patients=Patient.objects.all())
    assert result["n_patients"] == 10 and result["censored"] == 4
    assert "competing" in result["censoring"] and "censored" in result["censoring"]
    names = sorted({cause for _, cause in expected if cause != CENSORED})
    codes = {name: k + 1 for k, name in enumerate(names)}
    durations = np.array([d / DAYS_PER_YEAR for d, _ in expected])
    observed = np.array([codes.get(cause, 0) for _, cause in expected])
    by_cause = {c["cause"]: c for c in result["causes"]}
    assert set(by_cause) == set(names) and by_cause[DEATH]["competing"]
    for name, code in codes.items():
        fitter = AalenJohansenFitter(calculate_variance=False).fit(durations, observed,
                                                                   event_of_interest=code)
        theirs = fitter.cumulative_density_.iloc[:, 0]
        curve = by_cause[name]["curve"]
        assert curve["values"][1:] == pytest.approx(theirs.reindex(curve["years"][1:]).to_numpy())
        for years in (1, 2):
            assert by_cause[name]["incidence"][f"{years}y"] == pytest.approx(
                float(theirs[theirs.index <= years].iloc[-1]))
    # By hand: infection at 100 days (10 at risk) and at 700 (3 at risk: 700, 900, 1100),
    # S(700-) = 9/10 (100) * 8/9 (300 death) * 6/7 (400) * 5/6 (500) after the censorings
    # at 200, 450 and 600 = 4/7 (as the product gives).
    s_700 = (9 / 10) * (7 / 8) * (6 / 7) * (4 / 5)
    assert by_cause["infection"]["incidence"]["2y"] == pytest.approx(1 / 10 + s_700 / 3)
    assert by_cause["infection"]["incidence"]["5y"] is None  # nobody followed 5 years
    assert by_cause["infection"]["events"] == 2


def test_ipg_longevity_per_model_equals_lifelines(cohort, db):
    site, _ = cohort
    implants = list(Implant.objects.order_by("pk"))
    # Model A: depleted at 900 (explant 900), in place at the 300 death (censored), in
    # place until the active patient's last visit 1100; model B: removed for infection at
    # 100 (censored), in place for the transfer at 450.
    plan = [(0, "B", day(100), "infection"), (3, "A", day(900), "battery_depletion"),
            (4, "A", None, ""), (8, "A", None, ""), (9, "B", None, "")]
    for index, model, removed_on, reason in plan:
        component_save(component=DeviceComponent(
            implant=implants[index], kind="ipg", manufacturer="Acme", model=model,
            removed_on=removed_on, removal_reason=reason), actor=system_user())
    result = ipg_longevity(patients=Patient.objects.all())
    models = {m["model"]: m for m in result["models"]}
    assert set(models) == {"Acme A", "Acme B"}
    a = models["Acme A"]
    assert (a["n_ipgs"], a["depletions"]) == (3, 1)
    durations = np.array([900, 300, 1100]) / DAYS_PER_YEAR
    km = KaplanMeierFitter().fit(durations, [True, False, False]).survival_function_.iloc[:, 0]
    assert a["curve"]["values"][1:] == pytest.approx(km.reindex(a["curve"]["years"][1:]).to_numpy())
    # By hand: censored at 300 days, depleted at 900 with 2 at risk: 1/2 after 2.46 years.
    assert a["survival"]["2y"] == pytest.approx(1.0) and a["curve"]["values"][-1] == pytest.approx(0.5)
    assert a["survival"]["5y"] is None and a["median_years"] == pytest.approx(900 / DAYS_PER_YEAR)
    assert models["Acme B"]["depletions"] == 0
    assert "battery depletion" in result["censoring"]


def test_an_investigator_sees_a_small_cohort_suppressed(cohort, investigator, settings):
    settings.REGISTRY_MIN_CELL = 11
    result = explant_incidence(user=investigator)
    assert result["suppressed"] and result["causes"] == [] and result["n_patients"] is None

"""Demo and benchmark data carry PROM answers at the protocol's timepoints."""

import datetime
from collections import Counter

import pytest
from django.core.management import call_command

from registry.models import PromAnswer, Visit
from registry.services.audit import system_user
from registry.services.proms.answers import answers_by_visit
from registry.services.proms.instruments import INSTRUMENTS, expected_instruments, schedules_for, score
from registry.services.scheduling import protocol_for
from registry.services.synthetic import synthetic_registry

pytestmark = pytest.mark.django_db
TODAY = datetime.date(2026, 12, 1)


def test_answers_are_where_the_protocol_asks_plausible_and_sometimes_missing():
    counts = synthetic_registry(patients=40, seed=11, today=TODAY, actor=system_user())
    assert counts["prom_answers"] == PromAnswer.objects.count() > 1000
    held = answers_by_visit(PromAnswer.objects.values_list("visit_id", flat=True).distinct())
    visits = {v.pk: v for v in Visit.objects.filter(pk__in=held).select_related("patient__site")}
    by_timepoint = Counter()
    for visit_id, instruments in held.items():
        visit = visits[visit_id]
        schedules = schedules_for(protocol_for(site=visit.patient.site))
        assert set(instruments) <= set(expected_instruments(visit, schedules=schedules)), visit.timepoint
        for code in instruments:
            by_timepoint[(code, visit.timepoint)] += 1
    assert by_timepoint[("pcs", "baseline")] and by_timepoint[("pcs", "m12")]
    assert not by_timepoint[("pcs", "m3")] and not by_timepoint[("hads", "m3")]
    # Some items and some instruments are left out, as in real data.
    incomplete = sum(1 for instruments in held.values() for code, given in instruments.items()
                     if len(given) < len(INSTRUMENTS[code].items))
    assert incomplete > 0
    # Plausible: patients feel better after the implant, on average.
    def mean(timepoint, code):
        values = [score("eq5d5l", held[v]["eq5d5l"], "NL")[code] for v, visit in visits.items()
                  if visit.timepoint == timepoint and "eq5d5l" in held[v]]
        values = [x for x in values if x is not None]
        return sum(values) / len(values)

    assert mean("baseline", "eq5d5l_index") < mean("m12", "eq5d5l_index")
    assert mean("baseline", "eq5d5l_vas") < mean("m12", "eq5d5l_vas")
    assert PromAnswer.history.count() == PromAnswer.objects.count()


def test_the_same_seed_gives_the_same_answers():
    synthetic_registry(patients=5, seed=4, today=TODAY, actor=system_user())
    first = sorted(PromAnswer.objects.values_list("visit__patient__registry_id", "visit__timepoint",
                                                  "instrument", "item", "value"))
    PromAnswer.objects.all().delete()
    Visit.objects.all().delete()
    from registry.models import Implant, Patient, Site

    Implant.objects.all().delete()
    Patient.objects.all().delete()
    Site.objects.update(patient_sequence=0)
    synthetic_registry(patients=5, seed=4, today=TODAY, actor=system_user())
    again = sorted(PromAnswer.objects.values_list("visit__patient__registry_id", "visit__timepoint",
                                                  "instrument", "item", "value"))
    assert first == again and first


def test_seed_synthetic_says_how_many_answers_it_wrote(capsys):
    call_command("seed_synthetic", "--patients", "3", "--seed", "2", "--quiet")
    assert "prom answers" in capsys.readouterr().out


def test_demo_answers_round_trip_through_a_bundle(data_manager, tmp_path):
    from registry.services.bundles import bundle_export
    from registry.services.imports import bundle_import
    from tests.commands.test_export_registry import empty_the_registry

    synthetic_registry(patients=12, seed=5, today=TODAY, actor=system_user())
    key = ("visit__patient__registry_id", "visit__timepoint", "visit__implant__ref", "instrument", "item",
           "value")
    before = sorted(PromAnswer.objects.values_list(*key))
    assert len(before) > 300
    bundle_export(target=tmp_path / "out", actor=data_manager)
    empty_the_registry()
    report = bundle_import(source=tmp_path / "out", actor=data_manager, reason="round trip")
    assert report.ok, report.errors[:5]
    assert sorted(PromAnswer.objects.values_list(*key)) == before
    bundle_export(target=tmp_path / "again", actor=data_manager)
    assert (tmp_path / "again" / "prom_answers.csv").read_bytes() == \
        (tmp_path / "out" / "prom_answers.csv").read_bytes()

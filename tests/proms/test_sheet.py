"""The derived PROM sheet (models.PromSheet) follows the answers in every channel that writes
them (answer service, admin page, ePRO link, bundle import, synthetic registry, deletes, a
history revert), the read paths read it, and `manage.py prom_sheets` finds and mends a sheet
written around the application (issue 21)."""

import datetime

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from registry.models import EproLink, PromAnswer, PromSheet, Visit
from registry.services import datasets, epro
from registry.services.audit import record_delete, system_user
from registry.services.bundles import bundle_export
from registry.services.imports import bundle_import
from registry.services.proms.answers import prom_answers_record, prom_item_missing_record
from registry.services.proms.instruments import score
from registry.services.proms.stored import sheets_differing, sheets_rebuild
from registry.services.synthetic import synthetic_registry
from tests.commands.test_export_registry import empty_the_registry
from tests.epro.conftest import answers, open_m3
from tests.epro.test_pages import new_link
from tests.factories import make_implant, make_patient, make_visit

HADS = {f"q{n}": n % 4 for n in range(1, 15)}


def sheet_of(visit) -> PromSheet:
    return PromSheet.objects.get(visit_id=visit.pk)


def assert_in_step():
    assert list(sheets_differing()) == []


@pytest.fixture
def baseline(patient_a):
    return make_visit(patient_a)


def test_the_answer_service_writes_the_sheet_once_per_call(baseline, nurse):
    table = PromSheet._meta.db_table
    with CaptureQueriesContext(connection) as queries:
        prom_answers_record(visit=baseline, instrument="hads", answers=HADS, actor=nurse)
    inserts = [q["sql"] for q in queries.captured_queries if q["sql"].startswith(f'INSERT INTO "{table}"')]
    assert len(inserts) == 1  # 14 answers, one rewrite of the sheet
    sheet = sheet_of(baseline)
    expected = score("hads", HADS, "NL")
    assert sheet.hads_anxiety == expected["hads_anxiety"]
    assert sheet.hads_depression == expected["hads_depression"]
    assert sheet.rows_hads == 14 and sheet.item_hads_q3 == 3 and sheet.rows_odi == 0
    assert sheet.updated_hads == PromAnswer.objects.filter(visit=baseline).latest("updated_at").updated_at
    assert_in_step()


def test_the_admin_page_keeps_the_sheet(client, nurse, baseline):
    client.force_login(nurse)
    url = reverse("admin:registry_visit_proms", args=[baseline.pk, "eq5d5l"])
    response = client.post(url, {"mo": "2", "sc": "1", "ua": "3", "pd": "4", "ad": "2", "vas": "55"})
    assert response.status_code == 302
    sheet = sheet_of(baseline)
    # The page's own figure (NL value set, tests/proms/test_admin_entry.py) and every other set.
    assert sheet.eq5d5l_index_nl == 0.401 and sheet.item_eq5d5l_pd == 4 and sheet.eq5d5l_vas == 55
    given = {"mo": 2, "sc": 1, "ua": 3, "pd": 4, "ad": 2, "vas": 55}
    for value_set in ("eng", "us", "de", "be"):
        expected = score("eq5d5l", given, value_set.upper())["eq5d5l_index"]
        assert getattr(sheet, f"eq5d5l_index_{value_set}") == expected
    response = client.post(url, {"mo": "5", "sc": "1", "ua": "3", "pd": "4", "ad": "2", "vas": "55",
                                 "change_reason": "re-read the form"})
    assert response.status_code == 302
    assert sheet_of(baseline).item_eq5d5l_mo == 5
    assert_in_step()


def test_an_epro_submission_keeps_the_sheet(site_a):
    _, visit = open_m3(site_a)
    new_link(visit)
    outcome = epro.answers_submit(link=EproLink.objects.get(),
                                  data=answers(visit, eq5d5l_mo=2, eq5d5l_vas=70, bpi_sf_worst=6))
    assert outcome is not None
    sheet = sheet_of(visit)
    assert sheet.item_eq5d5l_mo == 2 and sheet.eq5d5l_vas == 70 and sheet.item_bpi_sf_worst == 6
    assert_in_step()


def test_an_imported_bundle_brings_its_sheets(site_a, nurse, data_manager, tmp_path):
    patient = make_patient(site_a)
    implant = make_implant(patient)
    base = make_visit(patient)
    m6 = make_visit(patient, implant, timepoint="m6", date_done=datetime.date(2020, 9, 2), nrs=3)
    prom_answers_record(visit=base, instrument="hads", answers=HADS, actor=nurse)
    prom_answers_record(visit=m6, instrument="bpi_sf", answers={"worst": 5, "least": 1, "average": 3,
                                                                "now": 2, "sleep": 4}, actor=nurse)
    names = [f.attname for f in PromSheet._meta.concrete_fields
             if f.attname != "visit_id" and not f.attname.startswith("updated_")]
    before = sorted(PromSheet.objects.values_list("visit__timepoint", *names))
    bundle_export(target=tmp_path / "bundle", actor=data_manager)
    empty_the_registry()
    assert not PromSheet.objects.exists()
    report = bundle_import(source=tmp_path / "bundle", actor=data_manager, reason="round trip")
    assert report.ok, report.errors
    assert sorted(PromSheet.objects.values_list("visit__timepoint", *names)) == before
    assert_in_step()


def test_a_reason_a_delete_a_revert_and_a_visit_delete_keep_the_sheet(baseline, nurse):
    prom_answers_record(visit=baseline, instrument="hads", answers=HADS, actor=nurse)
    full = sheet_of(baseline).hads_anxiety
    prom_item_missing_record(visit=baseline, instrument="hads", item="q1", why="declined", actor=nurse,
                             reason="the patient declined q1")
    sheet = sheet_of(baseline)
    assert sheet.item_hads_q1 is None and sheet.rows_hads == 14  # a reason is a row, never a value
    assert sheet.hads_anxiety == score("hads", {**HADS, "q1": None}, "NL")["hads_anxiety"] != full
    answer = PromAnswer.objects.get(visit=baseline, item="q3")
    record_delete(answer, actor=nurse, reason="entered on the wrong visit")
    assert sheet_of(baseline).rows_hads == 13 and sheet_of(baseline).item_hads_q3 is None
    # A history revert (simple-history's admin saves the old instance).
    PromAnswer.history.filter(visit_id=baseline.pk, item="q3").earliest().instance.save()
    assert sheet_of(baseline).item_hads_q3 == 3
    assert_in_step()
    record_delete(Visit.objects.get(pk=baseline.pk), actor=nurse, reason="duplicate visit")
    assert not PromSheet.objects.exists()


@pytest.mark.django_db
def test_the_synthetic_registry_has_its_sheets():
    synthetic_registry(patients=4, seed=3, actor=system_user())
    with_answers = PromAnswer.objects.values("visit").distinct().count()
    assert with_answers > 0 and PromSheet.objects.count() == with_answers
    assert_in_step()


def test_the_exports_read_the_sheet_and_the_command_finds_and_mends_one_written_around(
        baseline, nurse, capsys):
    prom_answers_record(visit=baseline, instrument="hads", answers=HADS, actor=nurse)
    names = [c.name for c in datasets.VISITS.columns_for()]

    def exported():
        row = datasets.VISITS.select(Visit.objects.filter(pk=baseline.pk), value_set="NL").get()
        return dict(zip(names, row, strict=True))

    assert exported()["hads_anxiety"] == sheet_of(baseline).hads_anxiety
    # Written around the application: an UPDATE sends no signal.
    PromAnswer.objects.filter(visit=baseline, item="q1").update(value=0)
    with pytest.raises(SystemExit) as exit_status:
        call_command("prom_sheets", "--check")
    assert exit_status.value.code == 1
    out = capsys.readouterr().out
    assert f"visit {baseline.pk}: item_hads_q1 is 1, the answers give 0" in out
    assert f"visit {baseline.pk}: hads_anxiety is " in out and "2 difference(s)" in out  # q1 is an A item
    stale = exported()["hads_anxiety"]
    call_command("prom_sheets", "--rebuild")
    assert "1 PROM sheet(s) rewritten" in capsys.readouterr().out
    call_command("prom_sheets", "--check")
    assert "Every PROM sheet equals its answers." in capsys.readouterr().out
    assert exported()["hads_anxiety"] == score("hads", {**HADS, "q1": 0}, "NL")["hads_anxiety"] != stale


def test_a_rebuild_writes_every_sheet_again(baseline, nurse):
    prom_answers_record(visit=baseline, instrument="hads", answers=HADS, actor=nurse)
    prom_answers_record(visit=baseline, instrument="pcs", answers={f"q{n}": 2 for n in range(1, 14)},
                        actor=nurse)
    before = PromSheet.objects.values().get()
    PromSheet.objects.all().delete()
    assert list(sheets_differing()) == [(baseline.pk, "sheet", None, "missing")]
    assert sheets_rebuild() == 1
    assert PromSheet.objects.values().get() == before


@pytest.mark.django_db
def test_the_command_names_a_bad_option():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="--show: give a number of differences >= 0, not -2"):
        call_command("prom_sheets", "--check", "--show", "-2")
    with pytest.raises(CommandError, match="one of the arguments --check --rebuild is required"):
        call_command("prom_sheets")


def test_a_queryset_delete_of_answers_rewrites_each_sheet_once(baseline, nurse):
    prom_answers_record(visit=baseline, instrument="hads", answers=HADS, actor=nurse)
    prom_answers_record(visit=baseline, instrument="pcs", answers={f"q{n}": 2 for n in range(1, 14)},
                        actor=nurse)
    table = PromSheet._meta.db_table
    with CaptureQueriesContext(connection) as queries:
        PromAnswer.objects.filter(visit=baseline, instrument="hads").delete()
    rewrites = [q for q in queries.captured_queries if q["sql"].startswith(f'INSERT INTO "{table}"')]
    assert len(rewrites) == 1  # 14 answers deleted, one rewrite
    sheet = sheet_of(baseline)
    assert sheet.rows_hads == 0 and sheet.hads_anxiety is None and sheet.pcs_total == 26
    assert_in_step()

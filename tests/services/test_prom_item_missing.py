"""Missing-data reasons per PROM item: beside the value (PromAnswer.value_missing), never
scored, answering the PROM data check, and carried by every channel that holds PROM items
(CSV/JSON of the long PROM export, SPSS user-missing and Stata extended missing values
read back with pyreadstat, the bundle, round trip)."""

import io
import json
import os

import pyreadstat
import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from registry.models import DataQuery, PromAnswer, QueryStatus, Visit, VisitStatus
from registry.services import checks, exports
from registry.services.audit import record_save, system_user
from registry.services.proms import instruments
from registry.services.proms.answers import prom_answers_record, prom_item_missing_record
from tests.factories import make_implant, make_patient, make_visit


@pytest.fixture
def m3(site_a, nurse):
    patient = make_patient(site_a, actor=nurse)
    make_visit(patient, actor=nurse)
    implant = make_implant(patient, actor=nurse)
    visit = Visit.objects.get(implant=implant, timepoint="m3")
    visit.status, visit.date_done, visit.nrs = VisitStatus.COMPLETED, visit.target_date, 4
    return record_save(visit, actor=nurse, reason="test")


def odi(visit, nurse, answered=7, reasons=("declined", "not_asked", "unknown")):
    prom_answers_record(visit=visit, instrument="odi", actor=nurse,
                        answers={f"s{n}": 2 for n in range(1, answered + 1)})
    for n, why in zip(range(answered + 1, 11), reasons, strict=False):
        prom_item_missing_record(visit=visit, instrument="odi", item=f"s{n}", why=why, actor=nurse)


def test_a_row_holds_the_answer_or_its_reason(m3):
    with pytest.raises(ValidationError) as error:
        PromAnswer(visit=m3, instrument="odi", item="s1", value=2, value_missing="declined").full_clean()
    assert "value_missing" in error.value.message_dict
    with pytest.raises(ValidationError) as error:
        PromAnswer(visit=m3, instrument="odi", item="s1").full_clean()
    assert "value" in error.value.message_dict
    with pytest.raises(ValidationError) as error:  # a visit reason is not an item's
        PromAnswer(visit=m3, instrument="odi", item="s1", value_missing="too_ill").full_clean()
    assert "value_missing" in error.value.message_dict
    PromAnswer(visit=m3, instrument="odi", item="s1", value_missing="declined").full_clean()
    # The database holds the rule too (bulk writes).
    row = record_save(PromAnswer(visit=m3, instrument="odi", item="s2", value=3),
                      actor=system_user(), reason="test")
    with pytest.raises(IntegrityError), transaction.atomic():
        PromAnswer.objects.filter(pk=row.pk).update(value_missing="declined")


def test_a_reason_never_scores_and_an_answer_replaces_it(m3, nurse):
    odi(m3, nurse)
    held = {a.item: a.value for a in m3.prom_answers.all()}
    assert held["s8"] is None and instruments.score("odi", held)["odi_score"] is None
    prom_answers_record(visit=m3, instrument="odi", answers={"s8": 1}, actor=nurse,
                        reason="found on paper")
    row = m3.prom_answers.get(item="s8")
    assert (row.value, row.value_missing) == (1, "")


def test_reasons_for_every_missing_item_answer_the_prom_check(m3, nurse):
    odi(m3, nurse, reasons=("declined", "not_asked"))  # s10: no answer, no reason
    run = checks.checks_run(rules=["prom_items_missing"])
    assert run.opened == 1
    query = DataQuery.objects.get(rule="prom_items_missing")
    assert "(s10)" in query.messages.first().text
    prom_item_missing_record(visit=m3, instrument="odi", item="s10", why="declined", actor=nurse)
    assert checks.checks_run(rules=["prom_items_missing"]).closed == 1
    query.refresh_from_db()
    assert query.status == QueryStatus.CLOSED


def rows(fmt, queryset):
    stream = exports.export_csv_stream if fmt == "csv" else exports.export_json_stream
    return b"".join(c if isinstance(c, bytes) else c.encode()
                    for c in stream("prom-answers", queryset, dates="relative")).decode()


def test_csv_and_json_carry_value_missing(m3, nurse):
    odi(m3, nurse)
    answers = PromAnswer.objects.all()
    data = {r["item"]: r for r in json.loads(rows("json", answers))}
    assert (data["s8"]["value"], data["s8"]["value_missing"]) == (None, "declined")
    assert (data["s1"]["value"], data["s1"]["value_missing"]) == (2, None)
    header = rows("csv", answers).splitlines()[0].split(",")
    assert header[header.index("value") + 1] == "value_missing"


def read(fmt, **kwargs):
    path = exports.export_file("prom-answers", PromAnswer.objects.all(), fmt)
    try:
        return (pyreadstat.read_sav if fmt == "sav" else pyreadstat.read_dta)(path, **kwargs)
    finally:
        os.unlink(path)


def test_spss_and_stata_hold_the_item_reasons_as_labelled_missing_values(m3, nurse):
    odi(m3, nurse)
    frame, meta = read("sav", user_missing=True)
    by_item = dict(zip(frame["item"], frame["value"], strict=True))
    assert (by_item["s1"], by_item["s8"], by_item["s9"], by_item["s10"]) == (2.0, -2.0, -1.0, -3.0)
    assert meta.missing_ranges["value"] == [{"lo": -5.0, "hi": -1.0}]
    assert meta.variable_value_labels["value"][-2.0] == "Asked but declined"
    frame, meta = read("dta", user_missing=True)
    by_item = dict(zip(frame["item"], frame["value"], strict=True))
    assert (by_item["s8"], by_item["s9"]) == ("b", "a")
    assert meta.variable_value_labels["value"]["c"] == "Unknown"


def test_the_bundle_carries_the_item_reasons_and_round_trips(m3, nurse, tmp_path):
    from django.core.management import call_command

    from tests.commands.test_export_registry import empty_the_registry, export, files

    odi(m3, nurse)
    export(tmp_path / "first")
    written = files(tmp_path / "first")
    lines = written["prom_answers.csv"].decode().splitlines()
    assert lines[0].endswith("value,value_missing") and any(line.endswith(",declined") for line in lines)
    empty_the_registry()
    call_command("import_registry", str(tmp_path / "first"), "--quiet", stdout=io.StringIO())
    back = {a.item: (a.value, a.value_missing) for a in PromAnswer.objects.all()}
    assert (back["s1"], back["s8"], back["s9"]) == ((2, ""), (None, "declined"), (None, "not_asked"))
    export(tmp_path / "second")
    assert files(tmp_path / "second") == written

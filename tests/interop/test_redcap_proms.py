"""REDCap: one instrument per PROM in the data dictionary and the records; items as
answered, scores computed on read with the value set of the user's sites' country."""

import json

import pytest

from registry.models import Visit, choices
from registry.models.instruments import VALUE_SETS
from registry.services import redcap
from registry.services.proms.answers import prom_answers_record
from registry.services.proms.instruments import INSTRUMENTS
from tests.conftest import needs_postgres

from .test_redcap_api import body, post, records

STATE = {"mo": 2, "sc": 1, "ua": 3, "pd": 4, "ad": 2}


@pytest.fixture
def answered(cohort, nurse, nurse_b):
    first = cohort["a"][0]
    baseline = Visit.objects.get(patient=first, timepoint="baseline")
    prom_answers_record(visit=baseline, instrument="eq5d5l", answers={**STATE, "vas": 60}, actor=nurse)
    odi = {f"s{n}": 2 for n in range(1, 10)}  # s10 missing: 9 of 10 answered, still scored
    prom_answers_record(visit=baseline, instrument="odi", answers=odi, actor=nurse)
    other = Visit.objects.get(patient=cohort["b"][0], timepoint="baseline")
    prom_answers_record(visit=other, instrument="eq5d5l", answers={**STATE, "vas": 60}, actor=nurse_b)
    return first


def test_the_data_dictionary_has_one_form_per_prom_with_validated_items(client, token_a):
    meta = json.loads(body(post(client, token_a, content="metadata", format="json")))
    forms = [m["form_name"] for m in meta]
    # Forms are contiguous, in instrument order, after the visit form.
    assert list(dict.fromkeys(forms)) == ["enrolment", "visit", *INSTRUMENTS, "adverse_event",
                                            "device_component"]
    by_name = {m["field_name"]: m for m in meta}
    mo = by_name["eq5d5l_mo"]
    assert (mo["form_name"], mo["text_validation_type_or_show_slider_number"],
            mo["text_validation_min"], mo["text_validation_max"]) == ("eq5d5l", "integer", "1", "5")
    odi_s10 = by_name["odi_s10"]
    assert (odi_s10["text_validation_min"], odi_s10["text_validation_max"]) == ("0", "5")
    assert by_name["hads_q14"]["text_validation_max"] == "3"
    score = by_name["odi_score"]
    assert score["form_name"] == "odi" and "@READONLY" in score["field_annotation"]
    assert "at least 8 of 10" in score["field_note"]
    assert "eq5d5l_vas" in by_name and "eq5d5l_index" in by_name and "eq5d5l_value_set" in by_name
    # Codes and short labels only: no licensed item wording.
    assert mo["field_label"] == "EQ-5D-5L: Mobility (mo)"
    narrowed = json.loads(body(post(client, token_a, content="metadata", format="json",
                                    **{"forms[0]": "hads"})))
    assert {m["form_name"] for m in narrowed} == {"hads"} and len(narrowed) == 16
    mapping = json.loads(body(post(client, token_a, content="formEventMapping", format="json")))
    assert {"arm_num": 1, "unique_event_name": "m3_arm_1", "form": "odi"} in mapping


def test_records_carry_items_scores_and_the_value_set_of_the_sites_country(client, answered, token_a,
                                                                           token_b):
    rows = records(client, token_a, **{"records[0]": answered.registry_id})
    base = next(r for r in rows if r["redcap_event_name"] == "baseline_arm_1")
    assert (base["eq5d5l_mo"], base["eq5d5l_pd"], base["eq5d5l_vas"]) == ("2", "4", "60")
    nl = VALUE_SETS["NL"].index(STATE)  # site AAA is in the Netherlands
    assert float(base["eq5d5l_index"]) == nl
    assert base["eq5d5l_value_set"] == str(choices.code_number("eq5d_value_set", "NL"))
    assert base["eq5d5l_complete"] == "2"
    assert (base["odi_s1"], base["odi_s10"], base["odi_score"]) == ("2", "", "40")
    assert base["odi_complete"] == "0"  # s10 not answered
    assert base["hads_q1"] == "" and base["hads_anxiety"] == "" and base["hads_complete"] == "0"
    m3 = next(r for r in rows if r["redcap_event_name"] == "m3_arm_1")
    assert m3["eq5d5l_mo"] == "" and m3["eq5d5l_index"] == ""
    # Site BBB is in the United States: its nurse gets the US index.
    other = records(client, token_b)
    base_b = next(r for r in other if r["redcap_event_name"] == "baseline_arm_1")
    assert float(base_b["eq5d5l_index"]) == VALUE_SETS["US"].index(STATE) != nl
    assert base_b["eq5d5l_value_set"] == str(choices.code_number("eq5d_value_set", "US"))


def test_labels_eav_and_form_selection(client, answered, token_a):
    rows = records(client, token_a, rawOrLabel="label", **{"forms[0]": "eq5d5l"})
    base = next(r for r in rows if r["redcap_event_name"].startswith("Baseline"))
    assert base["eq5d5l_value_set"] == "Netherlands (Versteegh et al. 2016)"
    assert base["eq5d5l_complete"] == "Complete" and "odi_s1" not in base
    eav = json.loads(body(post(client, token_a, content="record", format="json", type="eav",
                               **{"fields[0]": "odi_s1", "fields[1]": "odi_score"})))
    assert {(e["field_name"], e["value"]) for e in eav} == {("odi_s1", "2"), ("odi_score", "40")}


@needs_postgres()
@pytest.mark.parametrize("who", ["nurse", "nurse_b", "data_manager"])  # NL, US, ENG value sets
def test_the_sql_path_writes_the_prom_forms_as_the_python_path(answered, who, request):
    from registry.interop import redcap as redcap_view
    from registry.services.export_log import RowCounter

    user = request.getfixturevalue(who)
    for record_type, fmt, labels in (("flat", "csv", False), ("eav", "json", True)):
        slow, fast = (b"".join(redcap_view.record_stream(redcap.RecordExport(user=user, labels=labels),
                                                         record_type, fmt, RowCounter(), fast=f))
                      for f in (False, True))
        assert fast == slow and b"eq5d5l_index" in fast

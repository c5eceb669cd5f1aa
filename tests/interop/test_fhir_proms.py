"""FHIR PROMs: Questionnaire per instrument (codes and short labels, no licensed text),
QuestionnaireResponse per visit and instrument, score Observations with their value set;
validated with fhir.resources (R4B) and strict R4; investigators get shifted dates."""

import datetime
import json

import pytest

from registry.models import Visit
from registry.models.instruments import INSTRUMENTS, VALUE_SETS
from registry.services import deid
from registry.services.proms.answers import prom_answers_record
from registry.services.tokens import api_token_create
from tests.interop.test_fhir import get, validate

pytestmark = pytest.mark.django_db

STATE = {"mo": 2, "sc": 1, "ua": 3, "pd": 4, "ad": 2}


@pytest.fixture
def answered(cohort, nurse):
    first = cohort["a"][0]
    baseline = Visit.objects.get(patient=first, timepoint="baseline")
    prom_answers_record(visit=baseline, instrument="eq5d5l", answers={**STATE, "vas": 60}, actor=nurse)
    prom_answers_record(visit=baseline, instrument="hads",
                        answers={f"q{n}": 1 for n in range(1, 14)}, actor=nurse)  # q14 missing
    return baseline


def entries(response):
    assert response.status_code == 200, response.content
    return [e["resource"] for e in json.loads(response.content).get("entry", [])]


def test_questionnaires_hold_codes_labels_and_ranges_only(client, token_dm):
    found = entries(get(client, "/fhir/Questionnaire", token_dm))
    assert [q["id"] for q in found] == [f"prom-{code.replace('_', '-')}" for code in INSTRUMENTS]
    for q in found:
        validate(q)
    odi = next(q for q in found if q["id"] == "prom-odi")
    assert odi["version"] == "ODI 2.1a" and "Mapi" in odi["copyright"]
    s1 = odi["item"][0]
    assert (s1["linkId"], s1["text"], s1["type"]) == ("s1", "Pain intensity", "integer")
    assert [e["valueInteger"] for e in s1["extension"]] == [0, 5]
    read = get(client, "/fhir/Questionnaire/prom-hads", token_dm)
    assert read.status_code == 200
    assert json.loads(read.content)["title"] == "Hospital Anxiety and Depression Scale"


def test_responses_and_score_observations(client, answered, token_dm, token_a):
    responses = entries(get(client, "/fhir/QuestionnaireResponse", token_dm))
    assert {r["id"] for r in responses} == {f"qr-{answered.pk}-eq5d5l", f"qr-{answered.pk}-hads"}
    for r in responses:
        validate(r)
    eq = next(r for r in responses if r["id"].endswith("eq5d5l"))
    assert eq["status"] == "completed" and eq["authored"] == answered.date_done.isoformat()
    assert eq["questionnaire"].endswith(":questionnaire:eq5d5l|EQ-5D-5L (EuroQol, 2011)")
    assert [(i["linkId"], i["answer"][0]["valueInteger"]) for i in eq["item"]][:2] == [("mo", 2), ("sc", 1)]
    hads = next(r for r in responses if r["id"].endswith("hads"))
    assert hads["status"] == "in-progress" and len(hads["item"]) == 13

    # The nurse of site AAA (Dutch) gets the Dutch value set, as in the exports.
    observations = entries(get(client, "/fhir/Observation", token_a, _count="200"))
    scores = {o["id"]: o for o in observations if o["code"]["coding"][0]["system"].endswith(":prom-score")}
    for o in scores.values():
        validate(o)
    index = scores[f"visit-{answered.pk}-eq5d5l-index"]
    # Site AAA is Dutch: the Dutch value set, said in the method.
    assert index["valueQuantity"]["value"] == VALUE_SETS["NL"].index(STATE)
    assert "value set NL" in index["method"]["text"]
    assert index["derivedFrom"] == [{"reference": f"QuestionnaireResponse/qr-{answered.pk}-eq5d5l"}]
    # HADS anxiety (7 odd items) is complete; depression misses one item and is prorated.
    assert scores[f"visit-{answered.pk}-hads-anxiety"]["valueQuantity"]["value"] == 7
    assert scores[f"visit-{answered.pk}-hads-depression"]["valueQuantity"]["value"] == 7.0
    total = json.loads(get(client, "/fhir/Observation", token_a, _count="0").content)["total"]
    assert total == len(observations)
    # The data manager sees a Dutch and a US site: England's value set (the stated default).
    mixed = entries(get(client, "/fhir/Observation", token_dm, code="eq5d5l_index"))
    assert mixed[0]["valueQuantity"]["value"] == VALUE_SETS["ENG"].index(STATE)
    assert "value set ENG" in mixed[0]["method"]["text"]
    only = entries(get(client, "/fhir/Observation", token_dm, code="odi_score,eq5d5l_index"))
    assert [o["id"] for o in only] == [f"visit-{answered.pk}-eq5d5l-index"]
    read = get(client, f"/fhir/Observation/visit-{answered.pk}-eq5d5l-vas", token_dm)
    assert json.loads(read.content)["valueQuantity"]["value"] == 60
    bulk = get(client, "/fhir/$export/QuestionnaireResponse.ndjson", token_dm)
    lines = b"".join(bulk.streaming_content).decode().splitlines()
    assert len(lines) == 2


def test_investigators_get_shifted_dates_and_no_record_times(client, answered, investigator):
    token = api_token_create(user=investigator, label="fhir investigator")
    responses = entries(get(client, "/fhir/QuestionnaireResponse", token))
    shift = deid.date_shift_days(answered.patient.registry_id)
    shifted = (answered.date_done - datetime.timedelta(days=shift)).isoformat()
    assert shift and {r["authored"] for r in responses} == {shifted}
    assert all("lastUpdated" not in r["meta"] and r["meta"]["security"][0]["code"] == "PSEUDED"
               for r in responses)
    observations = entries(get(client, "/fhir/Observation", token, code="eq5d5l_index"))
    assert [o["effectiveDateTime"] for o in observations] == [shifted]


def test_a_token_sees_only_its_sites_responses(client, answered, token_b):
    assert entries(get(client, "/fhir/QuestionnaireResponse", token_b)) == []
    assert get(client, f"/fhir/QuestionnaireResponse/qr-{answered.pk}-eq5d5l", token_b).status_code == 404

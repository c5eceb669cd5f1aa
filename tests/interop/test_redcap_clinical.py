"""REDCap and the clinical data of issue 20: the enrolment form carries the disposition,
the adverse-event form the awareness, IMDRF codes, reporting rule and whether it was
reported in time (read from the same dataset declarations as the exports)."""

import datetime
import json

import pytest

from registry.models import Disposition
from registry.services import redcap
from registry.services.disposition import disposition_record
from registry.services.tokens import api_token_create
from tests.factories import make_event
from tests.interop.test_redcap_api import body, post, records

pytestmark = pytest.mark.django_db
D = datetime.date


def test_the_forms_carry_disposition_and_safety_fields(client, patient_a, implant_a, nurse):
    make_event(patient_a, implant_a, serious=True, serious_criterion="hospitalisation",
               device_relatedness="probable", onset_date=D(2020, 4, 1), awareness_date=D(2020, 4, 3),
               reported_on=D(2020, 4, 10), imdrf_device_problem="A0705", outcome="ongoing",
               resolved_on=None)
    disposition_record(disposition=Disposition(
        patient=patient_a, status="deceased", date=D(2020, 6, 1), death_cause="cardiovascular",
        death_device_relatedness="not_related", death_procedure_relatedness="not_related"),
        actor=nurse, reason="death notified")
    token = api_token_create(user=nurse, label="redcap")
    fields = {f["field_name"]: f for f in json.loads(body(post(client, token, content="metadata",
                                                              format="json")))}
    assert fields["disposition"]["form_name"] == "enrolment"
    assert "Deceased" in fields["disposition"]["select_choices_or_calculations"]
    assert {"ae_awareness_days", "ae_imdrf_a", "ae_reporting_rule", "ae_reported_on_time"} <= set(fields)
    rows = records(client, token)
    enrolment = rows[0]  # the baseline event holds the enrolment form
    event = next(r for r in rows if r.get("redcap_repeat_instrument") == "adverse_event")
    assert enrolment["disposition"] == redcap.FIELD_BY_NAME["disposition"].raw("deceased")
    assert enrolment["disposition_days_from_implant"] == str((D(2020, 6, 1) - implant_a.implant_date).days)
    assert (event["ae_awareness_days"], event["ae_imdrf_a"]) == ("2", "A0705")
    assert event["ae_reporting_rule"] == redcap.FIELD_BY_NAME["ae_reporting_rule"].raw("serious_incident")
    labelled = records(client, token, rawOrLabel="label")
    event = next(r for r in labelled if r.get("ae_imdrf_a") == "A0705")
    assert event["ae_reporting_rule"].startswith("MDR Art. 87(3)")
    assert labelled[0]["disposition"] == "Deceased"


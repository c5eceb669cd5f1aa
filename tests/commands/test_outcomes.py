"""manage.py outcomes: the same summary as the service, as text or JSON; bad options named."""

import io
import json

import pytest
from django.core.management import CommandError, call_command

from registry.services import outcomes
from tests.services.test_outcomes import plan_cohort, write_cohort


def run(*args):
    out = io.StringIO()
    call_command("outcomes", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def registry_data(site_a, site_b, data_manager):
    write_cohort(plan_cohort(9, n=12), {"AAA": site_a, "BBB": site_b}, data_manager)
    return data_manager


def test_it_prints_the_services_summary_as_json(registry_data):
    body = json.loads(run("--json", "--therapy", "SCS,DRG", "--threshold", "30"))
    expected = outcomes.outcome_summary(user=registry_data, therapy="SCS,DRG", threshold=30)
    assert {k: body[k] for k in outcomes.SUMMARY_KEYS} == json.loads(json.dumps(expected))
    assert body["query"]["therapy"] == ["SCS", "DRG"]


def test_it_prints_a_table_and_the_results_paragraph(registry_data):
    text = run("--timepoint", "m12")
    summary = outcomes.outcome_summary(user=registry_data, timepoint="m12")
    for label, value in outcomes.outcome_table(summary):
        assert any(line.startswith(label) and line.endswith(value) for line in text.splitlines()), label
    assert outcomes.outcome_paragraph(summary, timepoint="m12") in text


def test_it_prints_each_group(registry_data):
    text = run("--group-by", "site")
    assert "== site AAA ==" in text and "== site BBB ==" in text


def test_it_scopes_to_a_user_when_asked(registry_data, nurse):
    body = json.loads(run("--json", "--user", nurse.username))
    assert body["n_patients"] == outcomes.outcome_summary(user=nurse)["n_patients"]
    assert body["n_patients"] < json.loads(run("--json"))["n_patients"]


@pytest.mark.parametrize("args, named", [
    (["--therapy", "XYZ"], "--therapy 'XYZ'"),
    (["--timepoint", "month12"], "--timepoint 'month12'"),
    (["--threshold", "200"], "--threshold '200'"),
    (["--group-by", "colour"], "--group-by 'colour'"),
    (["--site", "NOPE"], "--site 'NOPE'"),
    (["--implant-year-from", "x"], "--implant-year-from 'x'"),
    (["--pain-site", "knee"], "--pain-site 'knee'"),
    (["--user", "nobody"], "--user 'nobody'"),
])
def test_it_refuses_a_bad_option_naming_it_and_its_value(db, args, named):
    with pytest.raises(CommandError, match=named.replace("(", r"\(")):
        run(*args)

"""GET /api/v1/outcomes/: the reference cohort's figures, grouping, scoping, errors, schema."""

import json

import pytest

from registry.models import Patient
from registry.services import outcomes

pytestmark = pytest.mark.django_db

URL = "/api/v1/outcomes/"


@pytest.fixture
def reference_cohort(data_manager):
    from registry.services import imports

    message = imports.reference_cohort_load(actor=data_manager)
    assert "NOT loaded" not in message, message
    return data_manager


def test_the_reference_cohort_gives_the_papers_figures(client_for, reference_cohort):
    response = client_for(reference_cohort).get(URL, {"site": "RAD", "therapy": "SCS"})
    assert response.status_code == 200
    s = response.json()
    assert s["n_patients"] == 15 and s["male"] == 8
    assert (round(s["age_mean"]), round(s["age_sd"])) == (48, 12)
    assert (round(s["nrs_baseline_mean"], 1), round(s["nrs_baseline_sd"], 1)) == (8.1, 0.8)
    assert (round(s["nrs_followup_mean"], 1), round(s["nrs_followup_sd"], 1)) == (3.0, 2.0)
    assert (s["responders"], round(s["responder_rate"] * 100, 1)) == (10, 66.7)
    assert round(s["nrs_reduction_of_means_pct"]) == 63
    assert s["wilcoxon_p"] < 0.01
    assert s["satisfied"] == s["n_satisfaction"] == 15
    assert s["patients_with_ae"] == 1
    assert s["ae_by_category"] == {"infection_superficial": {"patients": 1, "events": 1}}
    low, high = s["responder_rate_ci95"]
    assert low < 10 / 15 < high
    assert s["query"]["site"] == ["RAD"] and s["query"]["timepoint"] == "last"


def test_it_returns_every_summary_key_and_what_it_understood(client_for, cohort, data_manager):
    response = client_for(data_manager).get(URL, {"therapy": "scs,PNS", "threshold": "30"})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == set(outcomes.SUMMARY_KEYS) | {"query"}
    assert body["query"]["therapy"] == ["SCS", "PNS"] and body["query"]["threshold"] == 30
    expected = outcomes.outcome_summary(user=data_manager, therapy=["SCS", "PNS"], threshold=30)
    # JSON keeps floats exactly (shortest repr round-trips).
    assert {k: body[k] for k in outcomes.SUMMARY_KEYS} == json.loads(json.dumps(expected))


def test_it_groups_by_therapy(client_for, cohort, data_manager):
    response = client_for(data_manager).get(URL, {"group_by": "therapy"})
    assert response.status_code == 200
    body = response.json()
    assert body["group_by"] == "therapy"
    groups = {g["group"]: g for g in body["groups"]}
    assert set(groups) == set(Patient.objects.values_list("implants__therapy", flat=True)) - {None}
    assert sum(g["n_patients"] for g in groups.values()) == body["overall"]["n_patients"]
    for code, group in groups.items():
        alone = outcomes.outcome_summary(user=data_manager, therapy=code)
        assert group["n_patients"] == alone["n_patients"]


@pytest.mark.parametrize("role", ["nurse", "investigator"])
def test_a_site_member_gets_the_outcomes_of_their_site_only(client_for, cohort, request, role, settings):
    settings.REGISTRY_MIN_CELL = 1  # the site's two patients, not suppressed (tests/privacy)
    user = request.getfixturevalue(role)
    body = client_for(user).get(URL).json()
    assert body["n_patients"] == Patient.objects.filter(
        site__code="AAA", implants__implant_date__isnull=False).distinct().count()
    assert body["n_patients"] < Patient.objects.filter(implants__isnull=False).distinct().count()


def test_a_site_member_cannot_reach_another_site_through_the_site_filter(client_for, cohort, nurse):
    # Another site's code is answered like a code that does not exist, so a
    # nurse learns neither its figures nor that it is there.
    other = client_for(nurse).get(URL, {"site": "BBB"})
    unknown = client_for(nurse).get(URL, {"site": "ZZZ"})
    assert other.status_code == unknown.status_code == 400
    assert other.json()["site"] == [m.replace("ZZZ", "BBB") for m in unknown.json()["site"]]


def test_it_refuses_a_request_without_a_token(client_for, cohort):
    assert client_for().get(URL).status_code == 401


def test_it_refuses_a_user_without_a_registry_role(client_for, cohort, outsider):
    assert client_for(outsider).get(URL).status_code == 403


@pytest.mark.parametrize("query, param", [
    ({"therapy": "XYZ"}, "therapy"),
    ({"etiology": "traumatic,alien"}, "etiology"),
    ({"timepoint": "m0"}, "timepoint"),
    ({"timepoint": "last week"}, "timepoint"),
    ({"threshold": "-5"}, "threshold"),
    ({"threshold": "nan"}, "threshold"),
    ({"threshold": "1e999"}, "threshold"),
    ({"implant_year_from": "99999999999999999999"}, "implant_year_from"),
    ({"implant_year_from": "2020", "implant_year_to": "2019"}, "implant_year_to"),
    ({"pain_site": "residual_limb,phantom_limb"}, "pain_site"),
    ({"recall": "x"}, "recall"),
    ({"group_by": "sex"}, "group_by"),
    ({"site": "NOPE"}, "site"),
    ({"site": "A;DROP TABLE"}, "site"),
    ({"therapie": "SCS"}, "therapie"),
    ({"diagnosis": "\u00e9\u0000"}, "diagnosis"),
])
def test_it_answers_a_bad_parameter_with_400_naming_it(client_for, cohort, data_manager, query, param):
    response = client_for(data_manager).get(URL, query)
    assert response.status_code == 400
    body = response.json()
    assert list(body) == [param]
    assert body[param][0]


def test_a_repeated_parameter_counts_as_a_list(client_for, cohort, data_manager):
    body = client_for(data_manager).get(f"{URL}?therapy=SCS&therapy=DRG").json()
    assert body["query"]["therapy"] == ["SCS", "DRG"]


def test_the_schema_documents_the_endpoint_and_every_key(client_for, data_manager):
    response = client_for(data_manager).get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    schema = response.json()
    operation = schema["paths"]["/api/v1/outcomes/"]["get"]
    names = {p["name"] for p in operation["parameters"]}
    assert set(outcomes.PARAMS) <= names
    components = schema["components"]["schemas"]
    assert set(components["OutcomeSummary"]["properties"]) == set(outcomes.SUMMARY_KEYS)
    variants = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert variants["$ref"].endswith("/OutcomeResult")
    grouped = components["OutcomeGroupedResponse"]["properties"]
    assert {"group_by", "overall", "groups", "query"} <= set(grouped)


PARAM_VALUES = {
    "therapy": ["SCS", "scs,DRG", "XYZ", ""], "etiology": ["traumatic", "postamputation,other", "x"],
    "diagnosis": ["pn", "rlp_plp", "?"], "site": ["AAA", "BBB,AAA", "aaa", "Z" * 40],
    "implant_year_from": ["2015", "-1", "1e3"], "implant_year_to": ["2030", "abc"],
    "pain_site": ["residual_limb", "phantom_limb", "knee"], "recall": ["now", "worst", "?"],
    "timepoint": ["last", "m12", "m1000", "M6", "m-1"], "threshold": ["30", "50.5", "100", "0", "inf"],
    "group_by": ["therapy", "etiology", "site", "", "none"], "format": ["json"],
}


def test_no_combination_of_parameters_gives_a_server_error(client_for, cohort, data_manager):
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies
    client = client_for(data_manager)
    known = st.dictionaries(st.sampled_from(sorted(PARAM_VALUES)), st.just(None), max_size=5).flatmap(
        lambda keys: st.fixed_dictionaries({k: st.sampled_from(PARAM_VALUES[k]) for k in keys}))
    anything = st.dictionaries(st.sampled_from(sorted(PARAM_VALUES)),
                               st.text(st.characters(blacklist_categories=["Cs"]), max_size=12), max_size=3)

    @hypothesis.settings(max_examples=60, deadline=None, derandomize=True,
                         suppress_health_check=list(hypothesis.HealthCheck))
    @hypothesis.given(st.one_of(known, anything))
    def check(query):
        response = client.get(URL, query)
        assert response.status_code in (200, 400), (query, response.status_code)
        body = response.json()
        if response.status_code == 400:
            assert set(body) <= set(PARAM_VALUES) and all(body.values())
        else:
            assert "query" in body

    check()

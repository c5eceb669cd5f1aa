"""Fuzzing the PROM channels: the exports' value_set and filters, and the admin entry
form with nasty item values. A 5xx fails; a bad value is a 4xx or a form message."""

from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry.models import PromAnswer
from registry.services.tokens import api_token_create
from tests.factories import make_visit

from .test_fuzz import NASTY

BOUNDED = settings(max_examples=30, deadline=None, derandomize=True, database=None,
                   suppress_health_check=list(HealthCheck))


def _drain(response):
    if response.streaming:
        b"".join(response.streaming_content)
    return response


def test_prom_exports_answer_nasty_parameters_without_a_server_error(client, cohort, nurse):
    token = api_token_create(user=nurse, label="fuzz")

    @given(path=st.sampled_from(["/api/v1/exports/prom-answers/", "/api/v1/exports/visits/"]),
           params=st.dictionaries(st.sampled_from(["value_set", "instrument", "timepoint", "site",
                                                   "format", "dates", "diagnosis"]), NASTY, max_size=3))
    @BOUNDED
    def no_server_error(path, params):
        response = _drain(client.get(path, params, HTTP_AUTHORIZATION=f"Token {token}"))
        assert response.status_code < 500, (params, response.status_code)

    no_server_error()


def test_the_prom_entry_form_refuses_nasty_values_with_a_message(client, patient_a, nurse):
    visit = make_visit(patient_a)
    client.force_login(nurse)
    url = reverse("admin:registry_visit_proms", args=[visit.pk, "odi"])

    @given(values=st.dictionaries(st.sampled_from([f"s{n}" for n in range(1, 11)] + ["change_reason"]),
                                  NASTY, min_size=1, max_size=4))
    @BOUNDED
    def no_server_error(values):
        response = client.post(url, values)
        assert response.status_code in (302, 400), (values, response.status_code)
        if response.status_code == 400 and response.context is not None:  # else: the unstorable-input guard
            assert response.context["form"].errors or "give a reason" in response.content.decode()

    no_server_error()
    for answer in PromAnswer.objects.filter(visit=visit):
        assert 0 <= answer.value <= 5

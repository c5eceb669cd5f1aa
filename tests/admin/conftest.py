"""Admin test helpers: log in as a role, and post a form the way a browser does
(what the page rendered, plus the fields the user changed)."""

import pytest

from registry.models import PatientIdentifiers
from registry.services.audit import record_save
from tests.conftest import PASSWORD


def _value(bound_field):
    value = bound_field.value()
    if value is None:
        return ""
    if isinstance(value, bool):
        return "on" if value else ""
    return value


def rendered_form_data(response) -> dict:
    """The POST data a browser would send back for an admin change/add page."""
    data = {}
    form = response.context["adminform"].form
    for name in form.fields:
        value = _value(form[name])
        if value != "":
            data[name] = value
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        for name in formset.management_form.fields:
            data[f"{formset.prefix}-{name}"] = formset.management_form[name].value()
        for sub in formset.forms:
            if sub in formset.extra_forms:
                continue
            for name in sub.fields:
                value = _value(sub[name])
                if value != "":
                    data[sub.add_prefix(name)] = value
        # Extra (empty) forms are not sent: TOTAL_FORMS counts only the real ones.
        data[f"{formset.prefix}-TOTAL_FORMS"] = formset.initial_form_count()
    return data


def post_form(client, url, **changes):
    """GET the admin page, then POST it back with `changes` applied."""
    page = client.get(url)
    assert page.status_code == 200, page.status_code
    data = rendered_form_data(page)
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return client.post(url, data)


@pytest.fixture
def login(client):
    def as_user(user):
        client.force_login(user)
        return client
    return as_user


@pytest.fixture
def dm_client(client, data_manager):
    client.login(username=data_manager.username, password=PASSWORD)
    return client


@pytest.fixture
def nurse_client(client, nurse):
    client.login(username=nurse.username, password=PASSWORD)
    return client


@pytest.fixture
def identified_a(patient_a, nurse):
    return record_save(PatientIdentifiers(patient=patient_a, record_number="HRN-111",
                                          full_name="Anna Alpha"), actor=nurse)


@pytest.fixture
def identified_b(patient_b, nurse_b):
    return record_save(PatientIdentifiers(patient=patient_b, record_number="HRN-222",
                                          full_name="Bert Beta"), actor=nurse_b)

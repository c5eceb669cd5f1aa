"""Identifiers (patient identifiers, device serial numbers) on every admin page:
only nurses and data managers who are members of the patient's own site see
them (access.can_see_identifiers), also on the history pages, which look rows
up themselves instead of through the change list's queryset."""

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse

from registry.models import DeviceIdentifier
from registry.services.audit import record_save
from tests.admin.conftest import post_form
from tests.factories import make_implant


@pytest.fixture
def device_a(implant_a, nurse):
    return record_save(DeviceIdentifier(implant=implant_a, component="IPG",
                                        serial_number="SN-111"), actor=nurse)


@pytest.fixture
def device_b(patient_b, nurse_b):
    implant = make_implant(patient_b, actor=nurse_b)
    return record_save(DeviceIdentifier(implant=implant, component="IPG",
                                        serial_number="SN-222"), actor=nurse_b)


# Each kind of identifier row, at site A or B, and a value only its page shows.
ROWS = {"patient": {"a": ("identified_a", "HRN-111"), "b": ("identified_b", "HRN-222")},
        "device": {"a": ("device_a", "SN-111"), "b": ("device_b", "SN-222")}}


def row_and_secret(request, kind, site):
    fixture, secret = ROWS[kind][site]
    return request.getfixturevalue(fixture), secret


def pages(row):
    name = f"admin:registry_{row._meta.model_name}"
    record = row.history.latest("history_date")
    return {
        "change": reverse(f"{name}_change", args=[row.pk]),
        "history": reverse(f"{name}_history", args=[row.pk]),
        "history form": reverse(f"{name}_simple_history", args=[row.pk, record.history_id]),
        "delete": reverse(f"{name}_delete", args=[row.pk]),
    }


def assert_hidden(client, row, secret):
    for page, url in pages(row).items():
        response = client.get(url)
        assert response.status_code == 404, (page, response.status_code)
        assert secret not in response.content.decode(), page
    listing = client.get(reverse(f"admin:registry_{row._meta.model_name}_changelist"))
    assert listing.status_code in (200, 403)
    assert secret not in listing.content.decode()


kinds = pytest.mark.parametrize("kind", ["patient", "device"])


@kinds
def test_an_investigator_cannot_open_identifier_history(request, login, investigator, kind):
    # The investigator is a member of site A, but investigators never see identifiers.
    row, secret = row_and_secret(request, kind, "a")
    assert_hidden(login(investigator), row, secret)


@kinds
def test_a_data_manager_of_another_site_cannot_open_identifier_history(
        request, login, data_manager, kind):
    row, secret = row_and_secret(request, kind, "b")  # the data manager is a member of A only
    assert_hidden(login(data_manager), row, secret)


@kinds
def test_a_nurse_of_another_site_cannot_open_identifier_history(request, login, nurse_b, kind):
    row, secret = row_and_secret(request, kind, "a")
    assert_hidden(login(nurse_b), row, secret)


@kinds
def test_the_patients_own_site_nurse_reads_identifier_history(request, login, nurse, kind):
    row, secret = row_and_secret(request, kind, "a")
    client = login(nurse)
    urls = pages(row)
    assert client.get(urls["history"]).status_code == 200
    response = client.get(urls["history form"])
    assert response.status_code == 200
    assert secret in response.content.decode()
    assert secret in client.get(urls["change"]).content.decode()


@kinds
def test_a_data_manager_of_the_patients_site_reads_identifier_history(
        request, login, data_manager, kind):
    row, secret = row_and_secret(request, kind, "a")
    response = login(data_manager).get(pages(row)["history form"])
    assert response.status_code == 200
    assert secret in response.content.decode()


def test_an_investigator_gets_no_identifier_list_and_cannot_add_identifiers(
        login, investigator, identified_a):
    client = login(investigator)
    for model in ("patientidentifiers", "deviceidentifier"):
        assert client.get(reverse(f"admin:registry_{model}_changelist")).status_code == 403
        assert client.get(reverse(f"admin:registry_{model}_add")).status_code == 403


def test_the_identifier_list_shows_only_her_own_sites_identifiers(login, nurse_b, identified_a,
                                                                   identified_b):
    response = login(nurse_b).get(reverse("admin:registry_patientidentifiers_changelist"))
    assert list(response.context["cl"].result_list) == [identified_b]


def test_the_patient_history_page_shows_no_identifiers(login, nurse, investigator, identified_a):
    url = reverse("admin:registry_patient_change", args=[identified_a.patient_id])
    response = post_form(login(nurse), url, **{"identifiers-0-record_number": "HRN-333"})
    assert response.status_code == 302, response.context["adminform"].form.errors
    history = reverse("admin:registry_patient_history", args=[identified_a.patient_id])
    for user in (investigator, nurse):
        text = login(user).get(history).content.decode()
        assert "HRN-111" not in text and "HRN-333" not in text and "Anna Alpha" not in text


def test_the_patient_autocomplete_does_not_match_record_numbers_for_an_investigator(
        login, investigator, identified_a):
    response = login(investigator).get(reverse("admin:autocomplete"), {
        "app_label": "registry", "model_name": "visit", "field_name": "patient",
        "term": "HRN-111"})
    assert response.status_code == 200
    assert response.json()["results"] == []


def test_recent_actions_name_identifiers_by_registry_id_only(login, nurse, identified_a):
    url = reverse("admin:registry_patientidentifiers_change", args=[identified_a.pk])
    response = post_form(login(nurse), url, record_number="HRN-444")
    assert response.status_code == 302, response.context["adminform"].form.errors
    entry = LogEntry.objects.latest("action_time")
    assert entry.object_repr == f"Identifiers of {identified_a.patient.registry_id}"
    index = login(nurse).get(reverse("admin:index")).content.decode()
    assert "HRN-444" not in index and "Anna Alpha" not in index


def test_a_data_manager_deletes_another_sites_patient_with_its_identifiers(
        login, data_manager, identified_b):
    from registry.models import PatientIdentifiers

    client = login(data_manager)
    url = reverse("admin:registry_patient_delete", args=[identified_b.patient_id])
    page = client.get(url)
    assert page.status_code == 200 and "HRN-222" not in page.content.decode()
    assert client.post(url, {"post": "yes", "delete_reason": "Duplicate enrolment"}).status_code == 302
    assert not PatientIdentifiers.objects.filter(pk=identified_b.pk).exists()


def test_deleted_identifiers_history_stays_hidden(login, data_manager, nurse, identified_a):
    login(data_manager).post(reverse("admin:registry_patient_delete",
                                     args=[identified_a.patient_id]),
                              {"post": "yes", "delete_reason": "Duplicate enrolment"})
    for user in (data_manager, nurse):
        for page, url in pages(identified_a).items():
            if page in ("history", "history form"):
                response = login(user).get(url)
                assert response.status_code == 404, (user, page, response.status_code)

"""A patient stays at the site of their registry id: the registry id is the
pseudonym every channel keys on (exports, REDCap record_id, FHIR Patient.id,
implant refs, investigators' date shift), so it never changes, and it starts
with the site code."""

from django.urls import reverse

from tests.admin.conftest import post_form


def test_a_data_manager_moving_a_patient_gets_a_message_next_to_the_site(
        dm_client, patient_a, site_b):
    url = reverse("admin:registry_patient_change", args=[patient_a.pk])
    response = post_form(dm_client, url, site=site_b.pk, change_reason="Transferred")
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["site"]
    assert f"{patient_a.registry_id} stays at AAA" in errors["site"][0]
    assert "BBB" in response.content.decode()
    stored = type(patient_a).objects.get(pk=patient_a.pk)
    assert (stored.site_id, stored.registry_id, stored.version) == (
        patient_a.site_id, patient_a.registry_id, patient_a.version)
    assert stored.history.count() == 1


def test_a_data_manager_still_edits_a_patient_of_another_site(dm_client, patient_b):
    url = reverse("admin:registry_patient_change", args=[patient_b.pk])
    response = post_form(dm_client, url, birth_year="1971", change_reason="Source check")
    assert response.status_code == 302, response.context["adminform"].form.errors
    patient_b.refresh_from_db()
    assert patient_b.birth_year == 1971
    assert patient_b.history.first().history_change_reason == "Source check"


def test_a_registry_id_that_does_not_fit_the_site_is_a_message_not_a_500(nurse_client, patient_a):
    # Only a hand-edited database gets here; the nurse's form has no site field.
    type(patient_a).objects.filter(pk=patient_a.pk).update(registry_id="XYZ-0001")
    url = reverse("admin:registry_patient_change", args=[patient_a.pk])
    response = post_form(nurse_client, url, birth_year="1971")
    assert response.status_code == 200
    assert "must start with the site code" in str(response.context["adminform"].form.non_field_errors())

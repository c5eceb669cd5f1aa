"""No lost updates in the admin: a change form carries the version it was opened
at (edit_version); a save without it, or from an older version, is refused."""

from django.urls import reverse

from registry.models import Visit
from tests.admin.conftest import post_form
from tests.factories import make_visit


def test_a_change_without_edit_version_is_refused_and_nothing_is_saved(nurse_client, patient_a):
    visit = make_visit(patient_a, status="scheduled", date_done=None, nrs=None)
    url = reverse("admin:registry_visit_change", args=[visit.pk])
    response = post_form(nurse_client, url, notes="Called, no answer", edit_version=None)
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert "Reload the page" in " ".join(form.non_field_errors())
    assert "Reload the page" in response.content.decode()
    stored = Visit.objects.get(pk=visit.pk)
    assert (stored.notes, stored.version) == (visit.notes, visit.version)
    assert stored.history.count() == 1


def test_a_change_from_an_older_version_is_refused(nurse_client, patient_a):
    visit = make_visit(patient_a, status="scheduled", date_done=None, nrs=None)
    url = reverse("admin:registry_visit_change", args=[visit.pk])
    response = post_form(nurse_client, url, notes="Called", edit_version=visit.version - 1)
    assert response.status_code == 200
    assert "Someone else saved this record" in " ".join(
        response.context["adminform"].form.non_field_errors())
    assert Visit.objects.get(pk=visit.pk).notes == visit.notes


def test_an_add_needs_no_edit_version(nurse_client, patient_a):
    response = post_form(nurse_client, reverse("admin:registry_visit_add"), patient=patient_a.pk,
                         timepoint="baseline", status="completed", date_done="2020-01-10",
                         nrs="8", edit_version=None)
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert Visit.objects.filter(patient=patient_a).exists()

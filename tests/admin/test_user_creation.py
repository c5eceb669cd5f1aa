"""A data manager creates an account with its role and sites on one page (issue 19)."""

from django.contrib.auth import get_user_model
from django.urls import reverse

from registry.models import RegistryRole

URL = reverse("admin:auth_user_add")
PASSWORD_FIELDS = {"password1": "a long pass phrase 4 nora", "password2": "a long pass phrase 4 nora"}


def test_a_nurse_is_created_with_her_role_and_site(dm_client, data_manager, site_a):
    response = dm_client.post(URL, {"username": "nora", **PASSWORD_FIELDS, "role": "nurse",
                                    "sites": [site_a.pk], "change_reason": "new nurse"})
    assert response.status_code == 302
    role = RegistryRole.objects.get(user__username="nora")
    assert role.role == "nurse" and list(role.sites.all()) == [site_a]


def test_a_site_she_does_not_manage_is_refused_and_nothing_is_created(dm_client, site_a, site_b):
    response = dm_client.post(URL, {"username": "nora", **PASSWORD_FIELDS, "role": "nurse",
                                    "sites": [site_b.pk], "change_reason": "new nurse"})
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["role"] == [
        "You may grant and revoke only sites you manage; not BBB."]
    assert not get_user_model().objects.filter(username="nora").exists()


def test_a_nurse_without_a_site_is_refused(dm_client):
    response = dm_client.post(URL, {"username": "nora", **PASSWORD_FIELDS, "role": "nurse",
                                    "change_reason": "new nurse"})
    assert response.context["adminform"].form.errors["sites"] == ["A nurse needs at least one site."]


def test_an_account_without_a_role_is_still_possible(dm_client):
    response = dm_client.post(URL, {"username": "nora", **PASSWORD_FIELDS,
                                    "change_reason": "role later"})
    assert response.status_code == 302
    assert not RegistryRole.objects.filter(user__username="nora").exists()

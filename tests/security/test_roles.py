"""Roles with separation of duties: nobody changes her own role; a data manager grants
only sites she manages; registry-wide reach needs a registry administrator; every
grant and revoke needs a reason and is in the history with who did it."""

import pytest
from django.contrib.auth import get_user_model

from registry.models import RegistryRole, Role
from registry.services.tokens import api_token_create, api_token_user
from tests.conftest import PASSWORD, _user

from .conftest import needs_chromium, sign_in


def role_url(user):
    return f"/admin/registry/registryrole/{user.registry_role.pk}/change/"


def post_role(client, user, **changes):
    role = user.registry_role
    data = {"role": role.role, "sites": [s.pk for s in role.sites.all()],
            "change_reason": "test", **changes}
    if data.get("all_sites") is False:
        data.pop("all_sites")
    elif role.all_sites and "all_sites" not in changes:
        data["all_sites"] = "on"
    return client.post(role_url(user), data)


@needs_chromium
@pytest.mark.django_db(transaction=True)
def test_a_data_manager_who_adds_a_site_to_her_own_role_is_refused_with_a_message(
        new_page, live_server, data_manager, site_a, site_b):
    page = new_page()
    sign_in(page, live_server.url, data_manager.username)
    page.goto(f"{live_server.url}{role_url(data_manager)}")
    assert "cannot change your own role" in page.inner_text(".messagelist")
    page.check(f"input[name=sites][value=\"{site_b.pk}\"]")
    page.fill("#id_change_reason", "I need the BBB identifiers")
    page.click("input[name=_save]")
    page.wait_for_load_state("load")
    assert "cannot change your own role" in page.inner_text(".errorlist.nonfield")
    role = RegistryRole.objects.get(user=data_manager)
    assert set(role.sites.values_list("code", flat=True)) == {"AAA"}
    assert role.history.count() == 2  # the fixture's creation (save and sites), nothing more


def test_the_refusal_holds_for_a_form_posted_without_the_page(client, data_manager, site_b):
    client.force_login(data_manager)
    response = post_role(client, data_manager, sites=[site_b.pk, *data_manager.registry_role.sites
                                                       .values_list("pk", flat=True)])
    assert response.status_code == 200
    assert "cannot change your own role" in response.content.decode()
    assert not data_manager.registry_role.sites.filter(pk=site_b.pk).exists()


def test_a_data_manager_grants_a_site_she_manages_with_actor_and_reason_in_the_history(
        client, data_manager, site_a, site_b):
    anna = _user("anna", Role.NURSE, [site_a.code])
    client.force_login(data_manager)
    response = post_role(client, anna, role=Role.INVESTIGATOR, change_reason="moved to analysis")
    assert response.status_code == 302, response.content.decode()[:2000]
    role = RegistryRole.objects.get(user=anna)
    assert role.role == Role.INVESTIGATOR
    latest = role.history.latest("history_date")
    assert (latest.history_user, latest.history_change_reason) == (data_manager, "moved to analysis")


def test_a_data_manager_cannot_grant_a_site_she_does_not_manage(client, data_manager, site_a, site_b):
    anna = _user("anna", Role.NURSE, [site_a.code])
    client.force_login(data_manager)
    response = post_role(client, anna, sites=[site_a.pk, site_b.pk])
    assert "only sites you manage; not BBB" in response.content.decode()
    assert list(anna.registry_role.sites.values_list("code", flat=True)) == ["AAA"]


def test_a_data_manager_cannot_change_a_user_of_a_site_she_does_not_manage(client, data_manager,
                                                                            nurse_b, site_b):
    client.force_login(data_manager)
    response = post_role(client, nurse_b, sites=[])
    assert "BBB, which you do not manage" in response.content.decode()
    assert nurse_b.registry_role.sites.filter(pk=site_b.pk).exists()


@pytest.mark.parametrize("grant", ["all_sites", "data_manager"])
def test_registry_wide_reach_needs_a_registry_administrator(client, data_manager, site_a, grant):
    ivo = _user("ivo", Role.INVESTIGATOR, [site_a.code])
    client.force_login(data_manager)
    changes = {"all_sites": "on"} if grant == "all_sites" else {"role": Role.DATA_MANAGER}
    response = post_role(client, ivo, **changes)
    assert "needs a registry administrator" in response.content.decode()
    role = RegistryRole.objects.get(user=ivo)
    assert (role.role, role.all_sites) == (Role.INVESTIGATOR, False)

    admin = get_user_model().objects.create_superuser("root", password=PASSWORD)
    client.force_login(admin)
    assert post_role(client, ivo, change_reason="registry-wide analyses", **changes).status_code == 302
    role.refresh_from_db()
    assert role.all_sites is True
    assert role.history.latest("history_date").history_user == admin


def test_a_role_change_without_a_reason_is_refused(client, data_manager, site_a):
    anna = _user("anna", Role.NURSE, [site_a.code])
    client.force_login(data_manager)
    response = post_role(client, anna, role=Role.INVESTIGATOR, change_reason="")
    assert response.status_code == 200 and "This field is required" in response.content.decode()
    assert RegistryRole.objects.get(user=anna).role == Role.NURSE


def test_revoking_a_role_needs_a_reason_kills_her_tokens_and_is_in_the_history(client, data_manager,
                                                                             site_a):
    anna = _user("anna", Role.NURSE, [site_a.code])
    key = api_token_create(user=anna, label="scripts")
    role_pk = anna.registry_role.pk
    client.force_login(data_manager)
    client.post("/admin/registry/registryrole/", {"action": "revoke_roles", "_selected_action": [role_pk],
                                                  "reason": ""})
    assert RegistryRole.objects.filter(user=anna).exists()
    client.post("/admin/registry/registryrole/", {"action": "revoke_roles", "_selected_action": [role_pk],
                                                  "reason": "left the AAA team"})
    assert not RegistryRole.objects.filter(user=anna).exists()
    assert api_token_user(key) is None
    deletion = RegistryRole.history.filter(id=role_pk, history_type="-").get()
    assert (deletion.history_user, deletion.history_change_reason) == (data_manager, "left the AAA team")


def test_every_role_change_is_in_the_history_with_actor_and_reason(client, data_manager, site_a):
    anna = _user("anna", Role.NURSE, [site_a.code])
    client.force_login(data_manager)
    post_role(client, anna, role=Role.INVESTIGATOR, change_reason="one")
    post_role(client, get_user_model().objects.get(pk=anna.pk), sites=[], change_reason="two")
    rows = RegistryRole.history.filter(id=anna.registry_role.pk, history_user=data_manager)
    assert {r.history_change_reason for r in rows} == {"one", "two"}
    assert all(r.history_change_reason for r in RegistryRole.history.filter(id=anna.registry_role.pk))


def test_nurses_and_investigators_do_not_manage_roles_or_users(client, nurse, investigator):
    for user in (nurse, investigator):
        client.force_login(user)
        assert client.get("/admin/registry/registryrole/").status_code == 403
        assert client.get("/admin/auth/user/").status_code == 403


def test_a_data_manager_cannot_deactivate_herself(client, data_manager):
    client.force_login(data_manager)
    client.post("/admin/auth/user/", {"action": "deactivate", "_selected_action": [data_manager.pk],
                                      "reason": "testing"})
    data_manager.refresh_from_db()
    assert data_manager.is_active

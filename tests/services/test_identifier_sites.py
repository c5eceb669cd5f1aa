"""access.identifier_site_ids: the sites where a user sees patients' identifiers
(the admin's record-number search, identifier pages and inlines all ask it)."""

from django.contrib.auth import get_user_model

from registry.models import Role
from registry.services import access
from registry.services.users import registry_user_save
from tests.conftest import PASSWORD


def test_a_nurse_sees_identifiers_at_her_own_sites_only(nurse, nurse_b, site_a, site_b):
    assert access.identifier_site_ids(nurse) == {site_a.pk}
    assert access.identifier_site_ids(nurse_b) == {site_b.pk}


def test_a_nurse_of_two_sites_sees_identifiers_at_both(site_a, site_b):
    user, _ = registry_user_save(username="nurse_ab", role=Role.NURSE,
                                 site_codes=[site_a.code, site_b.code], password=PASSWORD,
                                 validate_pw=False)
    assert access.identifier_site_ids(user) == {site_a.pk, site_b.pk}


def test_a_data_manager_sees_identifiers_only_where_she_is_a_member(data_manager, site_a, site_b):
    assert access.sees_all_sites(data_manager)  # she sees site B's records...
    assert access.identifier_site_ids(data_manager) == {site_a.pk}  # ...not their identifiers


def test_an_investigator_never_sees_identifiers(investigator, site_a):
    assert access.member_site_ids(investigator) == {site_a.pk}
    assert access.identifier_site_ids(investigator) == set()
    role = investigator.registry_role
    role.all_sites = True
    role.save()
    investigator._registry_role_cache = False
    assert access.identifier_site_ids(investigator) == set()


def test_users_without_a_role_see_no_identifiers(outsider, site_a):
    assert access.identifier_site_ids(outsider) == set()
    superuser = get_user_model().objects.create_superuser("root", password=PASSWORD)
    assert access.identifier_site_ids(superuser) == set()  # no membership, no identifiers


def test_it_agrees_with_can_see_identifiers_for_every_user_and_site(
        nurse, nurse_b, investigator, data_manager, outsider, site_a, site_b):
    for user in (nurse, nurse_b, investigator, data_manager, outsider):
        for site in (site_a, site_b):
            assert (site.pk in access.identifier_site_ids(user)) == \
                access.can_see_identifiers(user, site.pk), (user.username, site.code)

"""The one access rule: who sees which patients."""

from registry.models import Patient, Visit
from registry.services import access
from tests.factories import make_visit


def test_a_nurse_sees_only_her_sites_patients(nurse, patient_a, patient_b):
    assert list(access.patients_for(nurse)) == [patient_a]


def test_a_nurse_of_site_b_cannot_see_site_a(nurse_b, patient_a, patient_b):
    assert list(access.patients_for(nurse_b)) == [patient_b]
    assert not access.can_see_patient(nurse_b, patient_a)


def test_the_rule_reaches_through_relations(nurse, patient_a, patient_b):
    make_visit(patient_a)
    make_visit(patient_b)
    visits = access.visible(Visit.objects.all(), nurse)
    assert {v.patient_id for v in visits} == {patient_a.pk}


def test_an_investigator_sees_her_sites_or_all(investigator, patient_a, patient_b):
    assert list(access.patients_for(investigator)) == [patient_a]
    role = investigator.registry_role
    role.all_sites = True
    role.save()
    investigator._registry_role_cache = False
    assert set(access.patients_for(investigator)) == {patient_a, patient_b}


def test_a_data_manager_sees_every_site(data_manager, patient_a, patient_b):
    assert set(access.patients_for(data_manager)) == {patient_a, patient_b}


def test_an_outsider_sees_nothing(outsider, patient_a, patient_b):
    assert not access.patients_for(outsider).exists()
    assert not access.can_edit(outsider)


def test_identifiers_only_for_nurses_and_data_managers_of_the_site(
    nurse, nurse_b, investigator, data_manager, patient_a
):
    site = patient_a.site_id
    assert access.can_see_identifiers(nurse, site)
    assert not access.can_see_identifiers(nurse_b, site)
    assert not access.can_see_identifiers(investigator, site)
    assert access.can_see_identifiers(data_manager, site)  # member of site A


def test_investigators_cannot_edit(investigator, nurse, patient_a):
    assert not access.can_edit(investigator, patient_a.site_id)
    assert access.can_edit(nurse, patient_a.site_id)


def test_the_rule_is_one_query(nurse, patient_a, django_assert_max_num_queries):
    nurse._registry_role_cache = False
    with django_assert_max_num_queries(3):
        list(access.patients_for(nurse))
    assert Patient.objects.count() == 1

"""Admin writes history with the user and the reason; deletes too."""

from django.urls import reverse

from registry.models import Visit
from tests.admin.conftest import post_form
from tests.conftest import PASSWORD
from tests.factories import make_visit


def test_admin_create_change_and_delete_record_the_user_and_the_reason(
        dm_client, data_manager, patient_a):
    add = reverse("admin:registry_visit_add")
    response = post_form(dm_client, add, patient=patient_a.pk, timepoint="baseline",
                         status="completed", date_done="2020-01-10", nrs="8")
    assert response.status_code == 302, response.context["adminform"].form.errors
    visit = Visit.objects.get(patient=patient_a)
    change = reverse("admin:registry_visit_change", args=[visit.pk])
    response = post_form(dm_client, change, nrs="7", change_reason="Source data verification")
    assert response.status_code == 302, response.context["adminform"].form.errors
    delete = reverse("admin:registry_visit_delete", args=[visit.pk])
    assert 'name="delete_reason"' in dm_client.get(delete).content.decode()
    response = dm_client.post(delete, {"post": "yes", "delete_reason": "Entered for the wrong patient"})
    assert response.status_code == 302
    rows = list(Visit.history.filter(id=visit.pk).order_by("history_date", "history_id"))
    assert [r.history_type for r in rows] == ["+", "~", "-"]
    assert [r.history_user for r in rows] == [data_manager] * 3
    assert [r.history_change_reason for r in rows] == [
        "Created in admin", "Source data verification", "Entered for the wrong patient"]
    assert rows[1].nrs == 7 and rows[0].nrs == 8


def test_admin_refuses_a_change_to_a_completed_visit_without_reason(dm_client, patient_a):
    visit = make_visit(patient_a, nrs=8)
    response = post_form(dm_client, reverse("admin:registry_visit_change", args=[visit.pk]), nrs="5")
    assert response.status_code == 200
    assert "change_reason" in response.context["adminform"].form.errors
    visit.refresh_from_db()
    assert visit.nrs == 8


def test_admin_names_the_field_of_an_invalid_nrs(dm_client, patient_a):
    response = post_form(dm_client, reverse("admin:registry_visit_add"), patient=patient_a.pk,
                         timepoint="baseline", status="completed", date_done="2020-01-10", nrs="11")
    assert response.status_code == 200
    assert "nrs" in response.context["adminform"].form.errors
    assert not Visit.objects.exists()


def test_a_nurse_of_another_site_gets_404_on_the_patient(client, nurse_b, patient_a):
    client.login(username=nurse_b.username, password=PASSWORD)
    response = client.get(reverse("admin:registry_patient_change", args=[patient_a.pk]))
    assert response.status_code == 404


def test_admin_refuses_a_delete_without_a_reason_and_keeps_the_record(dm_client, patient_a):
    visit = make_visit(patient_a, nrs=8)
    delete = reverse("admin:registry_visit_delete", args=[visit.pk])
    for blank in ({}, {"delete_reason": "   "}):
        response = dm_client.post(delete, {"post": "yes", **blank}, follow=True)
        assert "Give a reason for deleting this record" in response.content.decode()
        assert Visit.objects.filter(pk=visit.pk).exists()
    assert not Visit.history.filter(id=visit.pk, history_type="-").exists()


def test_the_bulk_delete_action_is_not_offered_for_clinical_records(dm_client, patient_a):
    make_visit(patient_a, nrs=8)
    page = dm_client.get(reverse("admin:registry_visit_changelist"))
    assert page.status_code == 200
    assert "delete_selected" not in page.content.decode()


def test_the_history_reads_in_words_with_the_time_zone_and_old_and_new_values(
        dm_client, data_manager, patient_a):
    visit = make_visit(patient_a, nrs=8, opioid_mme=None)
    change = reverse("admin:registry_visit_change", args=[visit.pk])
    response = post_form(dm_client, change, nrs="7", opioid_mme="12.5",
                         change_reason="Source data verification")
    assert response.status_code == 302, response.context["adminform"].form.errors
    response = post_form(dm_client, reverse("admin:registry_patient_change", args=[patient_a.pk]),
                         etiology="iatrogenic", change_reason="Chart says iatrogenic")
    assert response.status_code == 302, response.context["adminform"].form.errors
    page = dm_client.get(reverse("admin:registry_visit_history", args=[visit.pk])).content.decode()
    table = page.split('id="change-history"')[1].split("</table>")[0]
    # Labels, not codes; the old value and the new one; the time with its zone.
    assert "<strong>NRS pain (0-10):</strong>" in table
    assert '<span class="history-old">8</span>' in table and '<span class="history-new">7</span>' in table
    assert '<span class="history-old">(empty)</span>' in table
    assert " UTC</td>" in table
    assert "Source data verification" in table and "created" in table
    page = dm_client.get(reverse("admin:registry_patient_history", args=[patient_a.pk])).content.decode()
    table = page.split('id="change-history"')[1].split("</table>")[0]
    from registry.models import Etiology

    assert (f'<span class="history-old">{Etiology.TRAUMATIC.label} (traumatic)</span>' in table
            and f'<span class="history-new">{Etiology.IATROGENIC.label} (iatrogenic)</span>' in table)


def test_choice_values_read_as_their_labels():
    from registry.admin.base import readable_value

    field = Visit._meta.get_field("status")
    assert readable_value(field, "missed") == "Missed (missed)"
    assert readable_value(field, "") == "(empty)" and readable_value(field, None) == "(empty)"
    assert readable_value(Visit._meta.get_field("would_choose_again"), True) == "yes"
    assert readable_value(Visit._meta.get_field("nrs"), 5) == 5

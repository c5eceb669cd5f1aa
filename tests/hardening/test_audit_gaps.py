"""Audit gaps: a save that changes nothing leaves no trace (no history row, no new
version, no new updated_at); a timepoint removed from the protocol keeps who and why."""

import datetime

from django.urls import reverse

from registry.models import FollowUpProtocol, ProtocolTimepoint, Visit
from registry.services.audit import record_save
from tests.admin.conftest import post_form
from tests.factories import make_implant, make_visit


def test_saving_an_unchanged_visit_writes_no_history_and_keeps_its_version(patient_a, nurse):
    visit = make_visit(patient_a, make_implant(patient_a, actor=nurse), actor=nurse, timepoint="m3",
                       nrs=4, date_done=datetime.date(2020, 6, 1))
    before = (visit.history.count(), visit.version, Visit.objects.get(pk=visit.pk).updated_at)
    same = Visit.objects.get(pk=visit.pk)
    record_save(same, actor=nurse, reason="opened and saved")
    same.refresh_from_db()
    assert (visit.history.count(), same.version, same.updated_at) == before
    # A real change still writes its row and moves the version on.
    same.nrs = 3
    record_save(same, actor=nurse, reason="re-rated")
    assert visit.history.count() == before[0] + 1 and same.version == before[1] + 1


def test_saving_an_unchanged_visit_in_the_admin_writes_no_history(client, patient_a, nurse):
    visit = make_visit(patient_a, make_implant(patient_a, actor=nurse), actor=nurse, timepoint="m3",
                       nrs=4, date_done=datetime.date(2020, 6, 1))
    rows, version = visit.history.count(), visit.version
    client.force_login(nurse)
    response = post_form(client, reverse("admin:registry_visit_change", args=[visit.pk]),
                         change_reason="nothing really")
    assert response.status_code == 302
    visit.refresh_from_db()
    assert visit.history.count() == rows and visit.version == version


def test_a_timepoint_deleted_from_the_protocol_keeps_the_user_and_the_reason(client, data_manager):
    protocol = FollowUpProtocol.objects.get(is_default=True)
    timepoint = protocol.timepoints.order_by("months").first()
    client.force_login(data_manager)
    url = reverse("admin:registry_followupprotocol_change", args=[protocol.pk])
    page = client.get(url)
    formset = page.context["inline_admin_formsets"][0].formset
    index = next(i for i, f in enumerate(formset.forms) if f.instance.pk == timepoint.pk)
    response = post_form(client, url, **{f"{formset.prefix}-{index}-DELETE": "on",
                                         "change_reason": "1-month visit dropped by the steering group"})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert not ProtocolTimepoint.objects.filter(pk=timepoint.pk).exists()
    gone = ProtocolTimepoint.history.filter(id=timepoint.pk, history_type="-").get()
    assert gone.history_user == data_manager
    assert gone.history_change_reason == "1-month visit dropped by the steering group"

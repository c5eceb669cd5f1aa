"""A protocol edit shows how many scheduled visits would move; the data manager chooses to
move them (with a reason, in each visit's history) or to keep them."""

import pytest
from django.urls import reverse

from registry.models import FollowUpProtocol, ProtocolTimepoint, Visit, VisitStatus
from registry.services import protocol_changes
from registry.services.audit import record_save
from tests.admin.conftest import post_form
from tests.conftest import PASSWORD
from tests.factories import make_implant, make_patient, make_visit


@pytest.fixture
def dm_client(client, data_manager):
    client.login(username=data_manager.username, password=PASSWORD)
    return client


def widen_m12(data_manager) -> FollowUpProtocol:
    protocol = FollowUpProtocol.default()
    m12 = protocol.timepoints.get(months=12)
    m12.window_before_days += 10
    record_save(m12, actor=data_manager, reason="m12 window widened")
    return protocol


def test_the_preview_counts_the_visits_not_done_whose_window_changes(site_a, nurse, data_manager):
    done, moving = (make_patient(site_a, actor=nurse) for _ in range(2))
    for patient in (done, moving):
        make_implant(patient, actor=nurse)
    m12 = Visit.objects.get(patient=done, timepoint="m12")
    make_visit(done, m12.implant, timepoint="m12", date_done=m12.target_date, nrs=3)
    protocol = widen_m12(data_manager)
    preview = protocol_changes.protocol_move_preview(protocol=protocol)
    # The completed m12 is never moved; the scheduled one would be.
    assert (preview.moving, preview.implants_moving, preview.implants) == (1, 1, 2)
    assert site_a.code in preview.sites
    before = Visit.objects.get(patient=moving, timepoint="m12").window_start
    change = protocol_changes.protocol_schedules_move(protocol=protocol, actor=data_manager,
                                                      reason="Protocol v2")
    assert change.moved == preview.moving == 1
    visit = Visit.objects.get(patient=moving, timepoint="m12")
    assert (before - visit.window_start).days == 10
    assert visit.history.latest().history_change_reason.endswith("(Protocol v2)")
    assert Visit.objects.get(patient=done, timepoint="m12").status == VisitStatus.COMPLETED
    assert protocol_changes.protocol_move_preview(protocol=protocol).moving == 0
    with pytest.raises(ValueError, match="reason"):
        protocol_changes.protocol_schedules_move(protocol=protocol, actor=data_manager, reason=" ")


def test_a_new_timepoint_is_counted_for_the_implants_that_lack_it(site_a, nurse, data_manager):
    make_implant(make_patient(site_a, actor=nurse), actor=nurse)
    protocol = FollowUpProtocol.default()
    record_save(ProtocolTimepoint(protocol=protocol, months=9, window_before_days=14,
                                  window_after_days=14), actor=data_manager, reason="m9 added")
    preview = protocol_changes.protocol_move_preview(protocol=protocol)
    assert preview.new_timepoints == ["m9"] and preview.implants_gaining == 1


def test_the_admin_says_it_after_the_save_and_moves_only_on_an_explicit_choice(
        dm_client, site_a, nurse, data_manager):
    patient = make_patient(site_a, actor=nurse)
    make_implant(patient, actor=nurse)
    protocol = widen_m12(data_manager)
    change_url = reverse("admin:registry_followupprotocol_change", args=[protocol.pk])
    saved = post_form(dm_client, change_url, change_reason="Reviewed")
    assert saved.status_code == 302, saved.context["adminform"].form.errors
    page = dm_client.get(saved["Location"]).content.decode()
    move_url = reverse("admin:registry_followupprotocol_move", args=[protocol.pk])
    assert "1 scheduled visit(s) of 1 implant(s) follow the old windows" in page and move_url in page

    preview = dm_client.get(move_url).content.decode()
    assert '<strong id="preview-moving">1</strong>' in preview
    before = Visit.objects.get(patient=patient, timepoint="m12").window_start
    # No choice, or a move without a reason: nothing moves.
    assert dm_client.post(move_url, {}).status_code == 400
    assert dm_client.post(move_url, {"choice": "move", "reason": ""}).status_code == 400
    assert dm_client.post(move_url, {"choice": "keep"}).status_code == 302
    assert Visit.objects.get(patient=patient, timepoint="m12").window_start == before
    moved = dm_client.post(move_url, {"choice": "move", "reason": "Protocol v2"}, follow=True)
    assert "1 scheduled visit(s) moved" in moved.content.decode()
    visit = Visit.objects.get(patient=patient, timepoint="m12")
    assert visit.window_start != before and visit.history.latest().history_user == data_manager


def test_nurses_cannot_move_schedules(client, nurse, site_a):
    client.login(username=nurse.username, password=PASSWORD)
    url = reverse("admin:registry_followupprotocol_move", args=[FollowUpProtocol.default().pk])
    assert client.post(url, {"choice": "move", "reason": "x"}).status_code == 403

import io

from django.core.management import call_command

from registry.models import Implant, Patient, Visit
from registry.services.audit import SYSTEM_USERNAME


def test_it_writes_a_deterministic_registry_with_history(db):
    call_command("seed_synthetic", "--patients", "25", "--seed", "3", "--quiet",
                 stdout=io.StringIO())
    first = list(Patient.objects.order_by("registry_id").values_list("registry_id", "sex",
                                                                      "birth_year"))
    assert len(first) == 25 and Implant.objects.count() == 25
    assert Visit.objects.filter(timepoint="baseline").count() == 25
    history = Visit.history.all()
    assert history.count() == Visit.objects.count()
    assert {h.history_user.username for h in history} == {SYSTEM_USERNAME}
    assert {h.history_change_reason for h in history} == {"Synthetic data (seed 3)"}
    assert set(Implant.objects.values_list("therapy", flat=True)) <= {"SCS", "DRG", "PNS", "CES"}


def test_load_demo_is_safe_to_rerun(db):
    out = io.StringIO()
    call_command("load_demo", stdout=out)
    count = Patient.objects.count()
    call_command("load_demo", stdout=out)
    assert Patient.objects.count() == count
    assert "already loaded" in out.getvalue()
    assert set(Implant.objects.values_list("therapy", flat=True)) == {"SCS", "DRG", "PNS", "CES"}
    assert {"traumatic", "postamputation"} <= set(Patient.objects.values_list("etiology",
                                                                              flat=True))


def test_a_full_schedule_plans_follow_up_to_the_end_of_the_protocol(db):
    from registry.models import FollowUpProtocol

    call_command("seed_synthetic", "--patients", "10", "--seed", "3", "--quiet", "--full-schedule",
                 stdout=io.StringIO())
    last = FollowUpProtocol.default().timepoints.order_by("-months").first()
    # Every implant has its protocol's last timepoint, years ahead, still to come
    # (or not applicable after an explant or withdrawal).
    final = Visit.objects.filter(timepoint=f"m{last.months}")
    assert final.count() == Implant.objects.count() == 10
    assert set(final.values_list("status", flat=True)) <= {"scheduled", "not_applicable"}
    assert Visit.objects.filter(status="scheduled").count() > Visit.objects.filter(
        status="completed").count()

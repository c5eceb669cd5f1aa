"""The safety workflow: awareness, derived reportability and deadlines (MDR Art. 87),
IMDRF codes, follow-up reports, device deficiencies, and the immediate alert sent once
(a real SMTP server on loopback; concurrent runs on PostgreSQL)."""

import datetime
import threading

import pytest
from django.core.exceptions import ValidationError
from django.db import close_old_connections, connection

from registry.models import AdverseEvent, ReminderLog
from registry.models.safety import DeviceDeficiency, SafetyFollowUp
from registry.services.audit import record_save
from registry.services.safety import (
    deficiency_reportability,
    device_deficiency_record,
    event_reportability,
    follow_up_record,
)
from registry.services.safety.alerts import safety_alert_send, safety_alerts_sweep
from tests.conftest import needs_postgres
from tests.factories import make_event
from tests.mailserver import restore_reference_data, smtp_server_fixture  # noqa: F401

D = datetime.date
TODAY = datetime.date.today()


def sade(patient, implant, **kwargs):
    fields = {"onset_date": TODAY - datetime.timedelta(days=3),
              "awareness_date": TODAY - datetime.timedelta(days=1),
              "category": "infection_deep", "serious": True, "serious_criterion": "hospitalisation",
              "severity": "severe", "device_relatedness": "probable",
              "procedure_relatedness": "possible", "anticipated": True, "action": "explant",
              "outcome": "ongoing", "resolved_on": None, **kwargs}
    return make_event(patient, implant, **fields)


def test_the_deadline_of_a_device_related_sae_runs_from_awareness(patient_a, implant_a, settings):
    settings.REGISTRY_SAFETY_DAYS_SERIOUS_INCIDENT = 15
    event = sade(patient_a, implant_a, onset_date=D(2021, 3, 1), awareness_date=D(2021, 3, 9))
    report = event_reportability(event)
    assert event.iso_class == "SADE"
    assert (report.reportable, report.days, report.deadline) == (True, 15, D(2021, 3, 24))
    assert "87(3)" in report.basis
    settings.REGISTRY_SAFETY_DAYS_SERIOUS_INCIDENT = 7  # the days are settings
    assert event_reportability(event).deadline == D(2021, 3, 16)


@pytest.mark.parametrize(("fields", "rule", "days"), [
    ({"anticipated": False}, "death_or_deterioration", 10),  # USADE
    ({"outcome": "fatal", "serious_criterion": "death"}, "death_or_deterioration", 10),
    ({"public_health_threat": True}, "public_health_threat", 2),
    ({"device_relatedness": "not_related", "procedure_relatedness": "not_related"},
     "not_reportable", None),  # SAE
    ({"serious": False, "serious_criterion": ""}, "trend", None),  # ADE
])
def test_the_rule_follows_mdr_article_87(patient_a, implant_a, fields, rule, days):
    if fields.get("outcome") == "fatal":
        fields["resolved_on"] = TODAY
    report = event_reportability(sade(patient_a, implant_a, **fields))
    assert (report.rule, report.days) == (rule, days)


def test_an_event_without_an_awareness_date_is_aware_from_its_onset(patient_a, implant_a):
    event = make_event(patient_a, implant_a)
    assert event.awareness_date == event.onset_date
    with pytest.raises(ValidationError, match="before the onset"):
        make_event(patient_a, implant_a, awareness_date=D(2020, 3, 1))


def test_imdrf_codes_are_proposed_from_the_category_and_stay_editable(patient_a, implant_a):
    event = sade(patient_a, implant_a, category="lead_migration", action="revision")
    assert (event.imdrf_device_problem, event.imdrf_clinical_signs,
            event.imdrf_health_impact) == ("A010402", "E2110", "F08")
    event.imdrf_device_problem = "a051201"
    record_save(event, actor=None, reason="coded by the vigilance officer")
    event.refresh_from_db()
    assert event.imdrf_device_problem == "A051201"
    event.imdrf_clinical_signs = "X12"
    with pytest.raises(ValidationError, match="not an IMDRF Annex E code"):
        record_save(event, actor=None, reason="typo")


def test_follow_up_reports_run_until_the_event_is_closed(patient_a, implant_a, nurse):
    event = sade(patient_a, implant_a)
    follow_up_record(follow_up=SafetyFollowUp(adverse_event=event, report_date=TODAY,
                                              outcome="ongoing"), actor=nurse)
    follow_up_record(follow_up=SafetyFollowUp(adverse_event=event, report_date=TODAY,
                                              outcome="resolved", resolved_on=TODAY), actor=nurse)
    event.refresh_from_db()
    assert (event.outcome, event.resolved_on, event.follow_ups.count()) == ("resolved", TODAY, 2)
    assert event.history.first().history_user == nurse
    with pytest.raises(ValidationError, match="closed"):
        follow_up_record(follow_up=SafetyFollowUp(adverse_event=event, report_date=TODAY,
                                                  outcome="ongoing"), actor=nurse)


def test_a_device_deficiency_with_or_without_an_adverse_event(patient_a, implant_a, nurse):
    alone = device_deficiency_record(deficiency=DeviceDeficiency(
        patient=patient_a, implant=implant_a, observed_on=D(2021, 5, 1), kind="malfunction",
        might_have_led_to_serious=True, imdrf_device_problem="A0705"), actor=nurse)
    report = deficiency_reportability(alone)
    assert (report.rule, report.deadline) == ("serious_incident", D(2021, 5, 16))
    harmless = device_deficiency_record(deficiency=DeviceDeficiency(
        patient=patient_a, implant=implant_a, observed_on=D(2021, 5, 1), kind="labelling"),
        actor=nurse)
    assert not deficiency_reportability(harmless).reportable
    event = sade(patient_a, implant_a, anticipated=False)
    with_event = device_deficiency_record(deficiency=DeviceDeficiency(
        patient=patient_a, implant=implant_a, adverse_event=event, observed_on=event.onset_date,
        kind="malfunction"), actor=nurse)
    assert deficiency_reportability(with_event).rule == "death_or_deterioration"


def test_the_alert_of_a_sade_is_sent_once_under_repeated_runs(patient_a, implant_a, site_a,
                                                               smtp_server):
    site_a.safety_emails = "vigilance@aaa.example.org"
    record_save(site_a, actor=None, reason="test")
    event = sade(patient_a, implant_a)
    assert safety_alert_send(event=event) == "sent"
    assert safety_alert_send(event=event) == "already claimed"
    assert safety_alerts_sweep() == {}
    assert len(smtp_server.messages) == 1
    assert smtp_server.to() == ["vigilance@aaa.example.org"]
    text = smtp_server.text()
    assert patient_a.registry_id in text and "SADE" in text
    assert event_reportability(event).deadline.isoformat() in text
    log = ReminderLog.objects.get()
    assert (log.kind, log.status, log.adverse_event_id, log.visit_id) == (
        "safety_sade", "sent", event.pk, None)


def test_an_upgrade_is_alerted_once_more_per_class_under_repeated_runs(patient_a, implant_a,
                                                                        smtp_server):
    event = make_event(patient_a, implant_a, device_relatedness="not_related",
                       procedure_relatedness="not_related", onset_date=TODAY,
                       outcome="ongoing", resolved_on=None)  # AE: no alert
    assert (safety_alert_send(event=event), safety_alerts_sweep()) == ("not serious", {})
    event.serious, event.serious_criterion = True, "hospitalisation"
    record_save(event, actor=None, reason="hospitalised")  # AE -> SAE
    assert event.iso_class == "SAE"
    for _ in range(3):
        safety_alerts_sweep()
        safety_alert_send(event=event)
    event.device_relatedness = "probable"
    record_save(event, actor=None, reason="related after all")  # SAE -> SADE
    assert event.iso_class == "SADE"
    assert safety_alerts_sweep() == {"sent": 1}
    assert safety_alert_send(event=event) == "already claimed"
    assert safety_alerts_sweep() == {}
    event.anticipated = False
    record_save(event, actor=None, reason="not in the risk analysis")  # SADE -> USADE
    assert safety_alert_send(event=event) == "sent"
    assert safety_alerts_sweep() == {}
    event.anticipated = True
    record_save(event, actor=None, reason="it was anticipated")  # back to SADE: covered
    assert safety_alerts_sweep() == {}
    assert safety_alert_send(event=event) == "already claimed"
    subjects = [message["Subject"].split()[1] for _, message in smtp_server.messages]
    assert subjects == ["SAE", "SADE", "USADE"]
    assert sorted(ReminderLog.objects.filter(adverse_event=event).values_list("kind", "status")) == [
        ("safety_alert", "sent"), ("safety_sade", "sent"), ("safety_usade", "sent")]


def test_a_refused_alert_is_sent_by_the_next_sweep(patient_a, implant_a, smtp_server):
    event = sade(patient_a, implant_a)
    smtp_server.refuse = "451 4.3.0 Try again later"
    assert safety_alerts_sweep() == {"failed": 1}
    assert ReminderLog.objects.get().status == "failed"
    smtp_server.refuse = None
    assert safety_alerts_sweep() == {"sent": 1}
    assert safety_alerts_sweep() == {}
    assert len(smtp_server.messages) == 1
    assert ReminderLog.objects.get(adverse_event=event).attempts == 2


def test_non_serious_and_old_events_get_no_alert(patient_a, implant_a, smtp_server, settings):
    make_event(patient_a, implant_a)  # AE
    settings.REGISTRY_SAFETY_ALERT_LOOKBACK_DAYS = 30
    sade(patient_a, implant_a, onset_date=D(2020, 3, 20), awareness_date=D(2020, 3, 21))
    assert safety_alerts_sweep() == {}
    assert smtp_server.messages == []


def test_a_digest_does_not_take_over_a_failed_alert(patient_a, implant_a, site_a, smtp_server):
    from registry.services import reminders
    from registry.services.audit import system_user

    sade(patient_a, implant_a)
    smtp_server.refuse = "451 4.3.0 Try again later"
    safety_alerts_sweep()
    smtp_server.refuse = None
    reminders.site_digest_send(site=site_a, actor=system_user(), day=TODAY)
    assert ReminderLog.objects.get(kind="safety_sade").status == "failed"


@needs_postgres()
@pytest.mark.django_db(transaction=True)
def test_concurrent_runs_send_the_alert_once(site_a, nurse, smtp_server):
    from tests.factories import make_implant, make_patient

    try:
        patient = make_patient(site_a)
        event = sade(patient, make_implant(patient))
        barrier, results = threading.Barrier(4), []

        def run():
            try:
                barrier.wait()
                results.append(safety_alert_send(event=AdverseEvent.objects.get(pk=event.pk)))
            finally:
                close_old_connections()
                connection.close()

        threads = [threading.Thread(target=run) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(results) == ["already claimed"] * 3 + ["sent"]
        assert len(smtp_server.messages) == 1
    finally:
        restore_reference_data()

"""Adverse events show their derived ISO 14155 class and stand out when serious;
the follow-up filters find what is due, overdue or missing an NRS."""

import datetime

from django.urls import reverse
from django.utils import timezone

from registry.models import Visit
from tests.admin.conftest import post_form
from tests.factories import make_event, make_implant, make_patient, make_visit


def listed(client, model, query=""):
    response = client.get(reverse(f"admin:registry_{model}_changelist") + query)
    assert response.status_code == 200
    return response, list(response.context["cl"].result_list)


def test_the_event_page_shows_the_derived_iso_class(login, nurse, patient_a, implant_a):
    event = make_event(patient_a, implant_a, serious=True, serious_criterion="hospitalisation",
                       device_relatedness="probable", anticipated=False, outcome="ongoing",
                       resolved_on=None)
    page = login(nurse).get(reverse("admin:registry_adverseevent_change", args=[event.pk]))
    assert "USADE – Unanticipated serious adverse device effect" in page.content.decode()
    assert "iso_class" not in page.context["adminform"].form.fields  # derived, never typed


def test_serious_events_are_highlighted_and_filtered_in_the_list(login, nurse, patient_a, implant_a):
    serious = make_event(patient_a, implant_a, serious=True, serious_criterion="hospitalisation",
                         category="infection_deep", severity="severe")
    mild = make_event(patient_a, implant_a, procedure_relatedness="not_related")
    client = login(nurse)
    response, rows = listed(client, "adverseevent")
    assert set(rows) == {serious, mild}
    assert 'class="registry-badge"' in response.content.decode()
    assert listed(client, "adverseevent", "?iso_class=SADE")[1] == [serious]
    assert listed(client, "adverseevent", "?iso_class=AE")[1] == [mild]


def test_closing_an_event_then_changing_it_needs_a_reason(login, nurse, patient_a, implant_a):
    event = make_event(patient_a, implant_a)  # resolved: closed
    url = reverse("admin:registry_adverseevent_change", args=[event.pk])
    response = post_form(login(nurse), url, severity="moderate")
    assert "change_reason" in response.context["adminform"].form.errors
    event.refresh_from_db()
    assert event.severity == "mild"


def test_follow_up_filters_find_due_overdue_and_missing_nrs(login, nurse, patient_a, implant_a):
    today = datetime.date.today()
    Visit.objects.filter(patient=patient_a).delete()

    def visit(code, **kw):
        return make_visit(patient_a, implant_a, timepoint=code, date_done=None, nrs=None, **kw)

    due = visit("m12", status="scheduled", target_date=today + datetime.timedelta(days=3),
                window_start=today - datetime.timedelta(days=27),
                window_end=today + datetime.timedelta(days=33))
    overdue = visit("m6", status="scheduled", target_date=today - datetime.timedelta(days=40),
                    window_start=today - datetime.timedelta(days=70),
                    window_end=today - datetime.timedelta(days=10))
    later = visit("m24", status="scheduled", target_date=today + datetime.timedelta(days=300),
                  window_start=today + datetime.timedelta(days=240),
                  window_end=today + datetime.timedelta(days=360))
    no_nrs = make_visit(patient_a, implant_a, timepoint="m3", status="completed",
                        date_done=datetime.date(2020, 6, 1), nrs=None)
    client = login(nurse)
    assert listed(client, "visit", "?follow_up=due_week")[1] == [due]
    assert listed(client, "visit", "?follow_up=overdue")[1] == [overdue]
    assert listed(client, "visit", "?follow_up=missing_nrs")[1] == [no_nrs]
    assert later not in listed(client, "visit", "?follow_up=due_week")[1]
    assert listed(client, "patient", "?follow_up=overdue")[1] == [patient_a]
    response, _ = listed(client, "visit", "?follow_up=overdue")
    assert "overdue" in response.content.decode()


def test_overdue_and_due_follow_each_sites_own_day(login, monkeypatch, data_manager, nurse_b,
                                                   patient_a, implant_a, site_b):
    """At 03:00 UTC on 10 March 2026 it is the 10th in Amsterdam (site AAA) but
    still the 9th in New York (site BBB): a window closing on the 9th is overdue
    at AAA and still open at BBB, whatever day the server's clock says."""
    patient_b = make_patient(site_b, actor=nurse_b)
    implant_b = make_implant(patient_b, actor=nurse_b)
    Visit.objects.filter(patient__in=[patient_a, patient_b]).delete()
    window = {"status": "scheduled", "date_done": None, "nrs": None, "timepoint": "m6",
              "target_date": datetime.date(2026, 2, 20), "window_start": datetime.date(2026, 1, 30),
              "window_end": datetime.date(2026, 3, 9)}
    at_amsterdam = make_visit(patient_a, implant_a, **window)
    at_new_york = make_visit(patient_b, implant_b, actor=nurse_b, **window)
    # Opening a week after the 10th: due this week in Amsterdam, not yet in New York.
    opening = {**window, "timepoint": "m12", "target_date": datetime.date(2026, 4, 1),
               "window_start": datetime.date(2026, 3, 17), "window_end": datetime.date(2026, 4, 20)}
    opening_amsterdam = make_visit(patient_a, implant_a, **opening)
    make_visit(patient_b, implant_b, actor=nurse_b, **opening)
    moment = datetime.datetime(2026, 3, 10, 3, 0, tzinfo=datetime.UTC)
    monkeypatch.setattr(timezone, "now", lambda: moment)

    client = login(data_manager)
    assert listed(client, "visit", "?follow_up=overdue")[1] == [at_amsterdam]
    assert set(listed(client, "visit", "?follow_up=due_week")[1]) == {at_new_york, opening_amsterdam}
    assert listed(client, "patient", "?follow_up=overdue")[1] == [patient_a]
    assert set(listed(client, "patient", "?follow_up=due_week")[1]) == {patient_a, patient_b}
    assert listed(login(nurse_b), "patient", "?follow_up=due_week")[1] == [patient_b]
    assert listed(login(nurse_b), "visit", "?follow_up=due_week")[1] == [at_new_york]

    page, rows = listed(login(nurse_b), "visit", "?timepoint=m6")
    assert rows == [at_new_york] and "overdue</span>" not in page.content.decode()
    page, rows = listed(login(data_manager), "visit", "?follow_up=overdue")
    assert "overdue</span>" in page.content.decode()
    hub = login(nurse_b).get(reverse("admin:registry_patient_change", args=[patient_b.pk]))
    assert hub.context["hub"]["next_due_overdue"] is False

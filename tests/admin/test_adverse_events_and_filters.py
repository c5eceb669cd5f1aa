"""Adverse events show their derived ISO 14155 class and stand out when serious;
the follow-up filters find what is due, overdue or missing an NRS."""

import datetime

from django.urls import reverse

from registry.models import Visit
from tests.admin.conftest import post_form
from tests.factories import make_event, make_visit


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

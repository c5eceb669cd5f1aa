"""The worklist: one definition per category, read by the home page and the digest."""

import datetime
from unittest import mock

import pytest
from django.urls import reverse

from registry.models import Visit, VisitStatus
from registry.services import worklist
from registry.services.audit import system_user
from registry.services.reminders import site_digest_send
from tests.conftest import PASSWORD
from tests.factories import make_event, make_implant, make_patient, make_visit

DAY = datetime.date(2026, 10, 24)


def scheduled(patient, implant, timepoint, start, end):
    return make_visit(patient, implant, timepoint=timepoint, status=VisitStatus.SCHEDULED,
                      date_done=None, nrs=None, target_date=start, window_start=start,
                      window_end=end)


def a_site_with_work(site, actor, day=DAY):
    """One visit in each state around `day`, plus one without NRS and an open event."""
    patient = make_patient(site, actor=actor)
    implant = make_implant(patient, actor=actor)
    Visit.objects.filter(implant=implant).delete()  # the generated schedule: not this test's
    d = datetime.timedelta
    scheduled(patient, implant, "m1", day - d(40), day - d(1))  # overdue
    scheduled(patient, implant, "m3", day - d(60), day)  # open now (closes today)
    scheduled(patient, implant, "m6", day, day + d(30))  # open now (opened today)
    scheduled(patient, implant, "m12", day + d(1), day + d(40))  # opening soon
    scheduled(patient, implant, "m24", day + d(14), day + d(50))  # opening soon (last day)
    scheduled(patient, implant, "m36", day + d(15), day + d(60))  # later
    make_visit(patient, implant, timepoint="m48", status=VisitStatus.COMPLETED,
               date_done=datetime.date(2021, 3, 1), nrs=None)
    make_event(patient, implant, actor=actor, outcome="ongoing", resolved_on=None)
    return patient


EXPECTED = {"overdue": 1, "open_now": 2, "opening_soon": 2, "no_nrs": 1, "open_events": 1,
            "open_queries": 0, "pending_questionnaires": 0}


def test_each_category_counts_its_rows_on_the_sites_day(site_a, nurse):
    a_site_with_work(site_a, nurse)
    assert worklist.site_counts(site_a, DAY) == EXPECTED


def test_the_window_state_of_a_loaded_row_is_the_querys(site_a, nurse):
    a_site_with_work(site_a, nurse)
    days = {DAY: [site_a.pk]}
    for visit in Visit.objects.filter(status=VisitStatus.SCHEDULED):
        state = worklist.window_state(visit.window_start, visit.window_end, DAY)
        for key in ("overdue", "open_now", "opening_soon"):
            in_query = worklist.rows(worklist.category(key), days).filter(pk=visit.pk).exists()
            assert in_query is (state == key), (visit.timepoint, key, state)


def test_the_digest_carries_the_same_counts_and_says_when_a_window_is_open(site_a, nurse):
    a_site_with_work(site_a, nurse)
    result = site_digest_send(site=site_a, actor=system_user(), day=DAY, dry_run=True)
    assert result.worklist == EXPECTED
    states = {line.timepoint: line.state_label for line in result.due_soon}
    # A window that opened days ago is "open now", not "opens soon" (issue 19).
    assert states["m6"] == "window open now"
    assert states["m12"] == f"window opens {(DAY + datetime.timedelta(days=1)).isoformat()}"


def test_counts_across_sites_take_each_sites_own_day(site_a, site_b, nurse, nurse_b):
    # 23:30 UTC: 25 Oct in Amsterdam, still 24 Oct in New York.
    a_site_with_work(site_a, nurse, day=DAY + datetime.timedelta(days=1))
    a_site_with_work(site_b, nurse_b, day=DAY)
    at = datetime.datetime(2026, 10, 24, 23, 30, tzinfo=datetime.UTC)
    found = worklist.counts([(site_a.pk, site_a.timezone), (site_b.pk, site_b.timezone)], at)
    assert found == {site_a.pk: EXPECTED, site_b.pk: EXPECTED}


@pytest.fixture
def home(client, nurse):
    client.login(username=nurse.username, password=PASSWORD)
    return client


def test_the_home_page_shows_the_counts_with_links_to_the_filtered_lists(home, site_a, nurse):
    a_site_with_work(site_a, nurse)
    at = datetime.datetime.combine(DAY, datetime.time(12), tzinfo=datetime.UTC)
    with mock.patch.object(worklist, "now", return_value=at):
        page = home.get(reverse("admin:index"))
    html = page.content.decode()
    assert "Django administration" not in html and "Neuromodulation pain registry" in html
    rows = {row["key"]: row for row in page.context["worklist"]}
    assert {key: row["total"] for key, row in rows.items()} == EXPECTED
    url = rows["open_now"]["cells"][0]["url"]
    assert url == f"{reverse('admin:registry_visit_changelist')}?follow_up=open_now&site={site_a.pk}"
    with mock.patch.object(worklist, "now", return_value=at):
        listing = home.get(url)
    assert listing.context["cl"].result_count == EXPECTED["open_now"]
    assert "Enter visit" in listing.content.decode()


def test_the_home_page_costs_a_bounded_number_of_queries(home, site_a, nurse,
                                                         django_assert_max_num_queries):
    for _ in range(3):
        a_site_with_work(site_a, nurse)
    with django_assert_max_num_queries(25):
        assert home.get(reverse("admin:index")).status_code == 200


def test_investigators_get_no_worklist(client, investigator, site_a, nurse):
    a_site_with_work(site_a, nurse)
    client.login(username=investigator.username, password=PASSWORD)
    page = client.get(reverse("admin:index"))
    assert page.status_code == 200 and "worklist" not in page.context


def test_open_queries_and_pending_questionnaires_count_alike_on_the_page_and_in_the_digest(
        client, site_a, site_b, nurse, data_manager):
    from registry.models import EproLink
    from registry.services import epro, queries
    from tests.epro.conftest import open_m3

    _, visit = open_m3(site_a)
    _, answered = open_m3(site_a)
    _, other = open_m3(site_b)  # another site's link: not hers
    for v in (visit, answered, other):
        epro.link_create(visit=v, channel=EproLink.Channel.PRINTED, actor=nurse)
    EproLink.objects.filter(visit=answered).update(submitted_at=worklist.now())
    queries.query_open(record=visit, field="nrs", text="Is this right?", actor=data_manager)
    q = queries.query_open(record=answered, field="nrs", text="And this?", actor=data_manager)
    queries.query_answer(query=q, text="Yes.", actor=nurse)  # waits for the data manager now

    # The services the issue names and the shared categories agree.
    assert queries.open_queries_for(nurse).open == 1
    assert epro.pending_invitations_for(nurse) == 1
    found = worklist.counts([(site_a.pk, site_a.timezone)])[site_a.pk]
    assert found["open_queries"] == 1 and found["pending_questionnaires"] == 1

    # The digest of the same day and the home page say the same figures.
    from registry.services.dates import site_today
    day = site_today(site_a.timezone)
    result = site_digest_send(site=site_a, actor=system_user(), day=day, dry_run=True)
    assert result.worklist == found
    assert len(result.open_queries) == found["open_queries"]  # the digest's list of them
    client.login(username=nurse.username, password=PASSWORD)
    page = client.get(reverse("admin:index"))
    rows = {row["key"]: row for row in page.context["worklist"]}
    assert rows["open_queries"]["total"] == 1 and rows["pending_questionnaires"]["total"] == 1
    # Each count links to a list holding exactly those rows.
    for key in ("open_queries", "pending_questionnaires"):
        listing = client.get(rows[key]["cells"][0]["url"])
        assert listing.status_code == 200 and listing.context["cl"].result_count == 1, key

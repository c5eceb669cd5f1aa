"""Investigators see every clinical date in the admin shifted by the patient's
shift (services.deid), as in the API: change pages, change lists, the patient
hub. Nothing that tells the real calendar position is offered to them (the
"due this week" / "overdue" filters and badges, filters on clinical dates, the
history pages, the reminder log). Nurses and data managers see real dates."""

import datetime

import pytest
from django.urls import reverse
from django.utils import formats

from registry.models import Revision, Visit
from registry.services import deid
from registry.services.audit import record_save
from tests.factories import make_event, make_implant, make_patient, make_visit

D = datetime.date


def renderings(day: datetime.date) -> list[str]:
    """The ways the admin writes a date: read-only fields, inputs, the hub and lists, ISO."""
    return [formats.localize(day), formats.localize_input(day), f"{day:%d %b %Y}", day.isoformat()]


def assert_shows_shifted(html: str, real_dates, days: int):
    """Each date appears shifted by `days`, and no real date appears (unless it is
    also one of the shifted ones: a visit window, say, that the shift lands on)."""
    assert days, "a shift of 0 days would make this check meaningless"
    shifted = {deid.shifted(day, days) for day in real_dates}
    for day in real_dates:
        moved = deid.shifted(day, days)
        assert any(text in html for text in renderings(moved)), (day, moved)
        if day not in shifted:
            for text in renderings(day):
                assert text not in html, (day, text)


def assert_shows_real(html: str, real_dates):
    for day in real_dates:
        assert any(text in html for text in renderings(day)), day


@pytest.fixture
def record(site_a, nurse):
    """A patient with an implant, a revision, a completed and a scheduled visit and an
    adverse event; the dates years apart, so a shifted date never is another real one."""
    patient = make_patient(site_a, actor=nurse, consent_date=D(2012, 5, 14),
                           consent_status="withdrawn", withdrawal_date=D(2024, 6, 20))
    implant = make_implant(patient, actor=nurse, trial_start=D(2013, 7, 2), trial_end=D(2013, 7, 12),
                           implant_date=D(2014, 8, 11), explant_date=D(2023, 3, 3),
                           explant_reason="infection")
    Visit.objects.filter(patient=patient).delete()  # the protocol's schedule: dates of every month
    revision = record_save(Revision(implant=implant, date=D(2015, 9, 21), reason="lead fracture"),
                           actor=nurse)
    done = make_visit(patient, implant, actor=nurse, timepoint="m12", status="completed",
                      target_date=D(2016, 10, 30), window_start=D(2016, 9, 30),
                      window_end=D(2016, 11, 29), date_done=D(2016, 11, 2), nrs=3)
    due = make_visit(patient, implant, actor=nurse, timepoint="m24", status="scheduled",
                     date_done=None, nrs=None, target_date=D(2018, 1, 15),
                     window_start=D(2017, 11, 16), window_end=D(2018, 3, 16))
    event = make_event(patient, implant, actor=nurse, onset_date=D(2019, 4, 8),
                       resolved_on=D(2020, 5, 25))
    return {"patient": patient, "implant": implant, "revision": revision, "done": done, "due": due,
            "event": event, "days": deid.date_shift_days(patient.registry_id)}


def change_url(obj):
    return reverse(f"admin:registry_{obj._meta.model_name}_change", args=[obj.pk])


# --- change pages ------------------------------------------------------------------


def test_an_investigator_sees_the_consent_and_withdrawal_dates_shifted_on_the_patient_page(
        login, investigator, record):
    patient = record["patient"]
    page = login(investigator).get(change_url(patient))
    assert page.status_code == 200
    html = page.content.decode()
    assert_shows_shifted(html, [patient.consent_date, patient.withdrawal_date], record["days"])
    assert html.count(deid.SHIFTED_NOTE) == 1


def test_an_investigator_sees_the_patient_hub_with_shifted_dates_and_no_overdue(
        login, investigator, record):
    page = login(investigator).get(change_url(record["patient"]))
    html = page.content.decode()
    implant, done, due, event = record["implant"], record["done"], record["due"], record["event"]
    assert_shows_shifted(html, [
        implant.trial_start, implant.implant_date, implant.explant_date,
        done.target_date, done.window_end, done.date_done,
        due.target_date, due.window_end, event.onset_date,
    ], record["days"])
    hub = page.context["hub"]
    # Next visit due: the shifted target; "overdue" would compare the real window with today.
    assert hub["next_due"].target_date == deid.shifted(due.target_date, record["days"])
    assert not hub["next_due_overdue"] and "overdue" not in html.lower()


def test_an_investigator_sees_the_visit_dates_shifted_by_the_patients_shift(
        login, investigator, record):
    visit = record["done"]
    page = login(investigator).get(change_url(visit))
    assert page.status_code == 200
    html = page.content.decode()
    assert_shows_shifted(html, [visit.target_date, visit.window_start, visit.window_end,
                                visit.date_done], record["days"])
    assert html.count(deid.SHIFTED_NOTE) == 1


def test_an_investigator_sees_the_adverse_event_onset_and_resolution_shifted(
        login, investigator, record):
    event = record["event"]
    page = login(investigator).get(change_url(event))
    assert page.status_code == 200
    assert_shows_shifted(page.content.decode(), [event.onset_date, event.resolved_on], record["days"])


def test_an_investigator_sees_the_trial_implant_and_explant_dates_shifted(login, investigator, record):
    implant = record["implant"]
    page = login(investigator).get(change_url(implant))
    assert page.status_code == 200
    assert_shows_shifted(page.content.decode(), [implant.trial_start, implant.trial_end,
                                                 implant.implant_date, implant.explant_date],
                         record["days"])


def test_an_investigator_sees_the_revision_date_shifted(login, investigator, record):
    revision = record["revision"]
    client = login(investigator)
    page = client.get(change_url(revision))
    assert page.status_code == 200
    assert_shows_shifted(page.content.decode(), [revision.date], record["days"])
    listing = client.get(reverse("admin:registry_revision_changelist"))
    assert_shows_shifted(listing.content.decode(), [revision.date], record["days"])


def test_an_investigator_cannot_save_a_visit_and_nothing_moves(login, investigator, record):
    visit = record["done"]
    response = login(investigator).post(change_url(visit), {
        "nrs": "9", "date_done": "2001-01-01", "change_reason": "try", "edit_version": visit.version})
    assert response.status_code == 403
    stored = Visit.objects.get(pk=visit.pk)
    assert (stored.nrs, stored.date_done, stored.version) == (3, visit.date_done, visit.version)


def test_a_shifted_row_is_never_written_back(rf, investigator, record):
    from django.contrib.admin import site
    from django.core.exceptions import PermissionDenied

    request = rf.get("/")
    request.user = investigator
    admin = site._registry[Visit]
    visit = admin.get_object(request, str(record["done"].pk))
    assert visit.date_done == deid.shifted(record["done"].date_done, record["days"])
    with pytest.raises(PermissionDenied):
        admin.check_site(request, visit)
    with pytest.raises(PermissionDenied):
        admin.delete_model(request, visit)


# --- change lists ------------------------------------------------------------------


def test_an_investigator_sees_the_visit_list_with_shifted_dates_and_windows(
        login, investigator, record):
    page = login(investigator).get(reverse("admin:registry_visit_changelist"))
    assert page.status_code == 200
    html = page.content.decode()
    done, due, days = record["done"], record["due"], record["days"]
    assert_shows_shifted(html, [done.target_date, done.date_done, due.target_date, due.window_end],
                         days)
    start, end = deid.shifted(due.window_start, days), deid.shifted(due.window_end, days)
    assert f"{start:%d %b} – {end:%d %b %Y}" in html
    assert "overdue" not in html.lower()  # neither the badge nor the filter
    assert html.count(deid.SHIFTED_NOTE) == 1


def test_an_investigator_sees_the_patient_list_with_the_next_visit_due_shifted_and_no_badge(
        login, investigator, record):
    page = login(investigator).get(reverse("admin:registry_patient_changelist"))
    assert page.status_code == 200
    html = page.content.decode()
    assert_shows_shifted(html, [record["due"].target_date], record["days"])
    assert "registry-badge" not in html and "overdue" not in html.lower()


def test_an_investigator_sees_the_implant_and_event_lists_shifted(login, investigator, record):
    client = login(investigator)
    implant, event, days = record["implant"], record["event"], record["days"]
    implants = client.get(reverse("admin:registry_implant_changelist")).content.decode()
    assert_shows_shifted(implants, [implant.implant_date, implant.explant_date], days)
    events = client.get(reverse("admin:registry_adverseevent_changelist")).content.decode()
    assert_shows_shifted(events, [event.onset_date, event.resolved_on], days)


# --- nothing that tells the real day -----------------------------------------------


@pytest.mark.parametrize("url_name", ["admin:registry_visit_changelist",
                                      "admin:registry_patient_changelist"])
def test_an_investigator_is_not_offered_due_this_week_or_overdue(login, investigator, record,
                                                                 url_name):
    page = login(investigator).get(reverse(url_name))
    follow_up = next(f for f in page.context["cl"].filter_specs if f.title == "follow-up")
    assert [label for _, label in follow_up.lookup_choices] == ["Completed without NRS"]


@pytest.mark.parametrize("kind", ["overdue", "due_week", "open_now", "opening_soon"])
@pytest.mark.parametrize("url_name", ["admin:registry_visit_changelist",
                                      "admin:registry_patient_changelist"])
def test_an_investigators_due_or_overdue_link_is_ignored_and_says_so(login, investigator, record,
                                                                     url_name, kind):
    client = login(investigator)
    everything = client.get(reverse(url_name))
    page = client.get(reverse(url_name), {"follow_up": kind})
    assert page.status_code == 200
    # The rows are not filtered by the real day: the same rows as without the filter.
    assert list(page.context["cl"].result_list) == list(everything.context["cl"].result_list)
    assert len(page.context["cl"].result_list) >= 1
    notes = [str(m) for m in page.context["messages"]]
    assert len(notes) == 1 and "is not filtered by it" in notes[0], notes


@pytest.mark.parametrize(("url_name", "lookup"), [
    ("admin:registry_visit_changelist", "target_date__gte"),
    ("admin:registry_visit_changelist", "date_done__lt"),
    ("admin:registry_visit_changelist", "patient__consent_date__year"),
    ("admin:registry_patient_changelist", "consent_date__gte"),
    ("admin:registry_patient_changelist", "implants__implant_date__lte"),
    ("admin:registry_adverseevent_changelist", "onset_date__gte"),
    ("admin:registry_implant_changelist", "implant_date__range"),
])
def test_an_investigator_cannot_filter_a_list_on_a_clinical_date(login, investigator, record,
                                                                 url_name, lookup):
    # Bisecting a date range would reveal the real date behind the shifted one.
    value = "2015" if lookup.endswith("__year") else "2015-01-01"
    if lookup.endswith("__range"):
        value = "2015-01-01,2015-12-31"
    response = login(investigator).get(reverse(url_name), {lookup: value})
    assert response.status_code == 400


def test_no_clinical_list_offers_an_investigator_a_date_filter_or_hierarchy(login, investigator,
                                                                            record):
    from django.contrib.admin import site

    from registry.admin import dates

    client = login(investigator)
    for model in dates.REGISTRY_ID_PATH:
        page = client.get(reverse(f"admin:registry_{model._meta.model_name}_changelist"))
        assert page.status_code == 200, model
        cl = page.context["cl"]
        assert not (cl.date_hierarchy and dates.is_clinical_date_lookup(model, cl.date_hierarchy))
        for spec in site._registry[model].get_list_filter(page.wsgi_request):
            assert not dates.list_filter_on_date(model, spec), (model, spec)


def test_an_investigator_cannot_open_the_history_pages(login, investigator, record):
    client = login(investigator)
    for name in ("patient", "implant", "revision", "done", "event"):
        row = record[name]
        prefix = f"admin:registry_{row._meta.model_name}"
        version = row.history.latest("history_date").history_id
        for url in (reverse(f"{prefix}_history", args=[row.pk]),
                    reverse(f"{prefix}_simple_history", args=[row.pk, version])):
            response = client.get(url)
            assert response.status_code == 404, url
        assert 'class="historylink"' not in client.get(change_url(row)).content.decode()
    # A record that does not exist gets the same answer.
    assert client.get(reverse("admin:registry_visit_history", args=[999999])).status_code == 404


def test_an_investigator_has_no_reminder_log(login, investigator, site_a, record):
    from registry.models import ReminderLog
    from registry.services import reminders
    from registry.services.audit import system_user

    patient = make_patient(site_a, consent_date=D(2019, 6, 1))
    make_implant(patient, trial_start=D(2020, 2, 10), trial_end=D(2020, 2, 20),
                 implant_date=D(2020, 3, 1))
    reminders.site_digest_send(site=site_a, actor=system_user(), day=D(2020, 3, 25))
    log = ReminderLog.objects.filter(site=site_a).first()
    assert log is not None
    client = login(investigator)
    index = client.get(reverse("admin:index")).content.decode()
    assert "Reminder logs" not in index
    assert client.get(reverse("admin:registry_reminderlog_changelist")).status_code == 403
    assert client.get(reverse("admin:registry_reminderlog_change", args=[log.pk])).status_code == 403
    visit_page = client.get(change_url(log.visit))
    assert visit_page.status_code == 200
    assert "Reminders (from the daily follow-up digest)" not in visit_page.content.decode()
    site_page = client.get(change_url(site_a))
    assert site_page.status_code == 200
    assert "Reminders (from the daily follow-up digest)" not in site_page.content.decode()


# --- nurses and data managers: as before ------------------------------------------------


@pytest.mark.parametrize("role", ["nurse", "data_manager"])
def test_a_nurse_or_data_manager_still_sees_the_real_dates(request, login, record, role):
    client = login(request.getfixturevalue(role))
    implant, done, due, event = record["implant"], record["done"], record["due"], record["event"]
    patient = record["patient"]
    hub = client.get(change_url(patient)).content.decode()
    assert_shows_real(hub, [patient.consent_date, patient.withdrawal_date, implant.implant_date,
                            done.date_done, due.target_date, event.onset_date])
    assert deid.SHIFTED_NOTE not in hub and 'class="historylink"' in hub
    assert "overdue" in hub  # the scheduled visit's window closed years ago
    assert_shows_real(client.get(change_url(done)).content.decode(),
                      [done.target_date, done.window_start, done.window_end, done.date_done])
    assert_shows_real(client.get(change_url(event)).content.decode(),
                      [event.onset_date, event.resolved_on])
    assert_shows_real(client.get(change_url(implant)).content.decode(),
                      [implant.trial_start, implant.implant_date, implant.explant_date])
    visits = client.get(reverse("admin:registry_visit_changelist"))
    assert_shows_real(visits.content.decode(), [done.date_done, due.target_date])
    assert "registry-badge" in visits.content.decode()  # the overdue badge
    assert client.get(reverse("admin:registry_visit_history", args=[done.pk])).status_code == 200


def test_a_nurse_still_filters_overdue_and_by_date(login, nurse, record):
    client = login(nurse)
    url = reverse("admin:registry_visit_changelist")
    follow_up = next(f for f in client.get(url).context["cl"].filter_specs if f.title == "follow-up")
    assert [kind for kind, _ in follow_up.lookup_choices] == [
        "overdue", "open_now", "opening_soon", "due_week", "missing_nrs", "questionnaire_pending"]
    overdue = client.get(url, {"follow_up": "overdue"})
    assert list(overdue.context["cl"].result_list) == [record["due"]]
    dated = client.get(url, {"date_done__gte": "2016-01-01"})
    assert dated.status_code == 200 and list(dated.context["cl"].result_list) == [record["done"]]

"""The reminder log in the admin: per site, per visit, scoped to the user's sites."""

import datetime

from django.urls import reverse

from registry.models import ReminderLog
from registry.services import reminders
from registry.services.audit import system_user
from tests.factories import make_implant, make_patient

D = datetime.date


def reminded(site, implant_date, day):
    patient = make_patient(site, consent_date=D(2019, 6, 1))
    make_implant(patient, trial_start=implant_date - datetime.timedelta(days=20),
                 trial_end=implant_date - datetime.timedelta(days=10), implant_date=implant_date)
    reminders.site_digest_send(site=site, actor=system_user(), day=day)
    return patient


def test_a_nurse_sees_the_reminder_log_of_her_own_site_only(client, nurse, site_a, site_b,
                                                            django_assert_max_num_queries):
    own = reminded(site_a, D(2020, 3, 1), D(2020, 3, 25))
    other = reminded(site_b, D(2020, 3, 1), D(2020, 3, 25))
    client.force_login(nurse)
    with django_assert_max_num_queries(15):
        page = client.get(reverse("admin:registry_reminderlog_changelist"))
    assert page.status_code == 200
    text = page.content.decode()
    assert own.registry_id in text and other.registry_id not in text
    log = ReminderLog.objects.get(site=site_b)
    assert client.get(reverse("admin:registry_reminderlog_change", args=[log.pk])).status_code \
        in (302, 404)


def test_the_log_filters_by_site_status_and_kind(client, data_manager, site_a, site_b):
    reminded(site_a, D(2020, 3, 1), D(2020, 3, 25))
    other = reminded(site_b, D(2019, 12, 1), D(2020, 3, 25))
    client.force_login(data_manager)
    url = reverse("admin:registry_reminderlog_changelist")
    page = client.get(url, {"site": site_b.pk, "kind": "overdue", "status": "sent"})
    assert page.status_code == 200
    assert page.context["cl"].result_count == 2 and other.registry_id in page.content.decode()


def test_the_site_filter_offers_a_nurse_only_her_own_sites(client, nurse, site_a, site_b):
    reminded(site_a, D(2020, 3, 1), D(2020, 3, 25))
    reminded(site_b, D(2020, 3, 1), D(2020, 3, 25))
    client.force_login(nurse)
    page = client.get(reverse("admin:registry_reminderlog_changelist"))
    site_filter = next(f for f in page.context["cl"].filter_specs if f.title == "site")
    assert [label for _, label in site_filter.lookup_choices] == ["AAA"]
    assert "BBB" not in page.content.decode()


def test_the_visit_page_shows_its_reminders(client, nurse, site_a):
    patient = reminded(site_a, D(2020, 3, 1), D(2020, 3, 25))
    log = ReminderLog.objects.get(visit__patient=patient)
    client.force_login(nurse)
    page = client.get(reverse("admin:registry_visit_change", args=[log.visit_id]))
    assert page.status_code == 200
    text = page.content.decode()
    assert "Reminders (from the daily follow-up digest)" in text
    assert "Window opens soon" in text and "aaa@example.org" in text
    assert f"{log.window_start:%Y-%m-%d} to {log.window_end:%Y-%m-%d}" in text


def test_the_site_page_shows_the_sites_recent_reminders(client, data_manager, site_a):
    today = datetime.date.today()
    patient = reminded(site_a, today - datetime.timedelta(days=25), today)
    client.force_login(data_manager)
    page = client.get(reverse("admin:registry_site_change", args=[site_a.pk]))
    assert page.status_code == 200
    assert f"{patient.registry_id} 1 month" in page.content.decode()


def test_the_log_cannot_be_edited_or_deleted(client, data_manager, site_a):
    reminded(site_a, D(2020, 3, 1), D(2020, 3, 25))
    log = ReminderLog.objects.get()
    client.force_login(data_manager)
    page = client.get(reverse("admin:registry_reminderlog_change", args=[log.pk]))
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    client.post(reverse("admin:registry_reminderlog_delete", args=[log.pk]), {"post": "yes"})
    assert ReminderLog.objects.filter(pk=log.pk).exists()


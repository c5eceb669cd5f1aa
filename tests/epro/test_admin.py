"""The clinic's side: the visit page's printable link and QR code, the patient page's list
with resend and revoke, conflicts, scoping, and the count for the home page."""

import datetime
import re

from django.urls import reverse

from registry.models import EproLink, Visit, VisitStatus
from registry.services import epro
from registry.services.audit import record_save
from tests.conftest import PASSWORD
from tests.epro.conftest import answers, open_m3
from tests.mailserver import smtp_server_fixture  # noqa: F401 (the smtp_server fixture)


def login(client, user):
    assert client.login(username=user.username, password=PASSWORD)


def test_the_visit_page_makes_a_printable_link_with_a_qr_code(client, nurse, m3):
    _, visit = m3
    login(client, nurse)
    page = client.get(reverse("admin:registry_visit_change", args=[visit.pk])).content.decode()
    assert 'id="questionnaire-link"' in page
    url = reverse("admin:registry_visit_questionnaire_link", args=[visit.pk])
    assert client.get(url).status_code == 200 and EproLink.objects.count() == 0  # GET makes none
    made = client.post(url, {"reason": "letter"})
    text = made.content.decode()
    assert made.status_code == 200 and "<svg" in text
    link_url = re.search(r'id="link-url">([^<]+)<', text).group(1)
    link = epro.link_find(link_url.rstrip("/").rsplit("/", 1)[-1])
    assert link.visit == visit and link.history.earliest().history_user == nurse
    assert link.history.earliest().history_change_reason == "letter"


def test_a_link_for_a_patient_without_consent_is_refused_with_the_reason(client, nurse, site_a):
    _, visit = open_m3(site_a, consent=False)
    login(client, nurse)
    made = client.post(reverse("admin:registry_visit_questionnaire_link", args=[visit.pk]))
    assert made.status_code == 400 and "not consented" in made.content.decode()


def test_another_sites_nurse_and_an_investigator_get_nothing(client, nurse_b, investigator, m3):
    _, visit = m3
    url = reverse("admin:registry_visit_questionnaire_link", args=[visit.pk])
    login(client, nurse_b)
    assert client.post(url).status_code == 404
    client.logout()
    login(client, investigator)
    assert client.post(url).status_code == 403
    page = client.get(reverse("admin:registry_patient_change", args=[visit.patient_id]))
    assert 'id="hub-questionnaires"' not in page.content.decode()
    assert EproLink.objects.count() == 0


def test_the_patient_page_lists_links_and_revokes_and_resends(client, nurse, m3, smtp_server):
    patient, visit = m3
    link, _ = epro.link_create(visit=visit, channel=EproLink.Channel.PRINTED, actor=nurse)
    login(client, nurse)
    hub = reverse("admin:registry_patient_change", args=[patient.pk])
    page = client.get(hub).content.decode()
    assert 'id="hub-questionnaires"' in page and "questionnaire-out" in page
    client.post(reverse("admin:registry_visit_questionnaire_resend", args=[visit.pk]))
    assert len(smtp_server.messages) == 1 and smtp_server.to() == ["patient@example.org"]
    link.refresh_from_db()
    assert link.revoked_at is not None
    new = EproLink.objects.get(revoked_at=None)
    assert new.channel == EproLink.Channel.EMAIL and new.history.earliest().history_user == nurse
    client.post(reverse("admin:registry_eprolink_revoke", args=[new.pk]))
    new.refresh_from_db()
    assert new.revoked_at and new.history.latest().history_user == nurse
    assert "questionnaire-revoked" in client.get(hub).content.decode()


def test_a_conflict_is_shown_to_the_nurse(client, nurse, m3):
    patient, visit = m3
    link, _ = epro.link_create(visit=visit, channel=EproLink.Channel.PRINTED, actor=nurse)
    epro.draft_save(link=link, data=answers(visit, nrs=2, satisfaction=4, pgic=2))
    visit = Visit.objects.get(pk=visit.pk)
    visit.status, visit.date_done, visit.nrs = VisitStatus.COMPLETED, visit.window_start, 6
    record_save(visit, actor=nurse, reason="phone")
    assert epro.answers_submit(link=link) == epro.CONFLICT
    login(client, nurse)
    page = client.get(reverse("admin:registry_patient_change", args=[patient.pk])).content.decode()
    assert f'id="hub-questionnaire-conflict-{link.pk}"' in page and "nrs = 2" in page


def test_the_home_page_count_is_scoped_to_her_sites(nurse, nurse_b, m3, site_b):
    _, visit = m3
    epro.link_create(visit=visit, channel=EproLink.Channel.PRINTED, actor=nurse)
    _, other = open_m3(site_b)
    epro.link_create(visit=other, channel=EproLink.Channel.PRINTED, actor=nurse_b)
    assert epro.pending_invitations_for(nurse) == 1
    assert epro.pending_invitations_for(nurse_b) == 1
    link = EproLink.objects.get(visit=visit)
    epro.answers_submit(link=link, data=answers(visit, nrs=1, satisfaction=5, pgic=1))
    assert epro.pending_invitations_for(nurse) == 0


def test_response_rates_per_site_and_timepoint_on_the_dashboard(client, nurse, site_a, data_manager,
                                                                 investigator, settings):
    visits = [open_m3(site_a)[1] for _ in range(3)]
    for visit in visits:
        epro.link_create(visit=visit, channel=EproLink.Channel.PRINTED, actor=nurse)
    link = EproLink.objects.get(visit=visits[0])
    epro.answers_submit(link=link, data=answers(visits[0], nrs=3, satisfaction=4, pgic=2))
    rates = epro.response_rates(nurse)
    assert rates == [{"site": "AAA", "timepoint": "m3", "invited": 3, "answered": 1, "rate": 33.3,
                      "suppressed": False}]
    settings.REGISTRY_MIN_CELL = 5
    assert epro.response_rates(investigator)[0]["suppressed"] is True
    assert epro.response_rates(investigator)[0]["invited"] is None
    login(client, data_manager)
    page = client.get(reverse("admin:registry_outcomes")).content.decode()
    assert 'id="epro-response-rates"' in page and "33.3" in page


def test_the_patient_page_shows_each_links_state(client, nurse, site_a, settings):
    settings.REGISTRY_EPRO_GRACE_DAYS = 0
    patient, visit = open_m3(site_a)
    out, _ = epro.link_create(visit=visit, channel=EproLink.Channel.PRINTED, actor=nurse)
    opened, _ = epro.link_create(visit=visit, channel=EproLink.Channel.PRINTED, actor=nurse)
    epro.link_opened(opened)
    submitted, _ = epro.link_create(visit=visit, channel=EproLink.Channel.PRINTED, actor=nurse)
    other, late = open_m3(site_a)
    epro.link_create(visit=late, channel=EproLink.Channel.PRINTED, actor=nurse)
    closed = late.window_start - datetime.timedelta(days=1)  # the window ended yesterday
    Visit.objects.filter(pk=late.pk).update(window_start=closed - datetime.timedelta(days=10),
                                            window_end=closed)
    login(client, nurse)
    hub = reverse("admin:registry_patient_change", args=[patient.pk])
    page = client.get(hub).content.decode()
    for state in ("out", "opened"):
        assert f'class="questionnaire-{state}"' in page, state
    other_page = client.get(reverse("admin:registry_patient_change", args=[other.pk])).content.decode()
    assert 'class="questionnaire-expired"' in other_page
    epro.answers_submit(link=submitted, data=answers(visit))
    page = client.get(hub).content.decode()
    assert 'class="questionnaire-submitted"' in page and 'class="questionnaire-closed"' in page

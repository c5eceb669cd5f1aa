"""Questionnaire links: who gets one, the token, validity, revocation, the command."""

import datetime
import io

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.utils import timezone

from registry.models import ConsentStatus, EproLink, Patient
from registry.services import epro
from registry.services.audit import system_user
from registry.services.dates import site_today
from registry.services.patients import patient_save
from tests.epro.conftest import open_m3

UTC = datetime.UTC


def test_questions_come_from_one_function_with_the_export_names(m3, site_a):
    _, visit = m3
    proms = ["eq5d5l_mo", "eq5d5l_sc", "eq5d5l_ua", "eq5d5l_pd", "eq5d5l_ad", "eq5d5l_vas",
             "bpi_sf_worst", "bpi_sf_least", "bpi_sf_average", "bpi_sf_now", "bpi_sf_general_activity",
             "bpi_sf_mood", "bpi_sf_walking", "bpi_sf_normal_work", "bpi_sf_relations", "bpi_sf_sleep",
             "bpi_sf_enjoyment"]  # the default protocol at m3 for peripheral neuropathic pain
    assert [q.name for q in epro.questions_for(visit)] == ["nrs", "satisfaction", "pgic", *proms]
    _, amputee = open_m3(site_a, etiology="postamputation", diagnosis="rlp_plp")
    assert [q.name for q in epro.questions_for(amputee)] == [
        "nrs", "nrs_residual_limb", "nrs_phantom_limb", "satisfaction", "pgic", *proms]


def test_a_link_is_a_256_bit_token_stored_hashed_and_its_creation_audited(m3, nurse):
    _, visit = m3
    link, token = epro.link_create(visit=visit, channel=EproLink.Channel.PRINTED, actor=nurse,
                                   reason="printed for the letter")
    assert len(token) == 43  # secrets.token_urlsafe(32): 256 bits
    stored = EproLink.objects.values_list("token_hash", flat=True).get()
    assert token not in stored and len(stored) == 64
    assert epro.link_find(token) == link
    first = link.history.earliest()
    assert first.history_user == nurse and first.history_change_reason == "printed for the letter"
    assert epro.link_url(token).endswith(f"/q/{token}/")


def test_no_link_without_consent_or_after_withdrawal(site_a, nurse):
    _, visit = open_m3(site_a, consent=False)
    with pytest.raises(ValidationError, match="not consented"):
        epro.link_create(visit=visit, channel=EproLink.Channel.PRINTED, actor=nurse)
    patient, visit = open_m3(site_a)
    link, _token = epro.link_create(visit=visit, channel=EproLink.Channel.PRINTED, actor=nurse)
    patient = Patient.objects.get(pk=patient.pk)
    patient.consent_status = ConsentStatus.WITHDRAWN
    patient.withdrawal_date = timezone.now().date()
    patient_save(patient=patient, actor=nurse, reason="withdrew")
    link.refresh_from_db()
    assert epro.link_problem(EproLink.objects.select_related("visit__patient__site").get(pk=link.pk)) \
        == "patient may not be contacted"
    with pytest.raises(ValidationError, match="withdrawn"):
        epro.link_create(visit=visit, channel=EproLink.Channel.PRINTED, actor=nurse)


def test_the_row_rule_and_the_query_rule_agree(site_a):
    cases = [open_m3(site_a)[0], open_m3(site_a, consent=False)[0]]
    withdrawn = open_m3(site_a)[0]
    withdrawn.consent_status, withdrawn.withdrawal_date = ConsentStatus.WITHDRAWN, timezone.now().date()
    patient_save(patient=withdrawn, actor=system_user(), reason="test")
    cases.append(withdrawn)
    by_query = set(Patient.objects.filter(epro.may_contact(on=site_today(site_a.timezone)))
                   .values_list("pk", flat=True))
    assert {p.pk for p in cases if epro.may_contact_row(Patient.objects.get(pk=p.pk))} == by_query
    assert len(by_query) == 1


def test_a_link_works_from_window_start_to_window_end_plus_the_grace_days(m3, nurse, settings):
    settings.REGISTRY_EPRO_GRACE_DAYS = 5
    _, visit = m3
    link, _ = epro.link_create(visit=visit, channel=EproLink.Channel.PRINTED, actor=nurse)
    tz = visit.patient.site.tz

    def at(day):  # noon at the site
        return datetime.datetime.combine(day, datetime.time(12), tzinfo=tz)

    last = visit.window_end + datetime.timedelta(days=5)
    assert epro.link_problem(link, now=at(visit.window_start)) is None
    assert epro.link_problem(link, now=at(visit.window_start - datetime.timedelta(days=1))) == epro.NOT_YET
    assert epro.link_problem(link, now=at(last)) is None
    assert epro.link_problem(link, now=at(last + datetime.timedelta(days=1))) == "expired"
    # The site's day: 23:30 at the site on the last day still works, 00:30 the next does not.
    late = datetime.datetime.combine(last, datetime.time(23, 30), tzinfo=tz)
    assert epro.link_problem(link, now=late) is None
    assert epro.link_problem(link, now=late + datetime.timedelta(hours=1)) == "expired"


def test_a_revoked_link_stops_with_who_and_why(m3, nurse):
    _, visit = m3
    link, _ = epro.link_create(visit=visit, channel=EproLink.Channel.PRINTED, actor=nurse)
    assert epro.link_revoke(link=link, actor=nurse, reason="patient asked for a paper form")
    assert not epro.link_revoke(link=link, actor=nurse)
    link.refresh_from_db()
    assert epro.link_problem(link) == "revoked" and epro.link_status(link) == "revoked"
    assert link.history.latest().history_change_reason == "patient asked for a paper form"


def test_the_command_prints_the_link_and_audits_it(m3, nurse):
    patient, visit = m3
    out = io.StringIO()
    call_command("epro_link", patient.registry_id, "--timepoint", "m3", "--user", nurse.username,
                 stdout=out)
    url = out.getvalue().strip().splitlines()[-1]
    token = url.rstrip("/").rsplit("/", 1)[-1]
    link = epro.link_find(token)
    assert link.visit == visit and link.channel == EproLink.Channel.PRINTED
    assert link.history.earliest().history_user == nurse


def test_the_command_names_what_is_wrong(m3, site_a):
    patient, _ = m3
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="NOPE-1"):
        call_command("epro_link", "NOPE-1", "--timepoint", "m3")
    with pytest.raises(CommandError, match="m99"):
        call_command("epro_link", patient.registry_id, "--timepoint", "m99")
    other, _ = open_m3(site_a, consent=False)
    with pytest.raises(CommandError, match="not consented"):
        call_command("epro_link", other.registry_id, "--timepoint", "m3")

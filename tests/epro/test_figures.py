"""The clinic's counts of questionnaire links go by each site's calendar day, not UTC's."""

import datetime

from registry.models import EproLink, Role, Visit
from registry.services import epro
from tests.conftest import _user
from tests.epro.conftest import open_m3
from tests.factories import make_site

UTC = datetime.UTC


def test_the_home_page_count_uses_the_sites_day(settings, db):
    settings.REGISTRY_EPRO_GRACE_DAYS = 2
    kiritimati = make_site("KIR", timezone="Pacific/Kiritimati")  # UTC+14
    honolulu = make_site("HNL", timezone="Pacific/Honolulu")  # UTC-10
    manager = _user("dm_all", Role.DATA_MANAGER, all_sites=True)
    # 12:00 UTC on 2 December: 3 December at Kiritimati, still 2 December at Honolulu.
    now = datetime.datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    last_day = datetime.date(2026, 12, 2)  # window end + grace days for both visits
    for site in (kiritimati, honolulu):
        _, visit = open_m3(site, today=datetime.date(2026, 11, 20))
        epro.link_create(visit=visit, channel=EproLink.Channel.PRINTED,
                         now=datetime.datetime(2026, 11, 20, 12, tzinfo=UTC))
        Visit.objects.filter(pk=visit.pk).update(window_end=last_day - datetime.timedelta(days=2))
    links = {link.visit.patient.site.code: link
             for link in EproLink.objects.select_related("visit__patient__site")}
    assert epro.link_problem(links["KIR"], now=now) == "expired"
    assert epro.link_problem(links["HNL"], now=now) is None
    assert epro.pending_invitations_for(manager, now=now) == 1  # Honolulu's only (UTC would say 2)
    assert epro.pending_invitations_for(manager, now=now - datetime.timedelta(hours=13)) == 2

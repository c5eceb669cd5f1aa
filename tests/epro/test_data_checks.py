"""A questionnaire submitted through the patient's link runs the data checks, as a save in
the admin does: a PROM left with too few items to score opens the prom_items_missing
query, and the answers that complete it (the patient's own submission or the nurse's
entry) close it.

The link itself asks every item of the instruments it asks (a submit with an item
unanswered is refused), so the incomplete instrument here is one the nurse started
from paper (the same write path, services.proms, which runs no checks by itself)."""

from django.urls import reverse

from registry.models import DataQuery, QueryStatus
from registry.services import checks
from registry.services.proms.answers import prom_answers_record
from registry.services.proms.instruments import INSTRUMENTS
from tests.epro.conftest import answers
from tests.epro.test_pages import answer_all, new_link

RULE = "prom_items_missing"


def queries_on(visit, instrument):
    return DataQuery.objects.filter(rule=RULE, record_type="visit", record_id=visit.pk,
                                    field=checks.prom_field(instrument))


def paper(visit, nurse, instrument, count):
    items = INSTRUMENTS[instrument].items[:count]
    prom_answers_record(visit=visit, instrument=instrument, actor=nurse, reason="from paper",
                        answers={item.code: item.allowed[0] for item in items})


def test_a_submission_leaving_a_prom_unscorable_opens_the_query_and_the_nurse_closes_it(
        client, m3, nurse):
    _, visit = m3
    paper(visit, nurse, "hads", 5)  # HADS (not asked by the link at m3): 5 of 14 items
    assert not queries_on(visit, "hads").exists()
    _token, path = new_link(visit)
    answer_all(client, path, answers(visit))
    client.post(path, {"action": "submit"})
    visit.refresh_from_db()
    assert visit.status == "completed"
    [query] = queries_on(visit, "hads")
    assert query.status == QueryStatus.OPEN and query.opened_by.username == "registry-system"
    assert "9 of 14 items are not answered" in query.messages.get().text
    # The nurse enters the rest from the paper form in the admin: the query closes.
    client.force_login(nurse)
    url = reverse("admin:registry_visit_proms", args=[visit.pk, "hads"])
    data = {item.code: str(item.allowed[0]) for item in INSTRUMENTS["hads"].items}
    data["change_reason"] = "rest of the paper form"
    response = client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:2000]
    query.refresh_from_db()
    assert query.status == QueryStatus.CLOSED and query.closed_by_check


def test_the_patients_complete_submission_closes_the_query_on_what_she_completes(client, m3, nurse):
    _, visit = m3
    paper(visit, nurse, "bpi_sf", 3)  # the nurse started the BPI-SF the link asks
    checks.checks_run(patients=[visit.patient_id])  # the nightly run
    [query] = queries_on(visit, "bpi_sf")
    assert query.status == QueryStatus.OPEN
    _token, path = new_link(visit)
    answer_all(client, path, answers(visit))
    client.post(path, {"action": "submit"})
    query.refresh_from_db()
    assert query.status == QueryStatus.CLOSED and query.closed_by_check
    assert "no longer finds" in query.messages.latest("pk").text


"""The protocol's PROM items in the patient's questionnaire: asked by short label and scale
(or the site's licensed text), validated as in every channel, landed as PromAnswer rows
recorded as the patient, and the nurse's answers never overwritten."""

import json

import pytest

from registry.models import EproLink, PromAnswer, PromSchedule, Visit, VisitStatus
from registry.services import epro
from registry.services.audit import record_save
from registry.services.epro import texts
from registry.services.proms.answers import prom_answers_record, visit_prom_status
from registry.services.proms.instruments import INSTRUMENTS
from tests.epro.conftest import answers, open_m3
from tests.epro.test_pages import answer_all, new_link


def names(visit, instrument):
    return [q.name for q in epro.questions_for(visit) if q.instrument == instrument]


@pytest.fixture(autouse=True)
def fresh_texts():
    texts.forget()
    yield
    texts.forget()


def test_the_items_due_follow_the_protocol_and_the_diagnosis(site_a, nurse):
    _, pn = open_m3(site_a)  # peripheral neuropathic pain: EQ-5D-5L and BPI-SF at m3
    _, back = open_m3(site_a, diagnosis="other")  # back-dominant: ODI instead of BPI
    assert names(pn, "eq5d5l") == [f"eq5d5l_{i}" for i in ("mo", "sc", "ua", "pd", "ad", "vas")]
    assert names(pn, "bpi_sf") and not names(pn, "odi") and not names(pn, "hads")
    assert names(back, "odi") == [f"odi_s{n}" for n in range(1, 11)] and not names(back, "bpi_sf")
    # A data manager adds HADS at m3: the questionnaire asks it from now on.
    hads = PromSchedule.objects.get(instrument="hads")
    hads.timepoints = "baseline,m3,m6,yearly"
    record_save(hads, actor=nurse, reason="HADS at 3 months too")
    assert names(pn, "hads") == [f"hads_q{n}" for n in range(1, 15)]
    for question in epro.questions_for(pn):
        if question.instrument:
            item = INSTRUMENTS[question.instrument].item(question.item)
            assert question.values == tuple(item.allowed)


def test_an_item_page_shows_the_short_label_and_the_scale_and_field_name_is_the_column(client, m3):
    _, visit = m3
    _token, path = new_link(visit)
    index = next(i for i, q in enumerate(epro.questions_for(visit)) if q.name == "eq5d5l_mo") + 1
    page = client.get(f"{path}?step={index}").content.decode()
    assert "<h1>Mobility</h1>" in page and 'name="eq5d5l_mo"' in page
    assert 'value="1"' in page and 'value="5"' in page and 'value="6"' not in page
    assert "EQ-5D-5L: answer with a number from 1 to 5" in page
    vas = next(i for i, q in enumerate(epro.questions_for(visit)) if q.name == "eq5d5l_vas") + 1
    page = client.get(f"{path}?step={vas}").content.decode()
    assert 'type="number"' in page and 'min="0"' in page and 'max="100"' in page


@pytest.mark.parametrize(("name", "value"), [("eq5d5l_mo", "6"), ("eq5d5l_mo", "0"),
                                             ("eq5d5l_vas", "101"), ("bpi_sf_worst", "11"),
                                             ("bpi_sf_worst", "-1"), ("eq5d5l_sc", "2.5")])
def test_an_off_scale_item_answer_is_refused_naming_field_and_value(client, m3, name, value):
    _, visit = m3
    _token, path = new_link(visit)
    step = next(i for i, q in enumerate(epro.questions_for(visit)) if q.name == name) + 1
    response = client.post(f"{path}?step={step}", {"step": step, name: value, "action": "next"})
    assert response.status_code == 400
    assert f"{name}: &#x27;{value}&#x27; is not an answer here" in response.content.decode()
    assert EproLink.objects.get().draft == {}
    with pytest.raises(Exception, match=name):
        epro.answers_submit(link=EproLink.objects.get(), data=answers(visit, **{name: value}))
    assert not PromAnswer.objects.exists()


def test_the_items_land_as_prom_answers_recorded_as_the_patient(client, m3):
    _, visit = m3
    _token, path = new_link(visit)
    given = answers(visit, nrs=3, satisfaction=4, pgic=2, eq5d5l_mo=2, eq5d5l_pd=3, eq5d5l_vas=70,
                    bpi_sf_worst=6)
    summary = answer_all(client, path, given).content.decode()
    assert "Mobility" in summary and "70" in summary
    assert client.post(path, {"action": "submit"}).status_code == 200
    link = EproLink.objects.get()
    held = {(a.instrument, a.item): a for a in PromAnswer.objects.filter(visit=visit)}
    assert held[("eq5d5l", "mo")].value == 2 and held[("eq5d5l", "vas")].value == 70
    assert held[("bpi_sf", "worst")].value == 6
    assert len(held) == 17 and held[("eq5d5l", "mo")].instrument_version == "EQ-5D-5L (EuroQol, 2011)"
    for answer in held.values():
        first = answer.history.earliest()
        assert first.history_user.username == "registry-patient" and not first.history_user.is_staff
        assert first.history_change_reason == f"submitted by the patient through the link (link {link.pk})"
    status = {s.code: s for s in visit_prom_status(Visit.objects.get(pk=visit.pk))}
    assert status["eq5d5l"].complete and status["eq5d5l"].scores["eq5d5l_vas"] == 70
    assert status["bpi_sf"].scorable
    assert Visit.objects.get(pk=visit.pk).status == VisitStatus.COMPLETED


def test_answers_the_nurse_entered_are_not_overwritten_and_the_conflict_is_shown(m3, nurse):
    _, visit = m3
    prom_answers_record(visit=visit, instrument="eq5d5l", answers={"mo": 2, "sc": 1}, actor=nurse,
                        reason="")
    link, _ = epro.link_create(visit=visit, channel=EproLink.Channel.PRINTED, actor=nurse)
    outcome = epro.answers_submit(link=link, data=answers(visit, eq5d5l_mo=4, eq5d5l_sc=1))
    assert outcome == epro.CONFLICT
    mo = PromAnswer.objects.get(visit=visit, instrument="eq5d5l", item="mo")
    assert mo.value == 2 and mo.history.count() == 1 and mo.history.get().history_user == nurse
    link.refresh_from_db()
    assert link.conflict == {"eq5d5l_mo": 4}  # the same answer (sc 1) is no conflict
    assert epro.link_status(EproLink.objects.select_related("visit__patient__site").get()) == "conflict"
    visit = Visit.objects.get(pk=visit.pk)
    assert visit.status == VisitStatus.COMPLETED and visit.entered_by == "patient"
    assert PromAnswer.objects.get(visit=visit, instrument="eq5d5l", item="ad").value == 1
    assert "eq5d5l_mo" in link.history.first().history_change_reason


def write(folder, name, content):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(content), encoding="utf-8")


def test_a_site_that_loaded_its_licensed_text_sees_it(client, m3, settings, tmp_path, site_a):
    settings.REGISTRY_PROM_TEXT_DIR = str(tmp_path)
    # (Placeholders standing in for a licensed wording: none is in the repository.)
    write(tmp_path / site_a.code, "eq5d5l.en.json", {"items": {
        "mo": {"text": "LICENSED-EN mobility", "choices": {"1": "LICENSED-EN level one", "9": "OFF-SCALE"}},
        "zz": {"text": "not an item"}}})
    write(tmp_path / site_a.code, "eq5d5l.nl.json", {"items": {"mo": {"text": "GELICENTIEERD mobiliteit"}}})
    write(tmp_path, "eq5d5l.en.json", {"items": {"sc": {"text": "EVERY-SITE self-care"}}})
    _, visit = m3
    _token, path = new_link(visit)
    questions = epro.questions_for(visit)
    mo = next(i for i, q in enumerate(questions) if q.name == "eq5d5l_mo") + 1
    page = client.get(f"{path}?step={mo}").content.decode()
    assert "LICENSED-EN mobility" in page and "1 – LICENSED-EN level one" in page
    assert "OFF-SCALE" not in page and "not an item" not in page  # off the scale, unknown item: left out
    assert "GELICENTIEERD mobiliteit" in client.get(f"{path}?step={mo}&lang=nl").content.decode()
    client.get(f"{path}?lang=en")
    # The site's own file is read first and alone (it has no sc: the short label); the
    # folder's common file serves a site without its own.
    sc = next(i for i, q in enumerate(questions) if q.name == "eq5d5l_sc") + 1
    assert "<h1>Self-care</h1>" in client.get(f"{path}?step={sc}").content.decode()
    texts.forget()
    (tmp_path / site_a.code / "eq5d5l.en.json").unlink()
    assert "EVERY-SITE self-care" in client.get(f"{path}?step={sc}").content.decode()


def test_a_broken_text_file_falls_back_to_the_short_label(client, m3, settings, tmp_path, site_a):
    settings.REGISTRY_PROM_TEXT_DIR = str(tmp_path)
    (tmp_path / "eq5d5l.en.json").write_text("{not json", encoding="utf-8")
    _, visit = m3
    _token, path = new_link(visit)
    mo = next(i for i, q in enumerate(epro.questions_for(visit)) if q.name == "eq5d5l_mo") + 1
    page = client.get(f"{path}?step={mo}")
    assert page.status_code == 200 and "<h1>Mobility</h1>" in page.content.decode()


def test_an_item_page_speaks_dutch(client, site_a):
    _, visit = open_m3(site_a, epro_language="nl")
    _token, path = new_link(visit)
    mo = next(i for i, q in enumerate(epro.questions_for(visit)) if q.name == "eq5d5l_mo") + 1
    page = client.get(f"{path}?step={mo}").content.decode()
    assert "<h1>Mobiliteit</h1>" in page and "antwoord met een getal van 1 tot 5" in page
    vas = next(i for i, q in enumerate(epro.questions_for(visit)) if q.name == "eq5d5l_vas") + 1
    assert "Uw antwoord (0 tot 100)" in client.get(f"{path}?step={vas}").content.decode()

"""Programming sessions: validated ranges, history, the admin inline, and the latest
settings in the implants dataset (CSV, JSON, xlsx, Stata; codebook labels), the
electrode configuration never leaving."""

import csv
import datetime
import io
import json
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from registry.models import ProgrammingSession
from registry.services import datasets, deid
from registry.services.programming import latest_settings, programming_session_save
from tests.admin.conftest import rendered_form_data  # noqa: F401
from tests.api.conftest import client_for  # noqa: F401

D = datetime.date


def session(implant, **kwargs):
    fields = {"date": D(2020, 3, 5), "paradigm": "tonic", "frequency_hz": Decimal("60"),
              "pulse_width_us": 300, "amplitude_min_ma": Decimal("1.5"),
              "amplitude_max_ma": Decimal("4.2"), "contacts": "+3 -4 -5 (lead 1)", **kwargs}
    return ProgrammingSession(implant=implant, **fields)


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


@pytest.mark.django_db
@pytest.mark.parametrize(("fields", "field", "message"), [
    ({"frequency_hz": Decimal("20000")}, "frequency_hz", "less than or equal to 10000"),
    ({"pulse_width_us": 5}, "pulse_width_us", "greater than or equal to 10"),
    ({"amplitude_min_ma": Decimal("5"), "amplitude_max_ma": Decimal("2")}, "amplitude_max_ma",
     "below the amplitude from"),
    ({"closed_loop_target_uv": 20}, "closed_loop_target_uv", "Only a closed-loop"),
    ({"paradigm": "hf10k", "frequency_hz": Decimal("10")}, "frequency_hz", "not high frequency"),
    ({"date": D(2019, 1, 1)}, "date", "before the trial"),
    ({"date": D(2999, 1, 1)}, "date", "in the future"),
    ({"paradigm": "waves"}, "paradigm", "not a valid choice"),
])
def test_a_session_names_what_is_wrong(implant_a, nurse, fields, field, message):
    with pytest.raises(ValidationError) as error:
        programming_session_save(session=session(implant_a, **fields), actor=nurse)
    assert message in " ".join(error.value.message_dict[field])
    assert ProgrammingSession.objects.count() == 0


@pytest.mark.django_db
def test_the_latest_session_is_the_current_setting_with_history(implant_a, nurse):
    first = programming_session_save(session=session(implant_a), actor=nurse)
    programming_session_save(session=session(implant_a, date=D(2020, 6, 1), paradigm="ecap",
                                             closed_loop_target_uv=25, frequency_hz=Decimal("50")),
                             actor=nurse, reason="switched to closed loop")
    assert latest_settings(implant_a).paradigm == "ecap"
    first.amplitude_max_ma = Decimal("5.0")
    programming_session_save(session=first, actor=nurse, reason="range widened")
    assert latest_settings(implant_a).paradigm == "ecap"  # by date, not by the last save
    history = first.history.order_by("history_date")
    assert [h.history_change_reason for h in history] == ["Programming session", "range widened"]
    assert history.last().history_user == nurse


@pytest.mark.django_db
def test_the_implant_page_has_the_sessions_inline(client, nurse, implant_a):
    from registry.models import Implant

    client.force_login(nurse)
    url = f"/admin/registry/implant/{implant_a.pk}/change/"
    response = client.get(url)
    data = rendered_form_data(response)
    prefix = next(f.formset.prefix for f in response.context["inline_admin_formsets"]
                  if f.formset.model is ProgrammingSession)
    data.update({f"{prefix}-TOTAL_FORMS": "1", f"{prefix}-0-date": "2020-03-05",
                 f"{prefix}-0-paradigm": "burst", f"{prefix}-0-frequency_hz": "40",
                 f"{prefix}-0-pulse_width_us": "1000", f"{prefix}-0-amplitude_max_ma": "30",
                 "change_reason": "first programming"})
    response = client.post(url, data)
    assert response.status_code == 200  # 30 mA refused, nothing saved
    assert "less than or equal to 25.5" in response.content.decode()
    assert ProgrammingSession.objects.count() == 0
    data[f"{prefix}-0-amplitude_max_ma"] = "3.5"
    response = client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:3000]
    saved = ProgrammingSession.objects.get()
    assert (saved.implant_id, saved.paradigm, saved.amplitude_max_ma) == (
        implant_a.pk, "burst", Decimal("3.50"))
    assert saved.history.get().history_user == nurse
    assert Implant.objects.get(pk=implant_a.pk)


def test_contacts_and_note_are_free_text_that_never_leaves():
    assert set(deid.withheld(ProgrammingSession)) >= {"contacts", "note"}
    assert "date" in deid.clinical_dates(ProgrammingSession)
    names = {c.name for c in datasets.EXPORTED["implants"].columns}
    assert not any("contact" in n or "note" in n for n in names)


@pytest.fixture
def programmed(implant_a, nurse):
    programming_session_save(session=session(implant_a), actor=nurse)
    programming_session_save(session=session(implant_a, date=D(2020, 9, 1), paradigm="hf10k",
                                             frequency_hz=Decimal("10000"), pulse_width_us=30,
                                             amplitude_min_ma=Decimal("1"),
                                             amplitude_max_ma=Decimal("3.5"),
                                             recharge_interval_days=7), actor=nurse)
    return implant_a


@pytest.mark.django_db
def test_the_implants_export_carries_the_latest_settings(client_for, programmed, nurse,  # noqa: F811
                                                         investigator, data_manager):
    response = client_for(nurse).get("/api/v1/exports/implants/")
    assert response.status_code == 200
    (row,) = list(csv.DictReader(io.StringIO(body(response).decode())))
    assert (row["implant_ref"], row["programming_sessions"], row["prog_paradigm"]) == (
        programmed.ref, "2", "hf10k")
    assert (float(row["prog_frequency_hz"]), row["prog_pulse_width_us"],
            float(row["prog_amplitude_max_ma"]), row["prog_recharge_interval_days"]) == (
        10000.0, "30", 3.5, "7")
    assert row["prog_days_from_implant"] == str((D(2020, 9, 1) - programmed.implant_date).days)
    assert "prog_date" not in row and "+3 -4" not in body(response).decode()
    data = json.loads(body(client_for(investigator).get("/api/v1/exports/implants/?format=json")))
    assert data[0]["prog_pulse_width_us"] == 30 and data[0]["prog_frequency_hz"] == 10000.0
    iso = list(csv.DictReader(io.StringIO(body(client_for(data_manager).get(
        "/api/v1/exports/implants/?dates=iso")).decode())))
    assert iso[0]["prog_date"] == "2020-09-01"
    codebook = {v["variable"]: v for v in client_for(nurse).get("/api/v1/exports/implants/codebook/").json()}
    assert "High frequency 10 kHz" in codebook["prog_paradigm"]["values"]
    assert "Differential target multiplexed" in codebook["prog_paradigm"]["values"]


@pytest.mark.django_db
def test_the_implants_export_reads_back_as_xlsx_and_stata(client_for, programmed, nurse,  # noqa: F811
                                                          tmp_path):
    import pyreadstat
    from openpyxl import load_workbook

    path = tmp_path / "i.xlsx"
    path.write_bytes(body(client_for(nurse).get("/api/v1/exports/implants/?format=xlsx")))
    sheet = load_workbook(path).worksheets[0]
    header = [c.value for c in sheet[1]]
    values = dict(zip(header, [c.value for c in sheet[2]], strict=True))
    assert values["prog_paradigm"] == "hf10k" and values["prog_pulse_width_us"] == 30
    path = tmp_path / "i.dta"
    path.write_bytes(body(client_for(nurse).get("/api/v1/exports/implants/?format=dta")))
    frame, meta = pyreadstat.read_dta(str(path))
    assert meta.variable_value_labels["prog_paradigm"][frame["prog_paradigm"][0]] == "High frequency 10 kHz"


@pytest.mark.django_db
def test_the_rest_implant_lists_its_sessions_with_dates_shifted_for_investigators(
        client_for, programmed, nurse, investigator, django_assert_max_num_queries):  # noqa: F811
    mine = client_for(nurse).get(f"/api/v1/implants/{programmed.ref}/").json()
    assert [s["date"] for s in mine["programming_sessions"]] == ["2020-03-05", "2020-09-01"]
    assert mine["programming_sessions"][-1]["paradigm"] == "hf10k"
    assert "contacts" not in mine["programming_sessions"][0]
    theirs = client_for(investigator).get(f"/api/v1/implants/{programmed.ref}/").json()
    days = deid.date_shift_days(programmed.patient.registry_id)
    assert theirs["programming_sessions"][0]["date"] == deid.shifted(D(2020, 3, 5), days).isoformat()
    client = client_for(nurse)
    with django_assert_max_num_queries(12):
        assert client.get("/api/v1/implants/").status_code == 200

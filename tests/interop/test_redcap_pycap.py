"""PyCap, unchanged, against the registry served on a loopback port."""

import pytest
from redcap import Project

from registry.models import AdverseEvent, Visit
from registry.services import exports
from registry.services.access import visible

pytestmark = pytest.mark.django_db(transaction=True)


def _choices(meta: dict) -> dict[str, str]:
    text = meta["select_choices_or_calculations"]
    return dict(part.split(", ", 1) for part in text.split(" | ")) if text else {}


def decode(row: dict, metadata: dict[str, dict]) -> dict:
    """A REDCap row decoded with nothing but the exported data dictionary."""
    out = {}
    for name, value in row.items():
        meta = metadata.get(name)
        if value == "" or meta is None:
            out[name] = None if value == "" else value
        elif meta["field_type"] in ("radio", "dropdown"):
            out[name] = _choices(meta)[value]
        elif meta["field_type"] == "yesno":
            out[name] = {"1": True, "0": False}[value]
        elif meta["text_validation_type_or_show_slider_number"] == "integer":
            out[name] = int(value)
        elif meta["text_validation_type_or_show_slider_number"] == "number":
            out[name] = float(value)
        else:
            out[name] = value
    return out


def registry_labelled(row: dict, columns) -> dict:
    """The registry's own export row with coded values as their labels."""
    out = {}
    for column in columns:
        value = row[column.name]
        if value is not None and column.labels:
            value = dict(column.labels)[value]
        if isinstance(value, int) and column.kind == "age":
            value = str(value)
        out[column.name] = value
    return out


VISIT_FIELDS = ["implant_ref", "therapy", "timepoint", "status", "days_from_implant", "nrs",
                "nrs_baseline", "nrs_reduction_pct", "responder", "satisfaction", "pgic",
                "would_choose_again", "opioid_mme", "stimulation_use", "nrs_residual_limb",
                "nrs_phantom_limb"]
PATIENT_FIELDS = ["site", "sex", "age_at_implant", "etiology", "diagnosis"]


def test_pycap_reads_the_registry_as_a_redcap_project_row_for_row(live_server, cohort, token_a,
                                                                  nurse):
    project = Project(f"{live_server.url}/redcap/api/", token_a)
    metadata = project.export_metadata()
    assert [m["field_name"] for m in metadata][:2] == ["record_id", "site"]
    assert all(len(m) == 18 for m in metadata)
    names = [f["export_field_name"] for f in project.export_field_names()]
    assert names == [m["field_name"] for m in metadata]
    by_name = {m["field_name"]: m for m in metadata}

    records = project.export_records()
    visits_out = [decode(r, by_name) for r in records
                  if r["redcap_repeat_instrument"] == "" and r["timepoint"] != ""]
    events_out = [decode(r, by_name) for r in records if r["redcap_repeat_instrument"] == "adverse_event"]

    visit_cols = exports.columns_for("visits")
    registry_visits = [registry_labelled(r, visit_cols) for r in exports.visit_rows(
        visible(Visit.objects.all(), nurse))]
    assert len(visits_out) == len(registry_visits) > 0

    def key(row, prefix=""):
        return repr([row["registry_id" if "registry_id" in row else "record_id"]]
                    + [row[prefix + f] for f in VISIT_FIELDS])

    expected = sorted(key(r) for r in registry_visits)
    actual = sorted(key({**r, "registry_id": r["record_id"]}) for r in visits_out)
    assert actual == expected

    baseline = {r["record_id"]: r for r in (decode(x, by_name) for x in records)
                if r["redcap_event_name"] == "baseline_arm_1"}
    for row in registry_visits:
        assert {f: baseline[row["registry_id"]][f] for f in PATIENT_FIELDS} == \
            {f: row[f] for f in PATIENT_FIELDS}

    event_cols = exports.columns_for("adverse-events")
    registry_events = [registry_labelled(r, event_cols) for r in exports.event_rows(
        visible(AdverseEvent.objects.all(), nurse))]
    assert len(events_out) == len(registry_events) == 2
    for out, row in zip(events_out, registry_events, strict=True):
        assert out["record_id"] == row["registry_id"]
        for name in ("category", "serious", "severity", "device_relatedness", "iso_class",
                     "outcome", "days_from_implant", "days_to_resolution"):
            assert out[f"ae_{name}"] == row[name], name
    assert [r["redcap_repeat_instance"] for r in records
            if r["redcap_repeat_instrument"] == "adverse_event"] == ["1", "2"]

    frame = project.export_records(format_type="df")
    assert frame.index.names == ["record_id", "redcap_event_name"]
    assert len(frame) == len(records)
    assert frame["nrs"].sum() == sum(r["nrs"] for r in registry_visits if r["nrs"] is not None)
    assert set(frame.index.get_level_values(0)) == {p.registry_id for p in cohort["a"]}


def test_a_token_of_another_site_sees_only_its_own_records(live_server, cohort, token_b):
    project = Project(f"{live_server.url}/redcap/api/", token_b)
    records = project.export_records()
    assert {r["record_id"] for r in records} == {p.registry_id for p in cohort["b"]}
    assert project.export_records(records=[cohort["a"][0].registry_id]) == []


def test_pycap_gets_redcaps_error_for_an_import(live_server, cohort, token_a):
    from redcap import RedcapError

    project = Project(f"{live_server.url}/redcap/api/", token_a)
    with pytest.raises(RedcapError, match="read-only"):
        project.import_records([{"record_id": "AAA-0001", "nrs": "1"}])
    assert Visit.objects.filter(nrs=1).count() == 0


def test_pycap_reads_the_missing_data_codes_and_the_codes_in_the_fields(live_server, cohort, token_a,
                                                                        nurse):
    """REDCap's own way (issue 18): the project setting lists the codes, a record holds the code
    in the field; the registry keeps the reason beside the value (services.missing)."""
    from registry.services.audit import record_save

    visit = Visit.objects.get(patient=cohort["a"][0], timepoint="m3")
    visit.nrs, visit.nrs_missing, visit.satisfaction, visit.satisfaction_missing = \
        None, "declined", None, "not_asked"
    record_save(visit, actor=nurse, reason="test: reasons")
    project = Project(f"{live_server.url}/redcap/api/", token_a)
    info = project.export_project_info()
    codes = dict(part.strip().split(", ", 1) for part in info["missing_data_codes"].split("|"))
    assert {"NASK": "Not asked", "ASKU": "Asked but declined", "UNK": "Unknown",
            "NA": "Not applicable", "LTFU": "Lost to follow-up"}.items() <= codes.items()
    # The missed-visit reasons (one list with the value reasons since issue 20's merged in).
    assert {"UNRCH", "ILL", "LOGIS", "NPSITE", "ENDED", "OTH"} <= set(codes) and len(codes) == 11
    [row] = [r for r in project.export_records(records=[cohort["a"][0].registry_id])
             if r["timepoint"] == "m3"]
    assert (row["nrs"], row["satisfaction"]) == ("ASKU", "NASK")
    assert row["pgic"] == "2"  # a value stays a value
    [labelled] = [r for r in project.export_records(records=[cohort["a"][0].registry_id],
                                                    raw_or_label="label") if r["timepoint"] == "m3"]
    assert labelled["nrs"] == "Asked but declined"
    assert "nrs_missing" not in row  # the reason travels in the field, as REDCap clients expect


def test_pycap_reads_a_missed_visits_reason_in_its_field_and_its_value_fields(live_server, cohort,
                                                                             token_a, nurse):
    """A whole visit not done (issue 18): its reason in the visit form's coded field
    `visit_missing` (choices in the data dictionary), and REDCap's missing-data code of that
    reason in each value field that has a reason, unless the value's own reason says more."""
    from registry.models import MissingReason, choices
    from registry.services.audit import record_save

    visit = Visit.objects.get(patient=cohort["a"][0], timepoint="m6")
    visit.status, visit.date_done, visit.visit_missing = "missed", None, "unreachable"
    for name in ("nrs", "satisfaction", "pgic", "opioid_mme"):
        setattr(visit, name, None)
    visit.pgic_missing = ""
    record_save(visit, actor=nurse, reason="test: missed")
    project = Project(f"{live_server.url}/redcap/api/", token_a)
    [field] = [f for f in project.export_metadata() if f["field_name"] == "visit_missing"]
    assert field["form_name"] == "visit" and field["field_type"] == "dropdown"
    listed = dict(c.split(", ", 1) for c in field["select_choices_or_calculations"].split(" | "))
    assert listed[str(choices.code_number("missing_reason", "unreachable"))] == \
        MissingReason.UNREACHABLE.label and len(listed) == len(MissingReason)
    [row] = [r for r in project.export_records(records=[cohort["a"][0].registry_id])
             if r["timepoint"] == "m6"]
    assert row["visit_missing"] == str(choices.code_number("missing_reason", "unreachable"))
    assert (row["nrs"], row["satisfaction"], row["pgic"], row["opioid_mme"]) == ("UNRCH",) * 4
    assert row["visit_complete"] == "0"
    [labelled] = [r for r in project.export_records(records=[cohort["a"][0].registry_id],
                                                    raw_or_label="label") if r["timepoint"] == "m6"]
    assert labelled["visit_missing"] == labelled["nrs"] == str(MissingReason.UNREACHABLE.label)
    # A completed visit says nothing in the field.
    [done] = [r for r in project.export_records(records=[cohort["a"][0].registry_id])
              if r["timepoint"] == "m3"]
    assert done["visit_missing"] == ""

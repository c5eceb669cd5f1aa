"""Data checks: per rule, a planted anomaly opens exactly one query, a re-run opens none,
fixing the data closes it with a note; a data manager's close is final."""

import datetime
from decimal import Decimal

import pytest
from django.core.management import call_command

from registry.models import AdverseEvent, DataQuery, QueryStatus, Visit, VisitStatus
from registry.services import checks, queries
from registry.services.audit import record_save, system_user
from tests.factories import make_event, make_implant, make_patient, make_visit

D = datetime.date


def save(obj, **values):
    for name, value in values.items():
        setattr(obj, name, value)
    return record_save(obj, actor=system_user(), reason="test fix", validate=False)


def live(rule):
    return DataQuery.objects.filter(rule=rule, status__in=[QueryStatus.OPEN, QueryStatus.ANSWERED])


def follow_up(implant, timepoint, **values):
    visit = Visit.objects.get(implant=implant, timepoint=timepoint)
    values.setdefault("status", VisitStatus.COMPLETED)
    values.setdefault("date_done", visit.target_date)
    return save(visit, **values)


def cycle(rule, plant, fix):
    """Plant, run, re-run, fix, run: the contract every rule keeps."""
    record, field = plant()
    run = checks.checks_run(rules=[rule])
    assert run.opened == 1, run.by_rule
    [query] = live(rule)
    assert (query.record_id, query.field, query.rule) == (record.pk, field, rule)
    assert query.opened_by.username == "registry-system"
    assert checks.checks_run(rules=[rule]).opened == 0
    assert live(rule).count() == 1
    fix(record)
    run = checks.checks_run(rules=[rule])
    assert (run.opened, run.closed) == (0, 1)
    query.refresh_from_db()
    assert query.status == QueryStatus.CLOSED and query.closed_by_check
    assert "no longer finds" in query.messages.latest("pk").text
    return query


@pytest.fixture
def implant(patient_a, nurse):
    make_visit(patient_a, actor=nurse)  # baseline, NRS 8
    return make_implant(patient_a, actor=nurse)


def test_completed_visit_without_nrs(implant):
    def plant():
        return follow_up(implant, "m1", nrs=None), "nrs"

    cycle("visit_completed_without_nrs", plant, lambda v: save(v, nrs=5))


def test_a_missing_reason_answers_the_completed_visit_without_nrs(implant):
    cycle("visit_completed_without_nrs", lambda: (follow_up(implant, "m1", nrs=None), "nrs"),
          lambda v: save(v, nrs_missing="declined"))


def test_nrs_jump_between_consecutive_visits_of_one_implant(implant):
    follow_up(implant, "m1", nrs=2)

    def plant():
        return follow_up(implant, "m3", nrs=8), "nrs"

    cycle("nrs_jump", plant, lambda v: save(v, nrs=3))


def test_a_change_of_five_is_no_jump(implant):
    follow_up(implant, "m1", nrs=2)
    follow_up(implant, "m3", nrs=7)
    assert checks.checks_run(rules=["nrs_jump"]).findings == 0


def test_follow_up_after_explant(implant):
    def plant():
        visit = follow_up(implant, "m6", nrs=4)
        save(implant, explant_date=visit.date_done - datetime.timedelta(days=10),
             explant_reason="infection")
        return visit, "date_done"

    cycle("follow_up_after_explant", plant,
          lambda v: save(implant, explant_date=v.date_done + datetime.timedelta(days=5)))


def test_mme_over_500(implant):
    cycle("mme_over_500", lambda: (follow_up(implant, "m1", nrs=4, opioid_mme=Decimal("900")),
                                   "opioid_mme"),
          lambda v: save(v, opioid_mme=Decimal("90")))


def test_serious_adverse_event_without_criterion(patient_a, implant):
    def plant():
        # The form refuses this now (plausibility); rows from before that rule, or written
        # around the model, are what the check is for.
        event = make_event(patient_a, implant, serious=True, serious_criterion="hospitalisation")
        AdverseEvent.objects.filter(pk=event.pk).update(serious_criterion="")
        event.refresh_from_db()
        return event, "serious_criterion"

    cycle("serious_ae_without_criterion", plant,
          lambda e: save(e, serious_criterion="hospitalisation"))


def test_visit_beyond_twice_its_window(implant):
    # m3: target implant + 3 months, +/-14 days: 29 days late is beyond twice the window.
    def plant():
        visit = Visit.objects.get(implant=implant, timepoint="m3")
        late = visit.target_date + 2 * (visit.window_end - visit.target_date) + datetime.timedelta(days=1)
        return follow_up(implant, "m3", nrs=4, date_done=late), "date_done"

    cycle("visit_far_outside_window", plant, lambda v: save(v, date_done=v.window_end))


def test_a_visit_just_outside_its_window_is_no_finding(implant):
    visit = Visit.objects.get(implant=implant, timepoint="m3")
    follow_up(implant, "m3", nrs=4, date_done=visit.window_end + datetime.timedelta(days=3))
    assert checks.checks_run(rules=["visit_far_outside_window"]).findings == 0


def test_record_invalid_reuses_the_models_validation(implant):
    def plant():
        # Written past the validation (as a bulk job could): a reason beside a value.
        return follow_up(implant, "m1", nrs=4, nrs_missing="declined"), "nrs_missing"

    cycle("record_invalid", plant, lambda v: save(v, nrs_missing=""))


def test_a_data_managers_close_is_final_while_the_finding_stands(implant, data_manager):
    follow_up(implant, "m1", nrs=None)
    checks.checks_run(rules=["visit_completed_without_nrs"])
    [query] = live("visit_completed_without_nrs")
    queries.query_close(query=query, text="Not collected at this site; accepted.", actor=data_manager)
    assert checks.checks_run(rules=["visit_completed_without_nrs"]).opened == 0


def test_a_fixed_finding_that_comes_back_opens_a_new_query(implant):
    visit = follow_up(implant, "m1", nrs=None)
    checks.checks_run(rules=["visit_completed_without_nrs"])
    save(visit, nrs=4)
    checks.checks_run(rules=["visit_completed_without_nrs"])
    save(visit, nrs=None)
    assert checks.checks_run(rules=["visit_completed_without_nrs"]).opened == 1
    assert DataQuery.objects.filter(rule="visit_completed_without_nrs").count() == 2


def test_a_run_for_one_site_leaves_the_other_alone(implant, site_a, site_b, nurse_b):
    follow_up(implant, "m1", nrs=None)
    other = make_implant(make_patient(site_b, actor=nurse_b), actor=nurse_b)
    follow_up(other, "m1", nrs=None)
    run = checks.checks_run(sites=[site_b], rules=["visit_completed_without_nrs"])
    assert run.opened == 1
    assert live("visit_completed_without_nrs").get().patient.site == site_b


def test_the_command_runs_the_checks_for_a_site(implant, site_a, capsys):
    follow_up(implant, "m1", nrs=None)
    call_command("run_data_checks", "--site", "aaa")
    out = capsys.readouterr().out
    assert "visit_completed_without_nrs: 1 finding(s), 1 opened" in out


def test_the_command_names_an_unknown_site_and_rule(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="'ZZZ'"):
        call_command("run_data_checks", "--site", "ZZZ")
    with pytest.raises(CommandError, match="nrs_jumps"):
        call_command("run_data_checks", "--rule", "nrs_jumps")


def test_every_rule_says_why(db):
    assert len(checks.RULES) >= 7
    for name, why in checks.rules_documented():
        assert len(why) > 60, name


def answer_odi(visit, sections):
    from registry.models import PromAnswer

    for code in sections:
        record_save(PromAnswer(visit=visit, instrument="odi", item=code, value=2),
                    actor=system_user(), reason="test", validate=False)


def test_prom_with_items_missing_beyond_its_scoring_rule(implant):
    # ODI: scored with at least 8 of 10 sections (Fairbank & Pynsent 2000); 7 is too few.
    def plant():
        visit = follow_up(implant, "m3", nrs=4)
        answer_odi(visit, [f"s{n}" for n in range(1, 8)])
        return visit, "prom:odi"

    query = cycle("prom_items_missing", plant, lambda v: answer_odi(v, ["s8"]))
    assert "7 of 10" not in query.messages.first().text  # the missing count, not the answered
    assert "3 of 10 items are not answered (s8, s9, s10)" in query.messages.first().text


def test_a_prom_within_its_scoring_rule_is_no_finding(implant):
    visit = follow_up(implant, "m3", nrs=4)
    answer_odi(visit, [f"s{n}" for n in range(1, 9)])  # 8 of 10: scored
    assert checks.checks_run(rules=["prom_items_missing"]).findings == 0


def test_a_query_on_a_prom_item_reaches_the_sites_nurse(implant, data_manager, nurse, nurse_b):
    from registry.models import PromAnswer

    visit = follow_up(implant, "m3", nrs=4)
    answer_odi(visit, ["s1"])
    answer = PromAnswer.objects.get(visit=visit, item="s1")
    query = queries.query_open(record=answer, field="value", text="Is s1 really 2?",
                               actor=data_manager)
    assert (query.record_type, query.record_key) == ("prom_item", f"{implant.ref} m3 odi.s1")
    assert list(queries.queries_for(nurse)) == [query]
    assert not queries.queries_for(nurse_b).exists()
    queries.query_answer(query=query, text="Checked the paper form: 2.", actor=nurse)
    assert queries.record_load(record_type="prom_item", record_id=answer.pk, user=nurse) == answer
    with pytest.raises(Exception, match="not a field"):
        queries.query_open(record=answer, field="nrs", text="?", actor=data_manager)


# ------------------------------------------------------------------ at registry scale


def _invalid_patient(site, nurse):
    """A patient whose stored rows break the rules clean() reads other rows for: two SCS
    implants in place at once, an explant before a revision, a baseline after the first
    implant (written past the validation, as a bulk job could)."""
    from registry.models import Revision

    patient = make_patient(site, actor=nurse)
    make_visit(patient, actor=nurse)
    first = make_implant(patient, actor=nurse)
    second = make_implant(patient, actor=nurse, trial_start=D(2020, 11, 1), trial_end=D(2020, 11, 10),
                          implant_date=D(2020, 12, 1), therapy="DRG")
    record_save(Revision(implant=first, date=D(2021, 6, 1), reason_code="other", reason="lead"),
                actor=nurse)
    save(first, explant_date=D(2021, 1, 1), explant_reason_code="infection")
    save(second, therapy="SCS")
    save(Visit.objects.get(patient=patient, timepoint="baseline"), date_done=D(2020, 4, 1))
    return patient, first, second


def test_record_invalid_finds_what_clean_finds_across_rows_without_a_query_per_row(
        site_a, nurse, django_assert_max_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    patient, first, second = _invalid_patient(site_a, nurse)
    expected = {("implant", first.pk, "explant_date"), ("implant", second.pk, "implant_date"),
                ("visit", Visit.objects.get(patient=patient, timepoint="baseline").pk, "date_done")}
    found = {f.key for f in checks.RULES["record_invalid"].find(None)}
    assert expected <= found, found
    # The same messages as the row's own clean() gives, row by row (no prefetch).
    assert "before the revision" in checks.record_errors(first)["explant_date"][0]
    assert "overlaps" in checks.record_errors(second)["implant_date"][0]

    def queries_of_one_pass():
        with CaptureQueriesContext(connection) as captured:
            list(checks.RULES["record_invalid"].find(None))
        return len(captured)

    few = queries_of_one_pass()
    for _ in range(3):
        _invalid_patient(site_a, nurse)
    assert queries_of_one_pass() == few  # per chunk, not per row


def test_many_findings_open_in_a_batch_with_their_history(implant, django_assert_max_num_queries):
    visits = [follow_up(implant, tp, nrs=None) for tp in ("m1", "m3", "m6", "m12")]
    with django_assert_max_num_queries(20):
        run = checks.checks_run(rules=["visit_completed_without_nrs"])
    assert run.opened == 4
    opened = live("visit_completed_without_nrs")
    assert sorted(q.record_id for q in opened) == sorted(v.pk for v in visits)
    for query in opened:
        [history] = query.history.all()
        assert history.history_user.username == "registry-system"
        assert history.history_change_reason.startswith("Opened: The visit of")
        [message] = query.messages.all()
        assert message.action == "open" and message.author.username == "registry-system"
        assert message.history.get().history_change_reason == "Query open"
        assert query.record_key == f"{implant.ref} {Visit.objects.get(pk=query.record_id).timepoint}"
    # The same as a query opened one at a time.
    single = queries.query_open(record=visits[0], field="nrs", text="Please check.", actor=system_user())
    assert single.history.get().history_change_reason == "Opened: Please check."
    assert single.messages.get().history.get().history_change_reason == "Query open"


def test_a_batch_another_run_opened_in_between_falls_back_to_one_by_one(implant):
    visits = [follow_up(implant, tp, nrs=None) for tp in ("m1", "m3")]
    # Another run's query on the first finding, written after this run read the live ones.
    rule = checks.RULES["visit_completed_without_nrs"]
    findings = list(rule.find(None))
    queries.query_open(record=visits[0], field="nrs", text="other run", actor=system_user(),
                       rule=rule.name)
    assert checks._open(findings, rule, system_user()) == 1
    assert live(rule.name).count() == 2


def test_after_an_import_the_rules_its_validator_enforced_are_skipped(implant):
    follow_up(implant, "m1", nrs=4, nrs_missing="declined")  # a record_invalid finding
    follow_up(implant, "m3", nrs=None)
    run = checks.checks_run(import_validated=True)
    assert "record_invalid" not in run.by_rule and run.by_rule["visit_completed_without_nrs"]["opened"] == 1
    assert checks.checks_run().by_rule["record_invalid"]["opened"] == 1


def test_an_import_runs_the_checks_but_not_the_validators_own_again(tmp_path, site_a, data_manager):
    import shutil

    from registry.services.imports import REFERENCE_BUNDLE, bundle_import

    folder = tmp_path / "bundle"
    shutil.copytree(REFERENCE_BUNDLE, folder)
    report = bundle_import(source=folder, actor=data_manager, reason="reference cohort")
    assert report.ok, report.errors
    assert "record_invalid" not in report.checks.by_rule
    assert "visit_completed_without_nrs" in report.checks.by_rule
    # The nightly run still holds the stored rows to clean().
    assert "record_invalid" in checks.checks_run().by_rule


def test_many_fixed_findings_close_in_a_batch_with_their_history(implant, data_manager,
                                                                 django_assert_max_num_queries):
    visits = [follow_up(implant, tp, nrs=None) for tp in ("m1", "m3", "m6", "m12")]
    checks.checks_run(rules=["visit_completed_without_nrs"])
    # One the data manager cancels by hand meanwhile: it stays as she left it.
    first = live("visit_completed_without_nrs").get(record_id=visits[0].pk)
    queries.query_cancel(query=first, text="asked in error", actor=data_manager)
    for visit in visits:
        save(visit, nrs=3)
    with django_assert_max_num_queries(20):
        run = checks.checks_run(rules=["visit_completed_without_nrs"])
    assert run.closed == 3 and not live("visit_completed_without_nrs").exists()
    first.refresh_from_db()
    assert first.status == QueryStatus.CANCELLED and not first.closed_by_check
    for query in DataQuery.objects.filter(status=QueryStatus.CLOSED):
        assert query.closed_by_check and query.closed_by.username == "registry-system"
        latest = query.history.first()
        assert latest.history_user.username == "registry-system"
        assert latest.history_change_reason.startswith("Closed: Closed by the data check")
        assert query.version == 2
        message = query.messages.latest("pk")
        assert message.action == "close" and "no longer finds" in message.text
        assert message.history.get().history_change_reason == "Query close"

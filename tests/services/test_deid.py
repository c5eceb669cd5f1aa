"""services.deid: who sees real dates, and the per-patient date shift."""

import datetime

import pytest

from registry.services import deid

IDS = [f"AMS-{n:04d}" for n in range(1, 41)] + ["NYC-0001", "BEL-0007", "RAD-0015"]


def test_the_shift_is_0_to_364_days():
    shifts = [deid.date_shift_days(registry_id) for registry_id in IDS]
    assert all(0 <= days <= 364 for days in shifts)


def test_the_same_patient_always_shifts_by_the_same_amount():
    assert [deid.date_shift_days(i) for i in IDS] == [deid.date_shift_days(i) for i in IDS]


def test_patients_shift_by_different_amounts():
    # 43 ids over 365 values: a constant (or nearly constant) shift would be a bug.
    assert len({deid.date_shift_days(i) for i in IDS}) > 30
    assert deid.date_shift_days("AMS-0001") != deid.date_shift_days("AMS-0002")


def test_the_shift_depends_on_the_secret_key(settings):
    before = [deid.date_shift_days(i) for i in IDS]
    settings.SECRET_KEY = "another-secret-key-for-this-test-only-0123456789"
    after = [deid.date_shift_days(i) for i in IDS]
    assert after != before
    assert sum(a != b for a, b in zip(before, after, strict=True)) > 30


def test_shifted_moves_a_date_back_and_keeps_intervals():
    implant, visit = datetime.date(2020, 3, 1), datetime.date(2020, 6, 2)
    days = deid.date_shift_days("AMS-0001")
    assert deid.shifted(implant, days) == implant - datetime.timedelta(days=days)
    assert deid.shifted(visit, days) - deid.shifted(implant, days) == visit - implant
    assert deid.shifted(None, days) is None
    assert deid.shifted(implant, 0) == implant


@pytest.mark.django_db
def test_data_managers_and_nurses_see_real_dates_investigators_and_others_do_not(
        nurse, nurse_b, investigator, data_manager, outsider, django_user_model):
    assert deid.sees_real_dates(data_manager)
    assert deid.sees_real_dates(nurse) and deid.sees_real_dates(nurse_b)
    assert not deid.sees_real_dates(investigator)
    assert not deid.sees_real_dates(outsider)
    superuser = django_user_model.objects.create_superuser("root", password="x-long-password")
    assert deid.sees_real_dates(superuser)


@pytest.mark.django_db
def test_date_filters_are_refused_only_for_users_who_see_shifted_dates(investigator, data_manager):
    sent = ["therapy", "date_done_after", "updated_since"]
    refused = deid.refused_date_filters(investigator, sent, ["date_done_after", "date_done_before"])
    assert list(refused) == ["date_done_after"]
    assert refused["date_done_after"][0].startswith("'date_done_after': date filters need real dates")
    assert deid.refused_date_filters(data_manager, sent, ["date_done_after"]) == {}

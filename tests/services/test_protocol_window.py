"""scheduling.protocol_window: the target and window of a follow-up entered by hand,
from the site's protocol, +/-14 days for a month the protocol does not list."""

import datetime

import pytest

from registry.models import FollowUpProtocol, Implant, ProtocolTimepoint
from registry.services.audit import record_save
from registry.services.scheduling import UNLISTED_WINDOW_DAYS, protocol_window
from tests.factories import make_patient, make_site

D = datetime.date
JAN_31 = D(2021, 1, 31)  # months after it are clamped to the month's end


@pytest.fixture
def pns_site(nurse):
    """A site whose own protocol has m2 (-3/+5 days) and m4 only."""
    protocol = record_save(FollowUpProtocol(name="Short PNS"), actor=nurse, reason="test")
    for months in (2, 4):
        record_save(ProtocolTimepoint(protocol=protocol, months=months, window_before_days=3,
                                      window_after_days=5), actor=nurse, reason="test")
    return make_site("PNS", protocol=protocol)


def implant_at(site, implant_date=JAN_31):
    # Not saved: the window is arithmetic on the implant date and the site's protocol.
    return Implant(patient=make_patient(site), therapy="PNS", implant_date=implant_date)


def window(slot):
    return slot.target, slot.start, slot.end


def test_a_timepoint_the_protocol_lists_gets_the_protocols_window(pns_site):
    slot = protocol_window(implant=implant_at(pns_site), timepoint="m2")
    # 31 Jan + 2 months is clamped to 31 Mar; -3 / +5 days.
    assert window(slot) == (D(2021, 3, 31), D(2021, 3, 28), D(2021, 4, 5))
    assert slot.code == "m2"


def test_a_month_the_protocol_does_not_list_gets_14_days_either_side(pns_site):
    assert UNLISTED_WINDOW_DAYS == 14
    slot = protocol_window(implant=implant_at(pns_site), timepoint="m9")
    assert window(slot) == (D(2021, 10, 31), D(2021, 10, 17), D(2021, 11, 14))


def test_without_any_protocol_every_month_gets_14_days_either_side(site_a, nurse):
    default = FollowUpProtocol.default()
    default.is_default = False
    record_save(default, actor=nurse, reason="test: a registry without a default protocol")
    slot = protocol_window(implant=implant_at(site_a, D(2020, 3, 1)), timepoint="m3")
    # The default protocol's m3 would be +/-14 too, but m1 there is +/-7: here it is 14.
    assert window(slot) == (D(2020, 6, 1), D(2020, 5, 18), D(2020, 6, 15))
    slot = protocol_window(implant=implant_at(site_a, D(2020, 3, 1)), timepoint="m1")
    assert window(slot) == (D(2020, 4, 1), D(2020, 3, 18), D(2020, 4, 15))


def test_the_default_protocol_applies_to_a_site_without_its_own(site_a):
    slot = protocol_window(implant=implant_at(site_a, D(2020, 3, 1)), timepoint="m1")
    assert window(slot) == (D(2020, 4, 1), D(2020, 3, 25), D(2020, 4, 8))  # m1 is +/-7 days


@pytest.mark.parametrize("timepoint", ["baseline", "trial_end", "unscheduled", "", "m0"])
def test_there_is_no_window_for_a_timepoint_that_is_not_a_follow_up_month(pns_site, timepoint):
    assert protocol_window(implant=implant_at(pns_site), timepoint=timepoint) is None


def test_there_is_no_window_without_an_implant_or_its_date(pns_site):
    assert protocol_window(implant=None, timepoint="m2") is None
    assert protocol_window(implant=implant_at(pns_site, implant_date=None), timepoint="m2") is None

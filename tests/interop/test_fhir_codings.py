"""FHIR codings of registry codes come from the registry's one set of code lists."""

import pytest

from registry.models import choices
from registry.services.fhir import resources


def test_every_registry_code_system_is_one_of_the_code_lists():
    assert set(resources.CODE_SYSTEMS) <= set(choices.CODE_LISTS)


@pytest.mark.parametrize("list_name", sorted(resources.CODE_SYSTEMS))
def test_each_code_is_coded_with_the_label_of_its_list(list_name):
    for _, code, label in choices.numbered(list_name):
        coding = resources.registry_coding(list_name, code)
        assert coding["code"] == str(code) and coding["display"] == label
        assert coding["system"].endswith(f":codes:{resources.CODE_SYSTEMS[list_name]}")


def test_a_code_outside_the_list_is_refused():
    with pytest.raises(ValueError, match="not a code of the registry's therapy list"):
        resources.registry_coding("therapy", "TENS")

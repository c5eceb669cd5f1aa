import pytest

from registry.models import iso14155_class


@pytest.mark.parametrize(
    "serious, device, procedure, anticipated, expected",
    [
        (False, "not_related", "not_related", True, "AE"),
        (True, "not_related", "not_related", True, "SAE"),
        (False, "possible", "not_related", True, "ADE"),
        (False, "not_related", "probable", True, "ADE"),
        (True, "causal", "not_related", True, "SADE"),
        (True, "probable", "not_related", None, "SADE"),
        (True, "possible", "not_related", False, "USADE"),
        (False, "possible", "not_related", False, "ADE"),  # USADE needs seriousness
    ],
)
def test_the_class_is_derived_from_seriousness_relatedness_and_anticipation(
    serious, device, procedure, anticipated, expected
):
    assert iso14155_class(serious=serious, device_relatedness=device,
                          procedure_relatedness=procedure, anticipated=anticipated) == expected

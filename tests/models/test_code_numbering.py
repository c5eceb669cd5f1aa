"""The frozen numbering of coded values (registry.models.choices.NUMBERING) only grows.

FROZEN is the numbering as first released; it may only be extended at the end of a list
(or by a new list). A reorder, a removal or a rename of a numbered code fails here, and
so does a model code that has no number yet (append it to NUMBERING).
"""

import pytest
from django.db import models

from registry.models import choices

FROZEN = {
    "sex": ("M", "F", "X", "U"),
    "consent_status": ("consented", "withdrawn"),
    "enrolment": ("prospective", "retrospective"),
    "etiology": ("traumatic", "iatrogenic", "postamputation", "other"),
    "diagnosis": ("pn", "rlp", "plp", "rlp_plp", "other"),
    "side": ("left", "right", "bilateral", "na"),
    "prior_treatment": ("medication", "physiotherapy", "psychology", "nerve_block", "pns", "tens",
                        "rfa", "cryoneurolysis", "neurolysis", "neuroma_surgery", "other"),
    "therapy": ("SCS", "DRG", "PNS", "CES"),
    "lead_type": ("percutaneous", "paddle"),
    "ipg_location": ("buttock", "flank", "abdomen", "chest", "limb", "external", "other"),
    "paradigm": ("tonic", "burst", "hf10k", "ecap", "other"),
    "visit_status": ("scheduled", "completed", "missed", "not_applicable"),
    "stimulation_use": ("daily", "intermittent", "stopped"),
    "pain_site": ("primary", "residual_limb", "phantom_limb", "back", "other"),
    "recall": ("now", "avg_24h", "avg_7d", "worst"),
    "ae_category": ("infection_superficial", "infection_deep", "lead_migration", "lead_fracture",
                    "hardware_malfunction", "ipg_pocket_pain", "csf_leak", "neurological_deficit",
                    "seroma_haematoma", "loss_of_efficacy", "other"),
    "serious_criterion": ("death", "life_threatening", "permanent_impairment", "hospitalisation",
                          "intervention", "foetal"),
    "severity": ("mild", "moderate", "severe"),
    "relatedness": ("not_related", "possible", "probable", "causal"),
    "ae_action": ("none", "medication", "antibiotics", "reprogramming", "revision", "explant"),
    "ae_outcome": ("resolved", "resolved_sequelae", "ongoing", "fatal", "unknown"),
    "iso_class": ("AE", "SAE", "ADE", "SADE", "USADE"),
    "role": ("nurse", "investigator", "data_manager"),
}


@pytest.mark.parametrize("name", sorted(FROZEN))
def test_a_released_numbering_is_only_ever_extended_at_the_end(name):
    assert name in choices.NUMBERING, f"code list '{name}' was removed from NUMBERING"
    current = choices.NUMBERING[name]
    assert current[:len(FROZEN[name])] == FROZEN[name], (
        f"'{name}' was reordered or shortened: numbers already in files would change meaning")


def test_every_code_list_of_the_models_is_numbered_and_every_code_has_a_number():
    text_choices = {obj for obj in vars(choices).values()
                    if isinstance(obj, type) and issubclass(obj, models.Choices)
                    and obj not in (models.Choices, models.TextChoices, models.IntegerChoices)
                    # The value reasons: a subset of MissingReason, numbered by it.
                    and obj is not choices.ValueMissingReason}
    assert text_choices == set(choices.CODE_LISTS.values()), "a code list is missing from CODE_LISTS"
    for name, code_list in choices.CODE_LISTS.items():
        if choices.is_scale(name):
            continue
        missing = set(code_list.values) - set(choices.NUMBERING[name])
        assert not missing, f"'{name}': append {sorted(missing)} to NUMBERING['{name}']"
        assert len(set(choices.NUMBERING[name])) == len(choices.NUMBERING[name]), f"'{name}' repeats a code"


def test_numbers_are_positions_and_scales_their_values():
    assert choices.code_number("therapy", "DRG") == 2
    assert choices.code_number("iso_class", "USADE") == 5
    assert choices.code_number("pgic", 7) == 7
    assert choices.code_number("sex", "") is None
    assert choices.numbered("etiology")[2] == (3, "postamputation", "Post-amputation pain")
    assert choices.numbered("satisfaction")[0] == (1, 1, "1 - Very dissatisfied")

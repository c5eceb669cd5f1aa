"""IMDRF adverse event terminology (IMDRF/AE WG/N43 FINAL, release 2023): the codes the
registry proposes for each event category, editable on the event.

Annex A: medical device problem; Annex E: clinical signs, symptoms and conditions;
Annex F: health impact. The EU MIR form (MDCG 2020-10/1 rev. 1 for clinical
investigations) asks for these codes. Only the codes and their IMDRF terms are here;
the full annexes are at imdrf.org. A category without a fitting code proposes none
(IMDRF: "Appropriate Term/Code Not Available" is for when no code fits, chosen by a
person, not by a default).
"""

import re

TERMS = {
    # Annex A
    "A010402": "Migration",
    "A040101": "Fracture",
    "A07": "Electrical /Electronic Property Problem",
    "A0705": "Battery Problem",
    "A0909": "Unexpected Therapeutic Results",
    "A24": "Adverse Event Without Identified Device or Use Problem",
    # Annex E
    "E0106": "Cerebrospinal Fluid Leakage",
    "E0139": "Unspecified Nervous System Problem",
    "E0505": "Hematoma",
    "E1906": "Unspecified Infection",
    "E2109": "Implant Pain",
    "E2110": "Inadequate Pain Relief",
    "E2115": "Post Operative Wound Infection",
    "E2403": "No Clinical Signs, Symptoms or Conditions",
    # Annex F
    "F0101": "Therapeutic Response Decreased",
    "F02": "Death",
    "F08": "Hospitalization or Prolonged Hospitalization",
    "F11": "Minor Injury/ Illness / Impairment",
    "F1203": "Life Threatening Illness or Injury",
    "F1204": "Permanent Impairment",
    "F1903": "Device Explantation",
    "F1905": "Device Revision or Replacement",
    "F20": "Serious Public Health Threat",
    "F2303": "Medication Required",
    "F2307": "Reprogramming of Device",
}

# Category -> (device problem, clinical signs). Codes of AeCategory.
BY_CATEGORY: dict[str, tuple[str, str]] = {
    "infection_superficial": ("A24", "E2115"),
    "infection_deep": ("A24", "E1906"),
    "lead_migration": ("A010402", "E2110"),
    "lead_fracture": ("A040101", "E2110"),
    "hardware_malfunction": ("A07", "E2403"),
    "ipg_pocket_pain": ("A24", "E2109"),
    "csf_leak": ("A24", "E0106"),
    "neurological_deficit": ("A24", "E0139"),
    "seroma_haematoma": ("A24", "E0505"),
    "loss_of_efficacy": ("A0909", "E2110"),
    "other": ("", ""),
}

# Health impact: the gravest that applies (outcome and seriousness first, then the action).
BY_CRITERION = {"death": "F02", "life_threatening": "F1203", "permanent_impairment": "F1204",
                "hospitalisation": "F08"}
BY_ACTION = {"explant": "F1903", "revision": "F1905", "reprogramming": "F2307",
             "antibiotics": "F2303", "medication": "F2303"}

PATTERNS = {"A": re.compile(r"^A\d{2}(\d{2}){0,2}$"), "E": re.compile(r"^E\d{2}(\d{2}){0,2}$"),
            "F": re.compile(r"^F\d{2}(\d{2}){0,2}$")}


def health_impact(*, outcome: str, serious_criterion: str, action: str, category: str,
                  public_health_threat: bool = False) -> str:
    if outcome == "fatal":
        return "F02"
    if public_health_threat:
        return "F20"
    if serious_criterion in BY_CRITERION:
        return BY_CRITERION[serious_criterion]
    if action in BY_ACTION:
        return BY_ACTION[action]
    if category == "loss_of_efficacy":
        return "F0101"
    return "F11" if category != "other" else ""


def valid(annex: str, code: str) -> bool:
    """The shape of an IMDRF code of that annex (A0101, E2110, F1903, ...)."""
    return bool(PATTERNS[annex].match(code))

"""Coded values shared by the models, the import bundle and the exports.

The codes (the first element) are the ones written in CSV bundles and analysis
datasets; see docs/import-format.md. Never rename a code: files depend on it.
"""

from django.db import models


class Sex(models.TextChoices):
    MALE = "M", "Male"
    FEMALE = "F", "Female"
    OTHER = "X", "Other / non-binary"
    UNKNOWN = "U", "Unknown"


class ConsentStatus(models.TextChoices):
    CONSENTED = "consented", "Consented"
    WITHDRAWN = "withdrawn", "Withdrawn (keep collected data, stop follow-up)"


class Enrolment(models.TextChoices):
    PROSPECTIVE = "prospective", "Prospective"
    # Chart review: data collected before consent (e.g. the seed cohort).
    RETROSPECTIVE = "retrospective", "Retrospective (chart review)"


class Etiology(models.TextChoices):
    TRAUMATIC = "traumatic", "Traumatic peripheral neuropathy"
    IATROGENIC = "iatrogenic", "Iatrogenic peripheral neuropathy"
    POSTAMPUTATION = "postamputation", "Post-amputation pain"
    OTHER = "other", "Other"


class Diagnosis(models.TextChoices):
    PN = "pn", "Peripheral neuropathic pain"
    RLP = "rlp", "Residual limb pain"
    PLP = "plp", "Phantom limb pain"
    RLP_PLP = "rlp_plp", "Residual and phantom limb pain"
    OTHER = "other", "Other"


class Side(models.TextChoices):
    LEFT = "left", "Left"
    RIGHT = "right", "Right"
    BILATERAL = "bilateral", "Bilateral"
    NOT_APPLICABLE = "na", "Not applicable"


class PriorTreatment(models.TextChoices):
    MEDICATION = "medication", "Medication"
    PHYSIOTHERAPY = "physiotherapy", "Physiotherapy"
    PSYCHOLOGY = "psychology", "Psychological therapy"
    NERVE_BLOCK = "nerve_block", "Nerve block"
    PNS = "pns", "Peripheral nerve stimulation"
    TENS = "tens", "TENS"
    RFA = "rfa", "Radiofrequency ablation"
    CRYONEUROLYSIS = "cryoneurolysis", "Cryoneurolysis"
    NEUROLYSIS = "neurolysis", "Neurolysis"
    NEUROMA_SURGERY = "neuroma_surgery", "Neuroma surgery / TMR / RPNI"
    OTHER = "other", "Other"


class Therapy(models.TextChoices):
    SCS = "SCS", "Spinal cord stimulation"
    DRG = "DRG", "Dorsal root ganglion stimulation"
    PNS = "PNS", "Peripheral nerve stimulation"
    CES = "CES", "Cauda equina stimulation"


class LeadType(models.TextChoices):
    PERCUTANEOUS = "percutaneous", "Percutaneous"
    PADDLE = "paddle", "Paddle (surgical)"


class IpgLocation(models.TextChoices):
    BUTTOCK = "buttock", "Buttock / upper gluteal"
    FLANK = "flank", "Flank"
    ABDOMEN = "abdomen", "Abdomen"
    CHEST = "chest", "Chest"
    LIMB = "limb", "Limb"
    EXTERNAL = "external", "External (wireless / no IPG)"
    OTHER = "other", "Other"


class Paradigm(models.TextChoices):
    TONIC = "tonic", "Tonic"
    BURST = "burst", "Burst"
    HF10 = "hf10k", "High frequency 10 kHz"
    CLOSED_LOOP = "ecap", "Closed-loop (ECAP)"
    OTHER = "other", "Other"


class VisitStatus(models.TextChoices):
    SCHEDULED = "scheduled", "Scheduled"
    COMPLETED = "completed", "Completed"
    MISSED = "missed", "Missed"
    NOT_APPLICABLE = "not_applicable", "Not applicable"


class Satisfaction(models.IntegerChoices):
    VERY_DISSATISFIED = 1, "1 - Very dissatisfied"
    DISSATISFIED = 2, "2 - Dissatisfied"
    NEUTRAL = 3, "3 - Neither satisfied nor dissatisfied"
    SATISFIED = 4, "4 - Satisfied"
    VERY_SATISFIED = 5, "5 - Very satisfied"


class Pgic(models.IntegerChoices):
    # Guy's 7-point Patient Global Impression of Change.
    VERY_MUCH_IMPROVED = 1, "1 - Very much improved"
    MUCH_IMPROVED = 2, "2 - Much improved"
    MINIMALLY_IMPROVED = 3, "3 - Minimally improved"
    NO_CHANGE = 4, "4 - No change"
    MINIMALLY_WORSE = 5, "5 - Minimally worse"
    MUCH_WORSE = 6, "6 - Much worse"
    VERY_MUCH_WORSE = 7, "7 - Very much worse"


class StimulationUse(models.TextChoices):
    DAILY = "daily", "Daily"
    INTERMITTENT = "intermittent", "Intermittently"
    STOPPED = "stopped", "Stopped using"


class PainSite(models.TextChoices):
    PRIMARY = "primary", "Primary pain (the treated pain)"
    RESIDUAL_LIMB = "residual_limb", "Residual limb pain"
    PHANTOM_LIMB = "phantom_limb", "Phantom limb pain"
    BACK = "back", "Back pain"
    OTHER = "other", "Other pain"


class Recall(models.TextChoices):
    NOW = "now", "Now"
    AVG_24H = "avg_24h", "Average, last 24 hours"
    AVG_7D = "avg_7d", "Average, last 7 days"
    WORST = "worst", "Worst, last 7 days"


class AeCategory(models.TextChoices):
    INFECTION_SUPERFICIAL = "infection_superficial", "Superficial infection"
    INFECTION_DEEP = "infection_deep", "Deep infection"
    LEAD_MIGRATION = "lead_migration", "Lead migration"
    LEAD_FRACTURE = "lead_fracture", "Lead fracture"
    HARDWARE_MALFUNCTION = "hardware_malfunction", "Hardware malfunction"
    IPG_POCKET_PAIN = "ipg_pocket_pain", "IPG pocket pain"
    CSF_LEAK = "csf_leak", "CSF leak / post-dural-puncture headache"
    NEUROLOGICAL_DEFICIT = "neurological_deficit", "Neurological deficit"
    SEROMA_HAEMATOMA = "seroma_haematoma", "Seroma or haematoma"
    LOSS_OF_EFFICACY = "loss_of_efficacy", "Loss of efficacy"
    OTHER = "other", "Other"


class SeriousCriterion(models.TextChoices):
    # ISO 14155:2020 3.45 (serious adverse event).
    DEATH = "death", "Led to death"
    LIFE_THREATENING = "life_threatening", "Life-threatening illness or injury"
    PERMANENT_IMPAIRMENT = "permanent_impairment", "Permanent impairment of a body structure/function"
    HOSPITALISATION = "hospitalisation", "In-patient or prolonged hospitalisation"
    INTERVENTION = "intervention", "Intervention to prevent permanent impairment"
    FOETAL = "foetal", "Foetal distress, death, anomaly or birth defect"


class Severity(models.TextChoices):
    MILD = "mild", "Mild"
    MODERATE = "moderate", "Moderate"
    SEVERE = "severe", "Severe"


class Relatedness(models.TextChoices):
    # MDCG 2020-10/1 causality categories.
    NOT_RELATED = "not_related", "Not related"
    POSSIBLE = "possible", "Possible"
    PROBABLE = "probable", "Probable"
    CAUSAL = "causal", "Causal relationship"


RELATED = {Relatedness.POSSIBLE, Relatedness.PROBABLE, Relatedness.CAUSAL}


class AeAction(models.TextChoices):
    NONE = "none", "None"
    MEDICATION = "medication", "Medication"
    ANTIBIOTICS = "antibiotics", "Antibiotics"
    REPROGRAMMING = "reprogramming", "Reprogramming"
    REVISION = "revision", "Surgical revision"
    EXPLANT = "explant", "Explant"


class AeOutcome(models.TextChoices):
    RESOLVED = "resolved", "Resolved"
    RESOLVED_SEQUELAE = "resolved_sequelae", "Resolved with sequelae"
    ONGOING = "ongoing", "Ongoing"
    FATAL = "fatal", "Fatal"
    UNKNOWN = "unknown", "Unknown"


class Iso14155Class(models.TextChoices):
    AE = "AE", "Adverse event"
    SAE = "SAE", "Serious adverse event"
    ADE = "ADE", "Adverse device effect"
    SADE = "SADE", "Serious adverse device effect"
    USADE = "USADE", "Unanticipated serious adverse device effect"


class Role(models.TextChoices):
    NURSE = "nurse", "Research nurse"
    INVESTIGATOR = "investigator", "Investigator"
    DATA_MANAGER = "data_manager", "Data manager"

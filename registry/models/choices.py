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
    DTM = "dtm", "Differential target multiplexed (DTM)"


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


class PromInstrument(models.TextChoices):
    """Patient-reported outcome instruments (definitions: models/instruments.py)."""

    EQ5D5L = "eq5d5l", "EQ-5D-5L"
    ODI = "odi", "Oswestry Disability Index 2.1a"
    BPI_SF = "bpi_sf", "Brief Pain Inventory, short form"
    HADS = "hads", "Hospital Anxiety and Depression Scale"
    PCS = "pcs", "Pain Catastrophizing Scale"
    PSEQ = "pseq", "Pain Self-Efficacy Questionnaire"


class Eq5dValueSet(models.TextChoices):
    """EQ-5D-5L value sets (coefficients and full citations: models/instruments.py)."""

    NL = "NL", "Netherlands (Versteegh et al. 2016)"
    ENG = "ENG", "England (Devlin et al. 2018)"
    US = "US", "United States (Pickard et al. 2019)"
    DE = "DE", "Germany (Ludwig et al. 2018)"
    BE = "BE", "Belgium (Bouckaert et al. 2022)"
# --- Disposition (issue 20): how a patient's course in the registry goes on or ends ----------


class DispositionStatus(models.TextChoices):
    # IMMPACT (Turk et al. 2003, Pain 106:337) counts participant disposition as a core domain.
    ACTIVE = "active", "Active (in follow-up)"
    WITHDRAWN = "withdrawn", "Withdrawn"
    LOST = "lost_to_follow_up", "Lost to follow-up"
    TRANSFERRED = "transferred", "Transferred"
    DECEASED = "deceased", "Deceased"
    COMPLETED = "completed", "Follow-up completed"


class WithdrawalLevel(models.TextChoices):
    # Both keep the data collected before the withdrawal (design: withdrawal keeps data).
    NO_CONTACT = "no_contact", "No more contact (records may still be reviewed)"
    NO_DATA = "no_data", "No more data (no contact, no further data from records)"


class WithdrawalReason(models.TextChoices):
    PATIENT_DECISION = "patient_decision", "Patient's decision"
    ADVERSE_EVENT = "adverse_event", "Adverse event"
    LACK_OF_EFFICACY = "lack_of_efficacy", "Lack of efficacy"
    EXPLANT = "explant", "Device explanted"
    ILLNESS = "illness", "Other illness"
    OTHER = "other", "Other"


class DeathCause(models.TextChoices):
    CARDIOVASCULAR = "cardiovascular", "Cardiovascular"
    CANCER = "cancer", "Cancer"
    INFECTION = "infection", "Infection"
    RESPIRATORY = "respiratory", "Respiratory"
    NEUROLOGICAL = "neurological", "Neurological"
    SUICIDE = "suicide", "Suicide"
    ACCIDENT = "accident", "Accident or injury"
    OVERDOSE = "overdose", "Drug overdose"
    OTHER = "other", "Other"
    UNKNOWN = "unknown", "Unknown"


class ContactMethod(models.TextChoices):
    PHONE = "phone", "Phone"
    EMAIL = "email", "E-mail"
    LETTER = "letter", "Letter"
    GP = "gp", "Via the general practitioner"
    RELATIVE = "relative", "Via a relative or contact person"
    OTHER = "other", "Other"


class ContactOutcome(models.TextChoices):
    REACHED = "reached", "Reached"
    NO_ANSWER = "no_answer", "No answer / no reply"
    MESSAGE_LEFT = "message_left", "Message left, no reply"
    WRONG_DETAILS = "wrong_details", "Contact details no longer valid"
    DECLINED = "declined", "Reached, declined the visit"


# Why a follow-up visit was missed (issue 20) is one concept with why a visit was not
# done (issue 18): one field, Visit.visit_missing, with the one list MissingReason.


# --- Device components (issue 20) ----------------------------------------------------------


class ComponentKind(models.TextChoices):
    IPG = "ipg", "IPG (implantable pulse generator)"
    LEAD = "lead", "Lead"
    EXTENSION = "extension", "Extension"
    RECEIVER = "receiver", "Receiver / external power unit (wireless systems)"
    OTHER = "other", "Other"


class RemovalReason(models.TextChoices):
    # Why a component was removed or revised, or an implant explanted (coded so causes
    # can be counted; Swedish SCS registry: loss of analgesia, infection, hardware).
    BATTERY_DEPLETION = "battery_depletion", "Battery depletion"
    INFECTION = "infection", "Infection"
    LEAD_MIGRATION = "lead_migration", "Lead migration"
    LEAD_FRACTURE = "lead_fracture", "Lead fracture"
    LOSS_OF_EFFICACY = "loss_of_efficacy", "Loss of efficacy"
    PAIN_RESOLVED = "pain_resolved", "Pain resolved (no longer needed)"
    MRI = "mri", "MRI needed"
    OTHER = "other", "Other"
    POCKET_PAIN = "ipg_pocket_pain", "IPG pocket pain"
    HARDWARE_MALFUNCTION = "hardware_malfunction", "Other hardware malfunction"


class RevisionAction(models.TextChoices):
    REMOVED = "removed", "Removed"
    REPLACED = "replaced", "Removed and replaced"
    REPOSITIONED = "repositioned", "Repositioned"
    RECONNECTED = "reconnected", "Reconnected / revised in place"



class DeficiencyKind(models.TextChoices):
    # ISO 14155:2020 3.19 device deficiency.
    MALFUNCTION = "malfunction", "Malfunction"
    USE_ERROR = "use_error", "Use error"
    LABELLING = "labelling", "Inadequate labelling or instructions"
    QUALITY = "quality", "Quality, identity or durability"
    OTHER = "other", "Other"


# --- Patient-reported questionnaires through a link (ePRO) -------------------------------

class EproChannel(models.TextChoices):
    # How the patient agreed to be asked for her questionnaires.
    EMAIL = "email", "E-mail"
    IN_CLINIC = "in_clinic", "In clinic (printed link or QR code)"
    BOTH = "both", "E-mail and in clinic"


class PatientLanguage(models.TextChoices):
    EN = "en", "English"
    NL = "nl", "Nederlands"


class EnteredBy(models.TextChoices):
    # Who entered a visit's answers: the patient through her link, a nurse, or an import.
    NURSE = "nurse", "Research nurse"
    PATIENT = "patient", "Patient (questionnaire link)"
    IMPORT = "import", "Import"


# --- One frozen numbering of the code lists ---------------------------------------------
#
# Formats that store a code as a number (Stata value labels, REDCap raw values) and any
# coding that needs a stable position read these tuples: number = position + 1. APPEND
# ONLY: a number, once given, keeps its meaning in every file ever written, so a code is
# never removed, renamed or moved here (retire it in the model's choices instead).
# tests/models/test_code_numbering.py fails when a list is reordered, shortened, or lags
# behind its model choices. Integer scales (satisfaction, PGIC) are numbered by their value.

class MissingReason(models.TextChoices):
    """Why a value is blank, stored beside the value (never in it). Castor's and HL7's
    null flavours: NASK not asked, ASKU asked but unknown / declined (REDCap codes in
    services.missing)."""

    NOT_ASKED = "not_asked", "Not asked"
    DECLINED = "declined", "Asked but declined"
    UNKNOWN = "unknown", "Unknown"
    NOT_APPLICABLE = "not_applicable", "Not applicable"
    LOST_TO_FOLLOW_UP = "lost_to_follow_up", "Lost to follow-up"
    # Why a whole visit was not done (Visit.visit_missing only; the contact attempts
    # made are its ContactAttempt rows, issue 20).
    UNREACHABLE = "unreachable", "Patient could not be reached"
    TOO_ILL = "too_ill", "Too ill to attend"
    LOGISTICS = "logistics", "Travel or scheduling problem"
    SITE = "site", "Not planned by the site"
    DISPOSITION = "disposition", "Follow-up had ended (withdrawn, deceased, transferred)"
    OTHER = "other", "Other"


# The reasons a single value (NRS, satisfaction, PGIC, MME, a PROM item) can have; the
# others are about a whole visit.
VALUE_MISSING_REASONS = ("not_asked", "declined", "unknown", "not_applicable", "lost_to_follow_up")
# The same codes and labels as a choices class of their own (the bundle's columns, forms).
ValueMissingReason = models.TextChoices("ValueMissingReason", [
    (m.name, (m.value, m.label)) for m in MissingReason if m.value in VALUE_MISSING_REASONS])
VALUE_MISSING_CHOICES = ValueMissingReason.choices


class ReportingRule(models.TextChoices):
    # services/safety/reportability.py derives it (MDR Art. 87 / 88); coded for the
    # safety tabulation.
    PUBLIC_HEALTH_THREAT = "public_health_threat", "MDR Art. 87(4): serious public health threat"
    DEATH_OR_DETERIORATION = "death_or_deterioration", ("MDR Art. 87(5): death or unanticipated "
                                                        "serious deterioration in health")
    SERIOUS_INCIDENT = "serious_incident", "MDR Art. 87(3): serious incident"
    TREND = "trend", "MDR Art. 88: non-serious device effect, for trend reporting"
    NOT_REPORTABLE = "not_reportable", "Not a device incident under MDR Art. 87"


CODE_LISTS: dict[str, type[models.Choices]] = {
    "sex": Sex,
    "consent_status": ConsentStatus,
    "enrolment": Enrolment,
    "etiology": Etiology,
    "diagnosis": Diagnosis,
    "side": Side,
    "prior_treatment": PriorTreatment,
    "therapy": Therapy,
    "lead_type": LeadType,
    "ipg_location": IpgLocation,
    "paradigm": Paradigm,
    "visit_status": VisitStatus,
    "satisfaction": Satisfaction,
    "pgic": Pgic,
    "stimulation_use": StimulationUse,
    "pain_site": PainSite,
    "recall": Recall,
    "ae_category": AeCategory,
    "serious_criterion": SeriousCriterion,
    "severity": Severity,
    "relatedness": Relatedness,
    "ae_action": AeAction,
    "ae_outcome": AeOutcome,
    "iso_class": Iso14155Class,
    "role": Role,
    "prom_instrument": PromInstrument,
    "eq5d_value_set": Eq5dValueSet,
    "missing_reason": MissingReason,
    "disposition_status": DispositionStatus,
    "withdrawal_level": WithdrawalLevel,
    "withdrawal_reason": WithdrawalReason,
    "death_cause": DeathCause,
    "contact_method": ContactMethod,
    "contact_outcome": ContactOutcome,
    "component_kind": ComponentKind,
    "removal_reason": RemovalReason,
    "revision_action": RevisionAction,
    "deficiency_kind": DeficiencyKind,
    "epro_channel": EproChannel,
    "patient_language": PatientLanguage,
    "entered_by": EnteredBy,
    "reporting_rule": ReportingRule,
}

NUMBERING: dict[str, tuple[str, ...]] = {
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
    "paradigm": ("tonic", "burst", "hf10k", "ecap", "other", "dtm"),
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
    "prom_instrument": ("eq5d5l", "odi", "bpi_sf", "hads", "pcs", "pseq"),
    "eq5d_value_set": ("NL", "ENG", "US", "DE", "BE"),
    "missing_reason": ("not_asked", "declined", "unknown", "not_applicable", "lost_to_follow_up",
                       "unreachable", "too_ill", "logistics", "site", "disposition", "other"),
    "disposition_status": ("active", "withdrawn", "lost_to_follow_up", "transferred", "deceased",
                           "completed"),
    "withdrawal_level": ("no_contact", "no_data"),
    "withdrawal_reason": ("patient_decision", "adverse_event", "lack_of_efficacy", "explant",
                          "illness", "other"),
    "death_cause": ("cardiovascular", "cancer", "infection", "respiratory", "neurological",
                    "suicide", "accident", "overdose", "other", "unknown"),
    "contact_method": ("phone", "email", "letter", "gp", "relative", "other"),
    "contact_outcome": ("reached", "no_answer", "message_left", "wrong_details", "declined"),
    "component_kind": ("ipg", "lead", "extension", "receiver", "other"),
    "removal_reason": ("battery_depletion", "infection", "lead_migration", "lead_fracture",
                       "loss_of_efficacy", "pain_resolved", "mri", "other", "ipg_pocket_pain",
                       "hardware_malfunction"),
    "revision_action": ("removed", "replaced", "repositioned", "reconnected"),
    "deficiency_kind": ("malfunction", "use_error", "labelling", "quality", "other"),
    "epro_channel": ("email", "in_clinic", "both"),
    "patient_language": ("en", "nl"),
    "entered_by": ("nurse", "patient", "import"),
    "reporting_rule": ("public_health_threat", "death_or_deterioration", "serious_incident", "trend",
                       "not_reportable"),
}


def is_scale(list_name: str) -> bool:
    """An integer scale (its values are its numbers), not a list of string codes."""
    return issubclass(CODE_LISTS[list_name], models.IntegerChoices)


def numbered(list_name: str) -> list[tuple[int, object, str]]:
    """(number, code, label) of a code list in frozen order; scales by their value."""
    choices = CODE_LISTS[list_name]
    if is_scale(list_name):
        return [(value, value, str(label)) for value, label in choices.choices]
    labels = dict(choices.choices)
    return [(i, code, str(labels.get(code, code))) for i, code in enumerate(NUMBERING[list_name], 1)]


def code_number(list_name: str, code) -> int | None:
    """The frozen number of `code` in `list_name` (None for a missing value)."""
    if code is None or code == "":
        return None
    if is_scale(list_name):
        return int(code)
    return _POSITIONS[list_name][code]


_POSITIONS = {name: {code: i for i, code in enumerate(codes, 1)} for name, codes in NUMBERING.items()}

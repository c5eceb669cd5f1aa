from . import accounts  # noqa: F401  (history of user accounts)
from .choices import *  # noqa: F403
from .components import DeviceComponent, RevisionComponent
from .disposition import ContactAttempt, Disposition
from .epro import EproLink, hash_link_token
from .events import AdverseEvent, iso14155_class
from .implants import DeviceIdentifier, Implant, Revision, first_implant, first_implant_value
from .operations import ApiToken, ExportLog, ImportRun, ReminderLog, hash_token
from .patients import Patient, PatientIdentifiers
from .programming import ProgrammingSession
from .proms import PromAnswer, PromSchedule, PromSheet  # noqa: E402  (after visits and protocol)
from .protocol import FollowUpProtocol, ProtocolTimepoint
from .queries import DataQuery, QueryAction, QueryMessage, QueryStatus
from .safety import DeviceDeficiency, SafetyFollowUp
from .sites import RegistryRole, Site
from .visits import (
    BASELINE,
    TRIAL_END,
    UNSCHEDULED,
    PainScore,
    Visit,
    timepoint_label,
    timepoint_months,
    timepoint_sort_key,
)

__all__ = [
    "AdverseEvent",
    "ApiToken",
    "BASELINE",
    "DataQuery",
    "QueryAction",
    "QueryMessage",
    "QueryStatus",
    "ContactAttempt",
    "DeviceComponent",
    "DeviceDeficiency",
    "Disposition",
    "RevisionComponent",
    "SafetyFollowUp",
    "DeviceIdentifier",
    "EproLink",
    "ExportLog",
    "FollowUpProtocol",
    "ImportRun",
    "Implant",
    "PainScore",
    "ProgrammingSession",
    "Patient",
    "PatientIdentifiers",
    "PromAnswer",
    "PromSheet",
    "PromSchedule",
    "ProtocolTimepoint",
    "RegistryRole",
    "ReminderLog",
    "Revision",
    "Site",
    "TRIAL_END",
    "UNSCHEDULED",
    "Visit",
    "hash_token",
    "hash_link_token",
    "first_implant",
    "first_implant_value",
    "iso14155_class",
    "timepoint_label",
    "timepoint_months",
    "timepoint_sort_key",
]

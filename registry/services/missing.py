"""Missing-data reasons, declared once, and how each format carries them.

The reason is stored beside the value (`Visit.<field>_missing`, `Visit.visit_missing`),
never in it: the value column stays typed for every client (REDCap's codes-in-the-value
break typed columns: REDCapTidieR #181, #221). Each channel then writes the reason in its
own format's missing-value mechanism, from this one table:

| reason | number | SPSS user-missing | Stata | REDCap code | FHIR dataAbsentReason |
| --- | --- | --- | --- | --- | --- |
| not_asked | 1 | -1 | .a | NASK | not-asked |
| declined | 2 | -2 | .b | ASKU | asked-declined |
| unknown | 3 | -3 | .c | UNK | unknown |
| not_applicable | 4 | -4 | .d | NA | not-applicable |
| lost_to_follow_up | 5 | -5 | .e | LTFU | not-performed |
| unreachable | 6 | -6 | .f | UNRCH | not-performed |
| too_ill | 7 | -7 | .g | ILL | not-performed |
| logistics | 8 | -8 | .h | LOGIS | not-performed |
| site | 9 | -9 | .i | NPSITE | not-performed |
| disposition | 10 | -10 | .j | ENDED | not-performed |
| other | 11 | -11 | .k | OTH | as-text |

The first five are a single value's reasons (NRS, satisfaction, PGIC, MME); a whole
visit not done may have any (unreachable ... other are the missed-visit reasons of
issue 20, stored in the same field, `Visit.visit_missing`).

- SPSS: the negative number in the value's numeric column, declared user-missing (the
  range -5..-1 of the value reasons, outside every scale here) and labelled.
- Stata: the extended missing value (.a-.e) in the numeric column, labelled.
- REDCap: the project's `missing_data_codes` setting ("CODE, Label | ...") lists the codes;
  a record carries the code in the field, as REDCap itself stores it and its clients
  (PyCap, REDCapR, redcapAPI) expect. NASK, ASKU, UNK, NA and OTH are REDCap's own
  suggested codes (HL7 null flavours); LTFU, UNRCH, ILL, LOGIS, NPSITE and ENDED are
  custom codes, as REDCap allows.
- FHIR R4: `dataAbsentReason` from http://terminology.hl7.org/CodeSystem/data-absent-reason,
  with the registry's label as text (lost to follow-up has no code of its own there:
  "not-performed", with the text saying why; so have the missed-visit reasons; "other"
  is "as-text").
- CSV, JSON, xlsx and the bundle: a `<column>_missing` column holding the code.
"""

from dataclasses import dataclass

from registry.models import MissingReason
from registry.models.choices import NUMBERING, VALUE_MISSING_REASONS, code_number

FHIR_DATA_ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
# In counts of missing values (completeness, outcome exclusions): no value and no reason.
NO_REASON = "none"
NO_REASON_LABEL = "No value, no reason"


@dataclass(frozen=True)
class Reason:
    code: str
    label: str
    redcap: str
    fhir: str

    @property
    def number(self) -> int:
        return code_number("missing_reason", self.code)

    @property
    def spss(self) -> float:
        return float(-self.number)

    @property
    def stata(self) -> str:
        return "abcdefghijklmnopqrstuvwxyz"[self.number - 1]


_REDCAP = {"not_asked": "NASK", "declined": "ASKU", "unknown": "UNK", "not_applicable": "NA",
           "lost_to_follow_up": "LTFU", "unreachable": "UNRCH", "too_ill": "ILL",
           "logistics": "LOGIS", "site": "NPSITE", "disposition": "ENDED", "other": "OTH"}
_FHIR = {"not_asked": "not-asked", "declined": "asked-declined", "unknown": "unknown",
         "not_applicable": "not-applicable", "lost_to_follow_up": "not-performed",
         "unreachable": "not-performed", "too_ill": "not-performed", "logistics": "not-performed",
         "site": "not-performed", "disposition": "not-performed", "other": "as-text"}
_LABELS = dict(MissingReason.choices)

REASONS: dict[str, Reason] = {
    code: Reason(code, str(_LABELS[code]), _REDCAP[code], _FHIR[code])
    for code in NUMBERING["missing_reason"]
}
BY_REDCAP = {r.redcap: r for r in REASONS.values()}
# The reasons a value column can hold (its SPSS range and Stata labels); the visit's own
# reason is a code column of its own.
VALUE_REASONS: dict[str, Reason] = {code: REASONS[code] for code in VALUE_MISSING_REASONS}
SPSS_RANGE = {"lo": -float(len(VALUE_REASONS)), "hi": -1.0}


def reason(code) -> Reason | None:
    return REASONS.get(code) if code else None


def redcap_missing_data_codes() -> str:
    """REDCap's project setting `missing_data_codes`: "NASK, Not asked | ASKU, ..."."""
    return " | ".join(f"{r.redcap}, {r.label}" for r in REASONS.values())


def fhir_data_absent_reason(code) -> dict | None:
    """FHIR's `dataAbsentReason` CodeableConcept for a reason code (None for none)."""
    found = reason(code)
    if found is None:
        return None
    return {"coding": [{"system": FHIR_DATA_ABSENT, "code": found.fhir}], "text": found.label}

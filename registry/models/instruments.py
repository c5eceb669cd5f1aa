"""Patient-reported outcome instruments: versioned definitions and their scoring.

Pure data and pure functions (no database), so the model (PromAnswer.clean), the
services, the exports and the ePRO pages all read one definition: 0-5 means 0-5
everywhere. The public face is `registry.services.proms.instruments`.

Licensed instruments (EQ-5D-5L: EuroQol Research Foundation; ODI: Mapi Research
Trust on behalf of J. Fairbank; BPI: MD Anderson / C. Cleeland; HADS: GL Assessment;
PCS: M. Sullivan; PSEQ: M. Nicholas) are held here by item codes, short labels of our
own, allowed values, scoring rules and published coefficients only, never their item
wording: a site loads its licensed text itself (`Item.label` is ours, not the wording).

Answers are stored as the item score printed on the instrument's scoring key
(HADS reverse-keyed items are scored as printed; nothing is reversed here).
Every rule cites its source; see also docs/proms.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

HIGHER_BETTER = "higher_better"
HIGHER_WORSE = "higher_worse"


@dataclass(frozen=True)
class Item:
    code: str
    label: str  # a short label of our own, not the licensed wording
    low: int
    high: int

    @property
    def allowed(self) -> range:
        return range(self.low, self.high + 1)


@dataclass(frozen=True)
class Mic:
    """Minimal important change of a score: `value` in points (or % of the baseline when
    `relative`), in the direction of improvement."""

    value: float
    citation: str
    relative: bool = False

    def reached(self, baseline: float, follow_up: float, direction: str) -> bool:
        improvement = follow_up - baseline if direction == HIGHER_BETTER else baseline - follow_up
        if self.relative:
            if not baseline:
                return False
            return improvement / abs(baseline) * 100 >= self.value
        return improvement >= self.value - 1e-9


METHODS = ("index", "value", "percent", "mean", "prorated", "sum")


@dataclass(frozen=True)
class Score:
    """One score of an instrument, declared so that Python (`compute`) and SQL
    (services.proms.sql) read the same rule: `method` over `items`, scored when at least
    `min_answered` of them are answered, rounded to `decimals`.

    Methods: "index" (EQ-5D-5L value set), "value" (one item as given), "percent"
    (sum / (item maximum x answered) x 100), "mean" (sum / answered), "prorated"
    (sum x items / answered), "sum" (plain total).
    """

    code: str  # dataset column, e.g. "odi_score"
    label: str
    low: float | None  # None: depends on the value set (EQ-5D-5L index)
    high: float | None
    direction: str
    mic: Mic | None
    rule: str  # the scoring and missing-item rule in words, with its source
    method: str
    items: tuple[str, ...]
    min_answered: int
    decimals: int = 0
    item_max: int = 0  # "percent": the highest item score
    # Impaired at baseline (holistic responder): a score on the bad side of this cut-off.
    impaired_cutoff: float | None = None
    impaired_citation: str = ""
    impaired_strict: bool = False  # impaired only beyond the cut-off (ODI: above 20 %)

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"Score {self.code}: unknown method '{self.method}'")

    def compute(self, answers: Mapping[str, int | None], value_set: str | None = None) -> float | None:
        given = [answers[c] for c in self.items if answers.get(c) is not None]
        n = len(given)
        if n < self.min_answered:
            return None
        if self.method == "index":
            return VALUE_SETS[value_set or DEFAULT_VALUE_SET].index(answers)
        total = sum(given)
        if self.method in ("value", "sum"):
            return total
        if self.method == "percent":
            value = total / (self.item_max * n) * 100
        elif self.method == "mean":
            value = total / n
        else:  # prorated
            value = total * len(self.items) / n
        return round(value, self.decimals)

    def impaired(self, value: float | None) -> bool | None:
        if value is None or self.impaired_cutoff is None:
            return None
        if self.direction == HIGHER_WORSE:
            if self.impaired_strict:
                return value > self.impaired_cutoff
            return value >= self.impaired_cutoff
        return value < self.impaired_cutoff


@dataclass(frozen=True)
class Instrument:
    code: str
    name: str
    version: str
    items: tuple[Item, ...]
    scores: tuple[Score, ...]
    citation: str
    licence: str

    @property
    def item_codes(self) -> tuple[str, ...]:
        return tuple(item.code for item in self.items)

    def item(self, code: str) -> Item | None:
        return next((item for item in self.items if item.code == code), None)

    @property
    def score_codes(self) -> tuple[str, ...]:
        return tuple(s.code for s in self.scores)


# --- EQ-5D-5L value sets ---------------------------------------------------------------
# Decrements per dimension level (level 1 = 0) and a constant taken off every state but
# 11111. Coefficients as published; cross-checked against the R package eq5d (F. Morton,
# data-raw/VT.csv) and the compendium "Value Sets for EQ-5D-5L" (Devlin, Roudijk, Ludwig
# (eds), Springer 2022, open access). 55555: NL -0.446, ENG -0.285, US -0.573, DE -0.661,
# BE -0.532.


@dataclass(frozen=True)
class ValueSet:
    code: str
    country: str
    citation: str
    constant: float  # subtracted from 1 for every state other than 11111
    # dimension -> decrements for levels 2..5
    decrements: Mapping[str, tuple[float, float, float, float]]

    def index(self, state: Mapping[str, int]) -> float:
        levels = [state[dim] for dim in EQ5D_DIMENSIONS]
        if all(level == 1 for level in levels):
            return 1.0
        value = 1.0 - self.constant
        for dim, level in zip(EQ5D_DIMENSIONS, levels, strict=True):
            if level > 1:
                value -= self.decrements[dim][level - 2]
        # The value sets publish three decimals; + 0.0 turns a -0.0 (NL 32354) into 0.0, as
        # the SQL scores (services.proms.sql) write it.
        return round(value, 3) + 0.0

    @property
    def worst(self) -> float:
        return self.index(dict.fromkeys(EQ5D_DIMENSIONS, 5))


EQ5D_DIMENSIONS = ("mo", "sc", "ua", "pd", "ad")

VALUE_SETS: dict[str, ValueSet] = {
    "NL": ValueSet(
        "NL", "Netherlands",
        "Versteegh MM, Vermeulen KM, Evers SMAA, de Wit GA, Prenger R, Stolk EA. Dutch tariff for "
        "the five-level version of EQ-5D. Value Health 2016;19(4):343-352. doi:10.1016/j.jval.2016.01.003",
        0.047,
        {"mo": (0.035, 0.057, 0.166, 0.203), "sc": (0.038, 0.061, 0.168, 0.168),
         "ua": (0.039, 0.087, 0.192, 0.192), "pd": (0.066, 0.092, 0.360, 0.415),
         "ad": (0.070, 0.145, 0.356, 0.421)},
    ),
    "ENG": ValueSet(
        "ENG", "England",
        "Devlin NJ, Shah KK, Feng Y, Mulhern B, van Hout B. Valuing health-related quality of life: "
        "an EQ-5D-5L value set for England. Health Econ 2018;27(1):7-22. doi:10.1002/hec.3564",
        0.0,
        {"mo": (0.058, 0.076, 0.207, 0.274), "sc": (0.050, 0.080, 0.164, 0.203),
         "ua": (0.050, 0.063, 0.162, 0.184), "pd": (0.063, 0.084, 0.276, 0.335),
         "ad": (0.078, 0.104, 0.285, 0.289)},
    ),
    "US": ValueSet(
        "US", "United States",
        "Pickard AS, Law EH, Jiang R, et al. United States valuation of EQ-5D-5L health states using "
        "an international protocol. Value Health 2019;22(8):931-941. doi:10.1016/j.jval.2019.02.009",
        0.0,
        {"mo": (0.096, 0.122, 0.237, 0.322), "sc": (0.089, 0.107, 0.220, 0.261),
         "ua": (0.068, 0.101, 0.255, 0.255), "pd": (0.060, 0.098, 0.318, 0.414),
         "ad": (0.057, 0.123, 0.299, 0.321)},
    ),
    "DE": ValueSet(
        "DE", "Germany",
        "Ludwig K, Graf von der Schulenburg JM, Greiner W. German value set for the EQ-5D-5L. "
        "Pharmacoeconomics 2018;36(6):663-674. doi:10.1007/s40273-018-0615-8",
        0.0,
        {"mo": (0.026, 0.042, 0.139, 0.224), "sc": (0.050, 0.056, 0.169, 0.260),
         "ua": (0.036, 0.049, 0.129, 0.209), "pd": (0.057, 0.109, 0.404, 0.612),
         "ad": (0.030, 0.082, 0.244, 0.356)},
    ),
    "BE": ValueSet(
        "BE", "Belgium",
        "Bouckaert N, Cleemput I, Devriese S, Gerkens S. An EQ-5D-5L value set for Belgium. "
        "PharmacoEconomics Open 2022;6(6):823-836. doi:10.1007/s41669-022-00353-3 (KCE Report 342)",
        0.0376805,
        {"mo": (0.031544398, 0.058561311, 0.178674496, 0.2267916),
         "sc": (0.023013325, 0.042723608, 0.1303526, 0.1654566),
         "ua": (0.025140523, 0.046672692, 0.142401521, 0.1807503),
         "pd": (0.067077669, 0.124527854, 0.379942857, 0.4822616),
         "ad": (0.061019419, 0.113280877, 0.345627574, 0.4387052)},
    ),
}
DEFAULT_VALUE_SET = "ENG"
# A site's country (ISO 3166-1) -> its value set; other countries get DEFAULT_VALUE_SET.
COUNTRY_VALUE_SETS = {"NL": "NL", "GB": "ENG", "UK": "ENG", "US": "US", "DE": "DE", "BE": "BE"}


def value_set_for_country(country: str | None) -> str:
    return COUNTRY_VALUE_SETS.get((country or "").upper(), DEFAULT_VALUE_SET)


# --- item groups ---------------------------------------------------------------------------

ODI_SECTIONS = tuple(f"s{n}" for n in range(1, 11))
BPI_SEVERITY = ("worst", "least", "average", "now")
BPI_INTERFERENCE = ("general_activity", "mood", "walking", "normal_work", "relations", "sleep",
                    "enjoyment")
HADS_ITEMS = tuple(f"q{n}" for n in range(1, 15))
HADS_ANXIETY = HADS_ITEMS[0::2]  # q1, q3, ... q13 (odd items)
HADS_DEPRESSION = HADS_ITEMS[1::2]  # q2, q4, ... q14 (even items)
PCS_ITEMS = tuple(f"q{n}" for n in range(1, 14))
PSEQ_ITEMS = tuple(f"q{n}" for n in range(1, 11))


# --- the instruments -------------------------------------------------------------------------

EQ5D_LABELS = {"mo": "Mobility", "sc": "Self-care", "ua": "Usual activities",
               "pd": "Pain / discomfort", "ad": "Anxiety / depression"}
BPI_LABELS = {"worst": "Pain at its worst, last 24 h", "least": "Pain at its least, last 24 h",
              "average": "Pain on average", "now": "Pain right now",
              "general_activity": "Interference: general activity", "mood": "Interference: mood",
              "walking": "Interference: walking ability", "normal_work": "Interference: normal work",
              "relations": "Interference: relations with other people",
              "sleep": "Interference: sleep", "enjoyment": "Interference: enjoyment of life"}
ODI_LABELS = ("Pain intensity", "Personal care", "Lifting", "Walking", "Sitting", "Standing",
              "Sleeping", "Sex life", "Social life", "Travelling")

INSTRUMENTS: dict[str, Instrument] = {}


def _register(instrument: Instrument) -> Instrument:
    INSTRUMENTS[instrument.code] = instrument
    return instrument


_register(Instrument(
    code="eq5d5l", name="EQ-5D-5L", version="EQ-5D-5L (EuroQol, 2011)",
    items=(*(Item(dim, EQ5D_LABELS[dim], 1, 5) for dim in EQ5D_DIMENSIONS),
           Item("vas", "EQ VAS, own health today", 0, 100)),
    scores=(
        Score("eq5d5l_index", "EQ-5D-5L index (value set in the metadata)", None, 1.0, HIGHER_BETTER,
              Mic(0.037, "McClure NS, Sayah FA, Xie F, Luo N, Johnson JA. Instrument-defined estimates "
                  "of the minimally important difference for EQ-5D-5L index scores. Value Health "
                  "2017;20(4):644-650 (0.037-0.069 by value set; the lowest taken)"),
              "Index from the five dimension levels by the chosen value set (VALUE_SETS); all five "
              "needed, no imputation (EuroQol EQ-5D-5L User Guide v3.0, 2019).",
              "index", EQ5D_DIMENSIONS, 5, decimals=3, impaired_cutoff=1.0,
              impaired_citation="Any reported problem (index below full health, 1)."),
        Score("eq5d5l_vas", "EQ VAS (0-100)", 0, 100, HIGHER_BETTER, None,
              "The VAS as marked, 0-100 (EuroQol EQ-5D-5L User Guide v3.0, 2019).", "value", ("vas",), 1),
    ),
    citation="Herdman M, Gudex C, Lloyd A, et al. Development and preliminary testing of the new "
             "five-level version of EQ-5D (EQ-5D-5L). Qual Life Res 2011;20(10):1727-1736.",
    licence="EQ-5D is a trademark of the EuroQol Research Foundation; use needs registration "
            "(euroqol.org). Item wording not held here.",
))

_register(Instrument(
    code="odi", name="Oswestry Disability Index", version="ODI 2.1a",
    items=tuple(Item(code, label, 0, 5) for code, label in zip(ODI_SECTIONS, ODI_LABELS, strict=True)),
    scores=(
        Score("odi_score", "ODI (%)", 0, 100, HIGHER_WORSE,
              Mic(10, "Ostelo RWJG, Deyo RA, Stratford P, et al. Interpreting change scores for pain "
                  "and functional status in low back pain. Spine 2008;33(1):90-94 (10 points)"),
              "Sum of the answered sections / (5 x answered) x 100; at least 8 of 10 sections "
              "answered (Fairbank JCT, Pynsent PB. The Oswestry Disability Index. Spine "
              "2000;25(22):2940-2952).",
              "percent", ODI_SECTIONS, 8, decimals=1, item_max=5, impaired_cutoff=20, impaired_strict=True,
              impaired_citation="Moderate disability or worse: ODI above 20 % (Fairbank & Pynsent 2000)."),
    ),
    citation="Fairbank JCT, Pynsent PB. The Oswestry Disability Index. Spine 2000;25(22):2940-2952.",
    licence="ODI: copyright J. Fairbank, licensed through Mapi Research Trust (eprovide.mapi-trust.org). "
            "Item wording not held here.",
))

_register(Instrument(
    code="bpi_sf", name="Brief Pain Inventory, short form", version="BPI-SF (Cleeland 1994)",
    items=tuple(Item(code, BPI_LABELS[code], 0, 10) for code in (*BPI_SEVERITY, *BPI_INTERFERENCE)),
    scores=(
        Score("bpi_severity", "BPI pain severity (0-10)", 0, 10, HIGHER_WORSE,
              Mic(2, "Farrar JT, Young JP, LaMoreaux L, Werth JL, Poole RM. Clinical importance of "
                  "changes in chronic pain intensity measured on an 11-point numerical pain rating "
                  "scale. Pain 2001;94(2):149-158 (2 points)"),
              "Mean of the four severity items (worst, least, average, now); all four needed (Cleeland "
              "CS. The Brief Pain Inventory User Guide, 2009: severity as the mean of items 3-6).",
              "mean", BPI_SEVERITY, 4, decimals=2, impaired_cutoff=4,
              impaired_citation="Moderate pain or worse: 4 or more (Serlin RC et al. Pain "
                                "1995;61(2):277-284)."),
        Score("bpi_interference", "BPI pain interference (0-10)", 0, 10, HIGHER_WORSE,
              Mic(1, "Dworkin RH, Turk DC, Wyrwich KW, et al. Interpreting the clinical importance of "
                  "treatment outcomes in chronic pain clinical trials: IMMPACT recommendations. J Pain "
                  "2008;9(2):105-121 (1 point)"),
              "Mean of the seven interference items; at least 4 of 7 answered (Cleeland CS. The Brief "
              "Pain Inventory User Guide, 2009: the mean is used when more than half are answered).",
              "mean", BPI_INTERFERENCE, 4, decimals=2, impaired_cutoff=4,
              impaired_citation="Moderate interference or worse: 4 or more (Serlin 1995, as for "
                                "severity)."),
    ),
    citation="Cleeland CS, Ryan KM. Pain assessment: global use of the Brief Pain Inventory. Ann Acad "
             "Med Singap 1994;23(2):129-138.",
    licence="BPI: copyright C. S. Cleeland, licensed through MD Anderson Cancer Center. Item wording not "
            "held here.",
))

_HADS_RULE = ("Sum of the seven {0} items (odd items anxiety, even depression, in questionnaire "
              "order), 0-21; one missing item prorated (sum x 7/6), two or more: no score (Zigmond AS, "
              "Snaith RP. Acta Psychiatr Scand 1983;67(6):361-370; prorating as in Bell ML, Fairclough "
              "DL, Fiero MH, Butow PN. Handling missing items in the HADS: a simulation study. BMC Res Notes "
              "2016;9:479).")
_HADS_MIC = Mic(1.5, "Puhan MA, Frey M, Buchi S, Schunemann HJ. The minimal important difference "
                "of the Hospital Anxiety and Depression Scale in patients with chronic obstructive "
                "pulmonary disease. Health Qual Life Outcomes 2008;6:46 (1.5 points)")
_HADS_CASE = "Possible case: 8 or more (Bjelland I et al. J Psychosom Res 2002;52(2):69-77)."

_register(Instrument(
    code="hads", name="Hospital Anxiety and Depression Scale", version="HADS (Zigmond & Snaith 1983)",
    items=tuple(Item(code, f"Item {n} ({'anxiety' if n % 2 else 'depression'})", 0, 3)
                for n, code in enumerate(HADS_ITEMS, start=1)),
    scores=(
        Score("hads_anxiety", "HADS anxiety (0-21)", 0, 21, HIGHER_WORSE, _HADS_MIC,
              _HADS_RULE.format("anxiety"), "prorated", HADS_ANXIETY, 6, decimals=1, impaired_cutoff=8,
              impaired_citation=_HADS_CASE),
        Score("hads_depression", "HADS depression (0-21)", 0, 21, HIGHER_WORSE, _HADS_MIC,
              _HADS_RULE.format("depression"), "prorated", HADS_DEPRESSION, 6, decimals=1, impaired_cutoff=8,
              impaired_citation=_HADS_CASE),
    ),
    citation="Zigmond AS, Snaith RP. The Hospital Anxiety and Depression Scale. Acta Psychiatr Scand "
             "1983;67(6):361-370.",
    licence="HADS: copyright R. P. Snaith and A. S. Zigmond, licensed through GL Assessment. Item "
            "wording not held here.",
))

_register(Instrument(
    code="pcs", name="Pain Catastrophizing Scale", version="PCS (Sullivan 1995)",
    items=tuple(Item(code, f"Item {n}", 0, 4) for n, code in enumerate(PCS_ITEMS, start=1)),
    scores=(
        Score("pcs_total", "PCS total (0-52)", 0, 52, HIGHER_WORSE,
              Mic(38, "Scott W, Wideman TH, Sullivan MJL. Clinically meaningful scores on pain "
                  "catastrophizing before and after multidisciplinary rehabilitation. Clin J Pain "
                  "2014;30(3):183-190 (a 38 % reduction)", relative=True),
              "Sum of the 13 items, 0-52; all items needed (Sullivan MJL, Bishop SR, Pivik J. The Pain "
              "Catastrophizing Scale. Psychol Assess 1995;7(4):524-532; the PCS User Manual gives no "
              "rule for missing items, so none is scored).",
              "sum", PCS_ITEMS, 13, impaired_cutoff=30,
              impaired_citation="Clinically relevant catastrophizing: 30 or more (Sullivan, PCS User "
                                "Manual, 2009)."),
    ),
    citation="Sullivan MJL, Bishop SR, Pivik J. The Pain Catastrophizing Scale: development and "
             "validation. Psychol Assess 1995;7(4):524-532.",
    licence="PCS: copyright M. J. L. Sullivan; free for clinical and research use with permission. Item "
            "wording not held here.",
))

_register(Instrument(
    code="pseq", name="Pain Self-Efficacy Questionnaire", version="PSEQ-10 (Nicholas 2007)",
    items=tuple(Item(code, f"Item {n}", 0, 6) for n, code in enumerate(PSEQ_ITEMS, start=1)),
    scores=(
        Score("pseq_total", "PSEQ total (0-60)", 0, 60, HIGHER_BETTER,
              Mic(5.5, "Maughan EF, Lewis JS. Outcome measures in chronic low back pain. Eur Spine J "
                  "2010;19(9):1484-1494 (5.5 points)"),
              "Sum of the 10 items, 0-60; all items needed (Nicholas MK. The pain self-efficacy "
              "questionnaire: taking pain into account. Eur J Pain 2007;11(2):153-163).",
              "sum", PSEQ_ITEMS, 10, impaired_cutoff=40,
              impaired_citation="Low self-efficacy: below 40 (Nicholas MK, Asghari A, Blyth FM. What do "
                                "the numbers mean? Normative data in chronic pain measures. Pain "
                                "2008;134(1-2):158-173)."),
    ),
    citation="Nicholas MK. The pain self-efficacy questionnaire: taking pain into account. Eur J Pain "
             "2007;11(2):153-163.",
    licence="PSEQ: copyright M. K. Nicholas; free for non-commercial use. Item wording not held here.",
))

SCORES: dict[str, tuple[Instrument, Score]] = {
    s.code: (instrument, s) for instrument in INSTRUMENTS.values() for s in instrument.scores
}
ALGORITHM_VERSION = "registry-proms-1"  # bump when a scoring rule changes


def instrument_of(code: str) -> Instrument:
    try:
        return INSTRUMENTS[code]
    except KeyError:
        raise ValueError(f"Unknown instrument '{code}'; use one of {', '.join(INSTRUMENTS)}.") from None


def check_value_set(value_set: str | None) -> str:
    code = (value_set or DEFAULT_VALUE_SET).upper()
    if code not in VALUE_SETS:
        raise ValueError(f"Unknown EQ-5D-5L value set '{value_set}'; use one of {', '.join(VALUE_SETS)}.")
    return code


def answer_problem(instrument: str, item: str, value) -> str | None:
    """Why `value` is not an answer to `item` of `instrument` (None when it is one)."""
    try:
        found = instrument_of(instrument)
    except ValueError as exc:
        return str(exc)
    definition = found.item(item)
    if definition is None:
        return (f"'{item}' is not an item of {found.name}; its items are "
                f"{', '.join(found.item_codes)}.")
    if value is None or isinstance(value, bool) or not isinstance(value, int) \
            or not definition.low <= value <= definition.high:
        return (f"{found.name} item {item} is scored {definition.low}-{definition.high}; "
                f"{value!r} is not on the scale.")
    return None


def score(instrument: str, answers: Mapping[str, int | None], value_set: str | None = None
          ) -> dict[str, float | None]:
    """Every score of `instrument` from its item answers (item code -> value; missing items
    absent or None), each None where the missing-item rule says it cannot be scored.
    `value_set` picks the EQ-5D-5L value set (NL, ENG, US, DE, BE; default ENG)."""
    found = instrument_of(instrument)
    chosen = check_value_set(value_set)
    return {s.code: s.compute(answers, chosen) for s in found.scores}



def is_scorable(instrument: str, answers: Mapping[str, int | None]) -> bool:
    """Can every score of `instrument` be computed from `answers` (missing-item rules met)?"""
    return all(value is not None for value in score(instrument, answers).values())

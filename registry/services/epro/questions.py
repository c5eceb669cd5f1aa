"""The questions of a visit's questionnaire, and reading the patient's answers.

`questions_for(visit)` is the one place that says what a patient is asked at a
visit: the page, the summary, the validation and the landing in the visit all
read it. Each question's `name` is the export column it fills (`nrs`,
`satisfaction`, `pgic`, `nrs_residual_limb`, `eq5d5l_mo`, `odi_s1`, ...), so form
field names, draft keys and dataset columns are the same names.

The PROM items are those the visit's protocol asks for at its timepoint
(services.proms.instruments `expected_instruments`, the same rule as the admin),
each an item of the instrument definition with its allowed values, so 0-5 means
0-5 here as in every channel. Licensed instruments are asked with our short
label and the scale only (their wording is not in the repository), unless the
site has loaded its licensed text (`texts.py`): then that text is shown.

Wording: the NRS (0-10), 5-point satisfaction and Guy's 7-point PGIC (Guy W.
ECDEU Assessment Manual for Psychopharmacology, 1976; public domain) are asked
with the registry's own short wording, translated through Django i18n.
"""

from dataclasses import dataclass

from django.utils.translation import gettext_lazy as _

from registry.models import BASELINE, Diagnosis, PainSite, Visit, timepoint_months

from ..proms.instruments import INSTRUMENTS, expected_instruments
from .texts import ItemText, choice_text, item_label

NRS_VALUES = tuple(range(0, 11))


@dataclass(frozen=True)
class Question:
    name: str  # the export column (and form field, and draft key)
    label: object  # lazy text: the question as the patient reads it
    choices: tuple[tuple[int, object], ...]  # allowed values and their labels
    widget: str  # "scale": a row of numbers (NRS); "choice": labelled options; "number": a box
    help: object = ""
    low: object = ""  # the scale's ends, for "scale" questions
    high: object = ""
    pain_site: str = ""  # answers that land as a PainScore row (7-day average) of this site
    instrument: str = ""  # a PROM item: the instrument and item code it lands as (PromAnswer)
    item: str = ""

    @property
    def values(self) -> tuple[int, ...]:
        return tuple(value for value, _label in self.choices)

    def label_of(self, value) -> object:
        return dict(self.choices).get(value, "")


def _nrs(name: str, label, pain_site: str = "") -> Question:
    return Question(name=name, label=label, choices=tuple((v, str(v)) for v in NRS_VALUES),
                    widget="scale", low=_("0 = no pain"), high=_("10 = worst pain imaginable"),
                    pain_site=pain_site)


SATISFACTION = Question(
    name="satisfaction", widget="choice",
    label=_("How satisfied are you with the treatment with your stimulator?"),
    choices=((1, _("Very dissatisfied")), (2, _("Dissatisfied")),
             (3, _("Neither satisfied nor dissatisfied")), (4, _("Satisfied")),
             (5, _("Very satisfied"))))

PGIC = Question(
    name="pgic", widget="choice",
    label=_("Since the start of the treatment, how would you describe the change in your pain?"),
    choices=((1, _("Very much improved")), (2, _("Much improved")), (3, _("Minimally improved")),
             (4, _("No change")), (5, _("Minimally worse")), (6, _("Much worse")),
             (7, _("Very much worse"))))

RESIDUAL_LIMB = (Diagnosis.RLP, Diagnosis.RLP_PLP)
PHANTOM_LIMB = (Diagnosis.PLP, Diagnosis.RLP_PLP)


def questions_for(visit: Visit) -> list[Question]:
    """What the patient is asked at `visit`, in page order.

    Every visit: the primary NRS. Follow-ups after the implant (m<N>): satisfaction
    and PGIC. Post-amputation patients also rate residual and phantom limb pain (7-day
    average) as their diagnosis says. Unscheduled and baseline visits are not asked
    through a link (they are clinic contacts): an empty list.
    """
    if visit.timepoint == BASELINE or not visit.window_start:
        return []
    questions = [_nrs("nrs", _("How strong was your pain on average over the last 7 days?"))]
    diagnosis = visit.patient.diagnosis
    if diagnosis in RESIDUAL_LIMB:
        questions.append(_nrs("nrs_residual_limb", _(
            "How strong was the pain in your residual limb (stump) on average over the last 7 days?"),
            pain_site=PainSite.RESIDUAL_LIMB))
    if diagnosis in PHANTOM_LIMB:
        questions.append(_nrs("nrs_phantom_limb", _(
            "How strong was your phantom limb pain on average over the last 7 days?"),
            pain_site=PainSite.PHANTOM_LIMB))
    if timepoint_months(visit.timepoint):
        questions += [SATISFACTION, PGIC]
    site_code = visit.patient.site.code
    for code in expected_instruments(visit):
        questions += [_prom_item(site_code, code, item) for item in INSTRUMENTS[code].items]
    return questions


def _prom_item(site_code: str, instrument: str, item) -> Question:
    definition = INSTRUMENTS[instrument]
    values = tuple(item.allowed)
    text = ItemText(site_code, instrument, item.code, item_label(instrument, item))
    choices = tuple((v, choice_text(site_code, instrument, item.code, v)) for v in values)
    return Question(
        name=f"{instrument}_{item.code}", label=text, choices=choices,
        widget="number" if len(values) > 11 else ("choice" if text.has_choices else "scale"),
        help=text.help(definition.name, item.low, item.high),
        low=str(item.low), high=str(item.high), instrument=instrument, item=item.code)


def answers_read(questions: list[Question], data, *, complete: bool) -> tuple[dict, dict]:
    """(values, errors) from submitted `data` (a form's POST or a saved draft).

    Only the questions' own names are read; anything else is ignored. A value must
    be one of the question's allowed values (the error names the field and the
    value). With `complete`, every question needs an answer (the final submit);
    without it (save and continue) unanswered questions are left out.
    """
    values, errors = {}, {}
    for q in questions:
        raw = data.get(q.name)
        raw = "" if raw is None else str(raw).strip()
        if raw == "":
            if complete:
                errors[q.name] = _("Please answer this question.")
            continue
        try:
            value = int(raw)
        except ValueError:
            value = None
        if value not in q.values:
            allowed = f"{q.values[0]}-{q.values[-1]}"
            errors[q.name] = _("%(field)s: '%(value)s' is not an answer here; choose one of "
                               "%(allowed)s.") % {"field": q.name, "value": raw[:20],
                                                  "allowed": allowed}
            continue
        values[q.name] = value
    return values, errors

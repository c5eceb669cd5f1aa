"""Reportability of an adverse event or device deficiency, derived like the ISO class
(computed from the coded fields, never typed or stored), with its deadline.

The rule (Regulation (EU) 2017/745, the MDR, Article 87 "Reporting of serious incidents
and field safety corrective actions"; terms of Article 2(64)-(66); MDCG 2023-3 Q&A on
vigilance terms). The registry follows CE-marked devices used as intended, so the
post-market vigilance rule applies: the site tells the manufacturer, who reports to the
competent authority within these periods after becoming aware:

- a *serious incident* is reportable: an event related to the device (relatedness
  possible, probable or causal, MDCG 2020-10/1 scale) that is serious (ISO 14155 SAE
  criteria) - an SADE or USADE; and a device deficiency that might have led to one
  (Art. 2(65): "directly or indirectly led, might have led or might lead to");
- deadline, from the awareness date (the day the site learned of it):
  - a serious public health threat: `REGISTRY_SAFETY_DAYS_PUBLIC_HEALTH_THREAT` (2 days,
    Art. 87(4));
  - a death, or an unanticipated serious deterioration in health (USADE):
    `REGISTRY_SAFETY_DAYS_DEATH_OR_DETERIORATION` (10 days, Art. 87(5));
  - any other serious incident: `REGISTRY_SAFETY_DAYS_SERIOUS_INCIDENT` (15 days,
    Art. 87(3));
- not individually reportable under Art. 87: serious events related only to the
  procedure or to nothing (SAE: reported as the site's or the sponsor's own rules ask),
  and non-serious device effects (ADE: counted for trend reporting, Art. 88).
"""

import datetime
from dataclasses import dataclass

from django.conf import settings

from registry.models import Iso14155Class
from registry.models.choices import RELATED, AeOutcome, SeriousCriterion

PUBLIC_HEALTH_THREAT = "public_health_threat"
DEATH_OR_DETERIORATION = "death_or_deterioration"
SERIOUS_INCIDENT = "serious_incident"
TREND = "trend"
NOT_REPORTABLE = "not_reportable"

RULES = {
    PUBLIC_HEALTH_THREAT: "MDR Art. 87(4): serious public health threat",
    DEATH_OR_DETERIORATION: "MDR Art. 87(5): death or unanticipated serious deterioration in health",
    SERIOUS_INCIDENT: "MDR Art. 87(3): serious incident",
    TREND: "MDR Art. 88: non-serious device effect, for trend reporting",
    NOT_REPORTABLE: "Not a device incident under MDR Art. 87 (report as the site's rules ask)",
}


def deadline_days(rule: str) -> int | None:
    return {
        PUBLIC_HEALTH_THREAT: settings.REGISTRY_SAFETY_DAYS_PUBLIC_HEALTH_THREAT,
        DEATH_OR_DETERIORATION: settings.REGISTRY_SAFETY_DAYS_DEATH_OR_DETERIORATION,
        SERIOUS_INCIDENT: settings.REGISTRY_SAFETY_DAYS_SERIOUS_INCIDENT,
    }.get(rule)


@dataclass(frozen=True)
class Reportability:
    rule: str
    awareness_date: datetime.date | None

    @property
    def reportable(self) -> bool:
        return deadline_days(self.rule) is not None

    @property
    def days(self) -> int | None:
        return deadline_days(self.rule)

    @property
    def deadline(self) -> datetime.date | None:
        """The last day to report: awareness + the rule's days (calendar days)."""
        if self.days is None or self.awareness_date is None:
            return None
        return self.awareness_date + datetime.timedelta(days=self.days)

    @property
    def basis(self) -> str:
        return RULES[self.rule]


def event_rule(*, iso_class: str, outcome: str, serious_criterion: str,
               public_health_threat: bool) -> str:
    """The reporting rule of an adverse event (module docstring)."""
    if iso_class in (Iso14155Class.SADE, Iso14155Class.USADE):
        if public_health_threat:
            return PUBLIC_HEALTH_THREAT
        if outcome == AeOutcome.FATAL or serious_criterion == SeriousCriterion.DEATH \
                or iso_class == Iso14155Class.USADE:
            return DEATH_OR_DETERIORATION
        return SERIOUS_INCIDENT
    if iso_class == Iso14155Class.ADE:
        return TREND
    return NOT_REPORTABLE


def event_reportability(event) -> Reportability:
    """Reportability of an AdverseEvent, from its fields."""
    rule = event_rule(iso_class=event.iso_class, outcome=event.outcome,
                      serious_criterion=event.serious_criterion,
                      public_health_threat=event.public_health_threat)
    return Reportability(rule, event.awareness_date or event.onset_date)


def deficiency_reportability(deficiency) -> Reportability:
    """A device deficiency that might have led to a serious incident is one (Art. 2(65));
    with its adverse event it is reported with that event (which decides)."""
    if deficiency.adverse_event_id:
        event = event_reportability(deficiency.adverse_event)
        if event.reportable:
            return event
    if deficiency.might_have_led_to_serious:
        return Reportability(SERIOUS_INCIDENT, deficiency.awareness_date)
    return Reportability(NOT_REPORTABLE if not deficiency.adverse_event_id else
                         event_reportability(deficiency.adverse_event).rule,
                         deficiency.awareness_date)


def is_related(relatedness: str) -> bool:
    return relatedness in RELATED

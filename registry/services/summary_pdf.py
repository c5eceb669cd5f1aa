"""The patient summary as a PDF (ReportLab): what a clinic prints for a patient's file or a
case review, on one or two A4 pages for a typical patient.

Holds: the patient's registry id (the registry's pseudonym), site, sex, birth year,
diagnosis, consent; each implant (therapy, trial, device, explant); the visits with
NRS (and its reduction from baseline), satisfaction, PGIC and opioid use; the PROM
scores of each visit; the adverse events with their ISO 14155 class.
For those users the birth year becomes the age at consent (top-coded, as in the API).
Never: the patient's identifiers (name, record number, contact details, device
serials and UDIs: PatientIdentifiers and DeviceIdentifier are not read) nor any free
text (notes, descriptions, reason details). Dates are shifted by the patient's shift
for users who do not see real dates (deid.shown), and the page says so; the print
date is only printed for users who see real dates.

Refuses (PermissionDenied) users who may not see the patient (access.can_see_patient);
the channel turns that into a 404 for another site's patient.
"""

import datetime
import io
from xml.sax.saxutils import escape

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.utils import timezone
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from registry.models import AdverseEvent, Implant, Patient, Visit, VisitStatus, timepoint_sort_key
from registry.models.visits import BASELINE

from . import access, deid
from .datasets import AGE_TOP, AGE_TOP_LABEL
from .proms.answers import answers_by_visit
from .proms.instruments import INSTRUMENTS, check_value_set, default_value_set, score

GRID = TableStyle([
    ("FONTSIZE", (0, 0), (-1, -1), 7.5),
    ("LEADING", (0, 0), (-1, -1), 9),
    ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef4")),
    ("GRID", (0, 0), (-1, -1), 0.25, colors.HexColor("#9aa5b1")),
    ("VALIGN", (0, 0), (-1, -1), "TOP"),
    ("TOPPADDING", (0, 0), (-1, -1), 1.5),
    ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
])


def _d(value: datetime.date | None) -> str:
    return value.isoformat() if value else ""


def _n(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.1f}".rstrip("0").rstrip(".")
    return str(value)


def reduction(baseline: int | None, value: int | None) -> str:
    """NRS reduction in % (design.md): undefined when the baseline is 0 or missing."""
    if not baseline or value is None:
        return ""
    return f"{round(100 * (baseline - value) / baseline)} %"


def _born(patient: Patient, *, real: bool) -> tuple[str, str]:
    # Investigators get the age at consent, top-coded, as in the API and the datasets
    # (the birth year is not theirs to see).
    if real:
        return "Birth year", str(patient.birth_year)
    age = patient.consent_date.year - patient.birth_year
    return "Age at consent", AGE_TOP_LABEL if age >= AGE_TOP else str(age)


def summary_content(*, patient: Patient, user) -> dict:
    """The summary's rows as text (what the PDF prints; tests read it too)."""
    if not access.can_see_patient(user, patient):
        raise PermissionDenied("Not a patient of your sites.")
    days = None if deid.sees_real_dates(user) else deid.date_shift_days(patient.registry_id)
    implants = list(Implant.objects.filter(patient=patient).order_by("implant_date", "pk"))
    # What was recorded (done, missed, not applicable); of the plan only the next visit.
    upcoming = (Visit.objects.filter(patient=patient, status=VisitStatus.SCHEDULED)
                .order_by("target_date", "pk").first())
    visits = sorted(Visit.objects.filter(patient=patient).exclude(status=VisitStatus.SCHEDULED),
                    key=lambda v: (timepoint_sort_key(v.timepoint), v.date_done or datetime.date.min))
    events = list(AdverseEvent.objects.filter(patient=patient).order_by("onset_date", "pk"))
    baseline = next((v.nrs for v in visits if v.timepoint == BASELINE and v.nrs is not None), None)
    value_set = check_value_set(default_value_set([patient.site.country]))
    held = answers_by_visit([v.pk for v in visits])

    header = [
        ("Registry id", patient.registry_id), ("Site", patient.site.code),
        ("Sex", patient.get_sex_display()), _born(patient, real=days is None),
        ("Etiology", patient.get_etiology_display()), ("Diagnosis", patient.get_diagnosis_display()),
        ("Consent", f"{patient.get_consent_status_display()}, "
                    f"{_d(deid.shown(patient, 'consent_date', days))}"),
    ]
    implant_rows = [["Therapy", "Trial", "Trial result", "Implant", "Device", "Leads / target",
                     "Paradigm", "Explant"]]
    for i in implants:
        trial = " to ".join(x for x in (_d(deid.shown(i, "trial_start", days)),
                                        _d(deid.shown(i, "trial_end", days))) if x)
        result = {True: "success", False: "failed", None: ""}[i.trial_success]
        explant = _d(deid.shown(i, "explant_date", days))
        if explant and i.explant_reason_code:
            explant += f" ({i.get_explant_reason_code_display()})"
        count = f"{i.lead_count} lead(s)" if i.lead_count else ""
        leads = ", ".join(x for x in (i.get_lead_type_display(), count, i.target) if x)
        implant_rows.append([i.get_therapy_display(), trial, result, _d(deid.shown(i, "implant_date", days)),
                             " ".join(x for x in (i.manufacturer, i.model) if x), leads,
                             i.get_paradigm_display(), explant])
    visit_rows = [["Timepoint", "Date", "Status", "NRS", "Reduction", "Satisfaction", "PGIC",
                   "Opioid MME/day"]]
    prom_rows = [["Timepoint", "Instrument", "Scores"]]
    for v in visits:
        visit_rows.append([v.timepoint_label, _d(deid.shown(v, "date_done", days)), v.get_status_display(),
                           _n(v.nrs), reduction(baseline, v.nrs) if v.timepoint != BASELINE else "",
                           v.get_satisfaction_display() if v.satisfaction else "",
                           v.get_pgic_display() if v.pgic else "", _n(v.opioid_mme)])
        for code, answers in sorted(held.get(v.pk, {}).items()):
            scores = score(code, answers, value_set)
            text = "; ".join(f"{name}: {_n(value)}" for name, value in scores.items() if value is not None)
            prom_rows.append([v.timepoint_label, INSTRUMENTS[code].name if code in INSTRUMENTS else code,
                              text or "not scorable (items missing)"])
    event_rows = [["Onset", "Category", "Class", "Severity", "Device / procedure", "Action",
                   "Outcome", "Resolved"]]
    for e in events:
        event_rows.append([_d(deid.shown(e, "onset_date", days)), e.get_category_display(), e.iso_class,
                           e.get_severity_display(),
                           f"{e.get_device_relatedness_display()} / {e.get_procedure_relatedness_display()}",
                           e.get_action_display(), e.get_outcome_display(),
                           _d(deid.shown(e, "resolved_on", days))])
    if upcoming is not None:
        header.append(("Next visit", f"{upcoming.timepoint_label}, target "
                                     f"{_d(deid.shown(upcoming, 'target_date', days))}"))
    return {"header": header, "implants": implant_rows, "visits": visit_rows, "proms": prom_rows,
            "events": event_rows, "shifted": days is not None,
            "printed": None if days is not None else timezone.localdate()}


def _table(rows: list[list[str]], widths: list[float], style) -> Table:
    cell = style["BodyText"].clone("cell", fontSize=7.5, leading=9)
    body = [[Paragraph(escape(str(c)), cell) if i else Paragraph(f"<b>{escape(c)}</b>", cell) for c in row]
            for i, row in enumerate(rows)]
    table = Table(body, colWidths=[w * mm for w in widths], repeatRows=1)
    table.setStyle(GRID)
    return table


def patient_summary_pdf(*, patient: Patient, user) -> bytes:
    """The summary of `patient` as `user` may see it, as PDF bytes (see the module)."""
    content = summary_content(patient=patient, user=user)
    styles = getSampleStyleSheet()
    small = styles["BodyText"].clone("small", fontSize=8, leading=10)
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(buffer, pagesize=A4, leftMargin=14 * mm, rightMargin=14 * mm,
                            topMargin=14 * mm, bottomMargin=14 * mm,
                            title=f"Patient summary {patient.registry_id}", author=settings.REGISTRY_TITLE)
    story = [Paragraph(f"Patient summary: {patient.registry_id}", styles["Title"]),
             Paragraph(" &middot; ".join(f"<b>{k}</b>: {escape(v)}" for k, v in content["header"]), small)]
    notes = []
    if content["shifted"]:
        notes.append("Dates are shifted by a fixed number of days for this patient (de-identified).")
    if content["printed"]:
        notes.append(f"Printed {content['printed'].isoformat()} from {settings.REGISTRY_TITLE}.")
    notes.append("No names, record numbers, contact details or device serial numbers.")
    story.append(Paragraph(" ".join(notes), small))
    sections = [
        ("Implants", "implants", [22, 28, 16, 18, 30, 32, 18, 18]),
        ("Visits", "visits", [20, 20, 20, 10, 18, 30, 34, 30]),
        ("Patient-reported outcomes", "proms", [22, 40, 120]),
        ("Adverse events", "events", [18, 34, 12, 16, 38, 20, 26, 18]),
    ]
    for title, key, widths in sections:
        story.append(Spacer(1, 3 * mm))
        story.append(Paragraph(title, styles["Heading3"]))
        rows = content[key]
        story.append(_table(rows, widths, styles) if len(rows) > 1 else Paragraph("None recorded.", small))
    doc.build(story)
    return buffer.getvalue()


"""Visits in the admin: each follow-up entered as a call (NRS, satisfaction, PGIC,
medication, further pain scores per pain site), with its protocol window and
the flags a nurse works from (outside window, overdue, no NRS).
"""

import copy

from django import forms
from django.contrib import admin, messages
from django.db.models import Case, IntegerField, Value, When
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html

from registry.models import (
    BASELINE,
    UNSCHEDULED,
    Etiology,
    Implant,
    PainScore,
    PainSite,
    Patient,
    Recall,
    Visit,
    VisitStatus,
    timepoint_label,
)
from registry.services import access, scheduling, worklist
from registry.services.dates import site_today

from . import dates
from .base import (
    BackToPatientMixin,
    PatientSearchMixin,
    RegistryAdmin,
    RegistryTabularInline,
    badge,
)
from .epro import QuestionnaireLinksMixin
from .filters import (
    DUE_WEEK,
    MISSING_NRS,
    OVERDUE,
    REAL_DAY_KINDS,
    VisitFollowUpFilter,
    site_filter,
    therapy_filter,
)
from .forms import ClinicalForm
from .proms import VisitPromsMixin
from .queries import QueriesOnRecordMixin
from .reminders import ReminderLogInline


def _order_of(choices, field: str) -> Case:
    return Case(*[When(**{field: value}, then=Value(i)) for i, value in enumerate(choices.values)],
                default=Value(len(choices.values)), output_field=IntegerField())


# Post-amputation patients rate residual and phantom limb pain apart: those rows are ready.
AMPUTATION_ROWS = [{"pain_site": PainSite.RESIDUAL_LIMB, "recall": Recall.AVG_7D},
                   {"pain_site": PainSite.PHANTOM_LIMB, "recall": Recall.AVG_7D}]


class PainScoreInline(RegistryTabularInline):
    model = PainScore
    fields = ["pain_site", "recall", "score"]
    extra = 1
    verbose_name = "further pain score"
    verbose_name_plural = "further pain scores (per pain site and recall period)"

    def get_queryset(self, request):
        # A fixed order, the order of the code lists (primary, residual, phantom, ...),
        # so the rows stay where the nurse put them after saving.
        return super().get_queryset(request).order_by(
            _order_of(PainSite, "pain_site"), _order_of(Recall, "recall"), "pk")

    def amputation_rows(self, request, obj) -> list[dict]:
        patient = obj.patient if obj is not None and obj.patient_id else None
        if patient is None and request.GET.get("patient", "").isdigit():
            patient = Patient.objects.filter(pk=request.GET["patient"]).first()
        if patient is None or patient.etiology != Etiology.POSTAMPUTATION:
            return []
        if obj is not None and obj.pk and obj.pain_scores.exists():
            return []
        return AMPUTATION_ROWS

    def get_extra(self, request, obj=None, **kwargs):
        return len(self.amputation_rows(request, obj)) or self.extra

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        rows = self.amputation_rows(request, obj)
        if not rows:
            return formset

        class Ready(formset):
            def __init__(self, *args, **kw):
                kw.setdefault("initial", rows)
                super().__init__(*args, **kw)

        return Ready


def upcoming_windows(request, implant_id) -> str:
    """The implant's next protocol windows as a sentence for the add-visit form
    ("" when unknown or not the user's)."""
    implant = Implant.objects.select_related("patient__site").filter(pk=implant_id).first() \
        if implant_id else None
    if implant is None or not access.can_see_patient(request.user, implant.patient):
        return ""
    slots = scheduling.upcoming_slots(implant=implant, on=site_today(implant.patient.site.timezone))
    if not slots:
        return ""
    return f"Next windows of {implant.ref}: " + "; ".join(
        f"{timepoint_label(slot.code)}: target {slot.target:%d %b %Y}, "
        f"window {slot.start:%d %b} to {slot.end:%d %b %Y}" for slot in slots) + "."


# The questions as the nurse asks them, with their scales (the wording of the
# registry's own questions; NRS and PGIC are public domain: NRS, Farrar et al. 2001;
# PGIC after Guy 1976, ECDEU Assessment Manual, CGI-I).
QUESTIONS = {
    "nrs": "“On a scale from 0 to 10, where 0 is no pain and 10 is the worst pain you can "
           "imagine, how much pain do you have on average in the last 7 days?” Whole numbers 0-10.",
    "satisfaction": "“How satisfied are you with the result of the stimulation treatment?” "
                    "1 very dissatisfied … 5 very satisfied. Asked after the implant only.",
    "pgic": "“Since the implant, how would you describe the change in your pain condition "
            "overall?” 1 very much improved … 4 no change … 7 very much worse. After the "
            "implant only.",
    "would_choose_again": "“Knowing what you know now, would you choose this treatment again?”",
    "opioid_mme": "Total opioid use in milligram morphine equivalents a day (0 when none).",
    "stimulation_use": "“How often do you use the stimulator?”",
}


def protocol_months(patient) -> list[int]:
    """Months of the follow-up protocol of the patient's site (the registry default
    without one), in protocol order."""
    protocol = scheduling.protocol_for(site=patient.site) if patient is not None else None
    if protocol is None:
        return [1, 3, 6, 12, 24]
    return sorted(protocol.timepoints.values_list("months", flat=True))


class VisitForm(ClinicalForm):
    timepoint = forms.ChoiceField(
        help_text="Baseline is the pre-implant visit; m3 = 3 months after the implant. The "
                  "protocol's timepoints come first, in protocol order.")

    class Meta:
        model = Visit
        fields = "__all__"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, text in QUESTIONS.items():
            if name in self.fields:
                self.fields[name].help_text = text
        patient = self.instance.patient if self.instance.patient_id else None
        if patient is None and str(self.initial.get("patient", "")).isdigit():
            patient = Patient.objects.select_related("site").filter(
                pk=self.initial["patient"]).first()
        months = protocol_months(patient)
        # Baseline, end of trial, the protocol's follow-ups in its order, unscheduled;
        # other months (entered by hand, rare) after them in a group of their own.
        codes = ["baseline", "trial_end"] + [f"m{m}" for m in months] + ["unscheduled"]
        others = [f"m{m}" for m in range(1, 37) if m not in months]
        current = self.instance.timepoint if self.instance.pk else self.initial.get("timepoint")
        if current and current not in codes + others:
            codes.append(current)

        def label(code):
            return f"{timepoint_label(code)} ({code})"

        self.fields["timepoint"].choices = [("", "---------")] + [(c, label(c)) for c in codes] + [
            ("Other follow-up month", [(c, label(c)) for c in others])]

    def _post_clean(self):
        super()._post_clean()
        # The model's range validator and its clean() both speak about an NRS off the
        # scale; the nurse needs one message, the one naming the value.
        nrs_errors = self._errors.get("nrs") if self._errors else None
        if nrs_errors and len(nrs_errors) > 1:
            del nrs_errors[:-1]

    def clean(self):
        cleaned = super().clean()
        # Recording a visit: a date of visit makes it completed (the nurse enters the
        # call; "scheduled" with a date and scores would only be refused).
        if cleaned.get("date_done") and cleaned.get("status") == VisitStatus.SCHEDULED:
            cleaned["status"] = VisitStatus.COMPLETED
        # A follow-up entered by hand gets its target and window from the protocol,
        # so it can be flagged when done outside it.
        implant = cleaned.get("implant")
        timepoint = cleaned.get("timepoint")
        patient = cleaned.get("patient")
        self._check_duplicate(patient, implant, timepoint)
        if implant and timepoint and not self.instance.target_date and not cleaned.get("target_date"):
            slot = scheduling.protocol_window(implant=implant, timepoint=timepoint)
            if slot:
                for name, value in zip(("target_date", "window_start", "window_end"),
                                       (slot.target, slot.start, slot.end), strict=True):
                    # Form fields are copied onto the instance after clean(); others are not.
                    if name in self.fields:
                        cleaned[name] = value
                    setattr(self.instance, name, value)
        return cleaned


    def _check_duplicate(self, patient, implant, timepoint):
        """Say which visit already exists, instead of a database constraint name."""
        if not patient or not timepoint or timepoint == UNSCHEDULED:
            return
        if timepoint == BASELINE:
            twin = Visit.objects.filter(patient=patient, timepoint=BASELINE)
        elif implant:
            twin = Visit.objects.filter(implant=implant, timepoint=timepoint)
        else:
            return
        twin = twin.exclude(pk=self.instance.pk).first()
        if twin is not None:
            self.add_error("timepoint", (
                f"{patient.registry_id} already has a {timepoint_label(timepoint)} visit"
                f"{f' for implant {implant.ref}' if implant and timepoint != BASELINE else ''} "
                f"({twin.get_status_display().lower()}"
                f"{f', target {twin.target_date:%d %b %Y}' if twin.target_date else ''}): "
                "open that visit from the patient page and enter the call there."))


@admin.register(Visit)
class VisitAdmin(QueriesOnRecordMixin, QuestionnaireLinksMixin, VisitPromsMixin, PatientSearchMixin,
                 BackToPatientMixin, RegistryAdmin):
    form = VisitForm
    list_display = ["patient_link", "site_code", "timepoint_name", "target_date", "window",
                    "date_done", "status", "nrs", "window_flag", "enter_visit"]
    list_filter = [site_filter("patient__site_id"), therapy_filter("patient_id"), "status",
                   VisitFollowUpFilter]
    search_fields = ["patient__registry_id"]
    search_help_text = "Registry id, or the hospital record number of a patient of your own site."
    list_select_related = ["patient__site"]
    autocomplete_fields = ["patient", "implant"]
    inlines = [PainScoreInline, ReminderLogInline]
    radio_fields = {"satisfaction": admin.VERTICAL, "pgic": admin.VERTICAL}
    object_history_template = "admin/registry/visit/object_history.html"

    fieldsets = [
        ("Follow-up call", {"fields": ["patient", "implant", "timepoint", "schedule",
                                       ("status", "visit_missing"), "date_done", "window_check"]}),
        # Each value with the reason it is missing beside it (never in it).
        ("Scores", {"fields": [("nrs", "nrs_missing"), ("satisfaction", "satisfaction_missing"),
                               ("pgic", "pgic_missing"), "would_choose_again",
                               ("opioid_mme", "opioid_mme_missing"), "stimulation_use"]}),
        ("Questionnaires (PROMs)", {"fields": ["proms"]}),
        ("Notes", {"fields": ["notes"]}),
        ("Schedule (set from the protocol)", {"fields": ["target_date", "window_start", "window_end"],
                                              "classes": ["collapse"]}),
        ("Reason for change", {"fields": ["change_reason", "edit_version"]}),
    ]

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        if obj is None:
            # A visit entered by hand: the implant's coming windows, before choosing a timepoint.
            windows = upcoming_windows(request, self.get_changeform_initial_data(request).get("implant"))
            if windows:
                field = copy.deepcopy(form.base_fields["timepoint"])  # the declared field is shared
                field.help_text = f"{field.help_text} {windows}"
                form.base_fields["timepoint"] = field
        return form

    def get_readonly_fields(self, request, obj=None):
        # "questionnaire": epro.QuestionnaireLinksMixin
        fields = [*super().get_readonly_fields(request, obj), "schedule", "window_check", "proms",
                  "questionnaire"]
        if obj is not None and not access.is_data_manager(request.user):
            fields += ["target_date", "window_start", "window_end"]
        return fields

    def get_ordering(self, request):
        # The order a nurse works a filtered list in; indexes back each one.
        kind = request.GET.get("follow_up")
        if kind in REAL_DAY_KINDS and dates.shifts_dates(request):
            kind = None  # the filter is not applied for investigators (filters.py)
        return {
            DUE_WEEK: ["window_start"],
            OVERDUE: ["window_end"],
            MISSING_NRS: ["-date_done"],
        }.get(kind, ["-updated_at"])

    def get_changeform_initial_data(self, request):
        initial = super().get_changeform_initial_data(request)
        if "patient" in initial and "implant" not in initial:
            implant = Implant.objects.filter(patient_id=initial["patient"],
                                             explant_date__isnull=True).order_by("-pk").first()
            if implant and access.can_see_patient(request.user, implant.patient):
                initial["implant"] = implant.pk
        return initial

    @admin.display(description="patient", ordering="patient__registry_id")
    def patient_link(self, obj):
        return obj.patient.registry_id

    @admin.display(description="site")
    def site_code(self, obj):
        return obj.patient.site.code

    @admin.display(description="timepoint", ordering="timepoint")
    def timepoint_name(self, obj):
        return obj.timepoint_label

    @admin.display(description="window")
    def window(self, obj):
        if obj.window_start and obj.window_end:
            return f"{obj.window_start:%d %b} – {obj.window_end:%d %b %Y}"
        return "-"

    @admin.display(description="flag")
    def window_flag(self, obj):
        if obj.outside_window:
            return badge("outside window", "#c86400")
        # Not on shifted rows: "overdue" compares the real window with today.
        if not getattr(obj, dates.SHIFTED_MARK, False) and \
                obj.is_overdue(site_today(obj.patient.site.timezone)):
            return badge("overdue", "#ba2121")
        if obj.status == VisitStatus.COMPLETED and obj.nrs is None:
            return badge("no NRS", "#c86400")
        return ""

    @admin.display(description="")
    def enter_visit(self, obj):
        # The worklist's action (services/worklist.py): straight to the visit form.
        if getattr(obj, dates.SHIFTED_MARK, False):
            return ""
        if obj.status == VisitStatus.SCHEDULED:
            label = "Enter visit"
        elif obj.status == VisitStatus.COMPLETED and obj.nrs is None:
            label = "Add the NRS"
        else:
            return ""
        return format_html('<a class="button enter-visit" href="{}">{}</a>',
                           reverse("admin:registry_visit_change", args=[obj.pk]), label)

    @admin.display(description="target date and window")
    def schedule(self, obj):
        if obj is None or not obj.pk or not obj.target_date:
            return "Set from the follow-up protocol when the visit is saved (follow-up timepoints)."
        text = f"Target {obj.target_date:%d %b %Y}"
        if obj.window_start and obj.window_end:
            text += f"; window {obj.window_start:%d %b %Y} to {obj.window_end:%d %b %Y}"
        return text

    @admin.display(description="window check")
    def window_check(self, obj):
        if obj is not None and obj.pk and obj.outside_window:
            return badge(f"Done on {obj.date_done:%d %b %Y}, outside the window "
                         f"({obj.window_start:%d %b} to {obj.window_end:%d %b %Y})", "#c86400")
        return "-"

    def _next_due(self, request, obj):
        """"Save and next due visit": the next visit of the worklist at her sites."""
        if "_nextdue" not in request.POST:
            return None
        sites = access.sites_for(request.user).values_list("pk", "timezone")
        following = worklist.next_due_visit(sites, after_pk=obj.pk)
        if following is None:
            self.message_user(request, f"Visit “{obj}” saved. Nothing else is due at your sites.",
                              messages.SUCCESS)
            return HttpResponseRedirect(reverse("admin:index"))
        self.message_user(request, f"Visit “{obj}” saved. Next due: {following} "
                                   f"({following.timepoint_label}).", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:registry_visit_change", args=[following.pk]))

    def response_add(self, request, obj, post_url_continue=None):
        return self._next_due(request, obj) or super().response_add(request, obj, post_url_continue)

    def response_change(self, request, obj):
        return self._next_due(request, obj) or super().response_change(request, obj)

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if obj.outside_window:
            messages.warning(request, (
                f"Visit {obj} was done on {obj.date_done:%d %b %Y}, outside its window "
                f"({obj.window_start:%d %b %Y} to {obj.window_end:%d %b %Y}). It is saved and "
                "flagged as outside the window."))

    def history_view(self, request, object_id, extra_context=None):
        # The visit's pain scores have their own trail; show it on the same page.
        scores = PainScore.history.filter(visit_id=object_id).select_related("history_user") \
            .order_by("-history_date")[:200]
        extra_context = {**(extra_context or {}), "pain_score_history": scores}
        return super().history_view(request, object_id, extra_context)


@admin.register(PainScore)
class PainScoreAdmin(RegistryAdmin):
    list_display = ["visit", "pain_site", "recall", "score"]
    list_select_related = ["visit__patient"]
    raw_id_fields = ["visit"]

    def has_module_permission(self, request):
        return False  # entered on the visit page

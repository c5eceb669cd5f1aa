"""Visits in the admin: each follow-up entered as a call (NRS, satisfaction, PGIC,
medication, further pain scores per pain site), with its protocol window and
the flags a nurse works from (outside window, overdue, no NRS).
"""

import copy

from django import forms
from django.contrib import admin, messages

from registry.models import (
    BASELINE,
    UNSCHEDULED,
    Implant,
    PainScore,
    ProtocolTimepoint,
    Visit,
    VisitStatus,
    timepoint_label,
)
from registry.services import access, scheduling
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
from .reminders import ReminderLogInline


class PainScoreInline(RegistryTabularInline):
    model = PainScore
    fields = ["pain_site", "recall", "score"]
    extra = 1
    verbose_name = "further pain score"
    verbose_name_plural = "further pain scores (per pain site and recall period)"


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


class VisitForm(ClinicalForm):
    timepoint = forms.ChoiceField(
        help_text="Baseline is the pre-implant visit; m3 = 3 months after the implant.")

    class Meta:
        model = Visit
        fields = "__all__"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        months = sorted(set(ProtocolTimepoint.objects.values_list("months", flat=True))
                        | {1, 3, 6, 12, 24})
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
class VisitAdmin(QuestionnaireLinksMixin, PatientSearchMixin, BackToPatientMixin, RegistryAdmin):
    form = VisitForm
    list_display = ["patient_link", "site_code", "timepoint_name", "target_date", "window",
                    "date_done", "status", "nrs", "window_flag"]
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
                                       "status", "date_done", "window_check"]}),
        ("Scores", {"fields": ["nrs", "satisfaction", "pgic", "would_choose_again",
                               "opioid_mme", "stimulation_use"]}),
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
        fields = ["schedule", "window_check", "questionnaire"]  # the last: epro.QuestionnaireLinksMixin
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

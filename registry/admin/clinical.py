"""Data entry for research nurses: the patient page as the hub, visits as a
follow-up call, adverse events with their derived ISO 14155 class.

All writes go through the services (patient_enrol / patient_save,
implant_save, record_save); all querysets through services.access (see base).
"""

import copy
import datetime

from django import forms
from django.contrib import admin, messages
from django.db.models import OuterRef, Q, Subquery
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html

from registry.models import (
    BASELINE,
    UNSCHEDULED,
    AdverseEvent,
    DeviceIdentifier,
    FollowUpProtocol,
    Implant,
    Iso14155Class,
    PainScore,
    Patient,
    PatientIdentifiers,
    PriorTreatment,
    ProtocolTimepoint,
    Revision,
    Site,
    Visit,
    VisitStatus,
    timepoint_label,
    timepoint_months,
    timepoint_sort_key,
)
from registry.services import access
from registry.services.audit import record_save
from registry.services.dates import site_today
from registry.services.implants import implant_save
from registry.services.patients import patient_enrol, patient_save

from . import dates
from .base import ClinicalForm, RegistryAdmin, RegistryStackedInline, RegistryTabularInline
from .filters import (
    DUE_WEEK,
    MISSING_NRS,
    OVERDUE,
    REAL_DAY_KINDS,
    EventStatusFilter,
    IsoClassFilter,
    PatientFollowUpFilter,
    VisitFollowUpFilter,
    site_filter,
    therapy_filter,
)

try:  # written by the reminders issue; the admin works without it
    from .reminders import ReminderLogInline
except ImportError:  # pragma: no cover - depends on the other module landing
    ReminderLogInline = None

SERIOUS_CLASSES = {Iso14155Class.SAE, Iso14155Class.SADE, Iso14155Class.USADE}


def badge(text, colour):
    return format_html(
        '<span class="registry-badge" style="background:{};color:#fff;padding:1px 6px;'
        'border-radius:3px;font-weight:bold;white-space:nowrap">{}</span>', colour, text)


class PatientSearchMixin:
    """Search by registry id everywhere; by hospital record number only among
    patients of sites where the user may see identifiers (never investigators)."""

    patient_path = "patient__"  # from the listed model to Patient ("" on Patient)

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        p = self.patient_path
        q = Q(**{f"{p}registry_id__startswith": term.upper()})
        identifier_sites = [s for s in access.member_site_ids(request.user)
                            if access.can_see_identifiers(request.user, s)]
        if identifier_sites:
            q |= Q(**{f"{p}identifiers__record_number": term, f"{p}site_id__in": identifier_sites})
        return queryset.filter(q), False


class BackToPatientMixin:
    """An implant, visit or event recorded from the patient page returns there."""

    def response_add(self, request, obj, post_url_continue=None):
        if ("patient" in request.GET and "_continue" not in request.POST
                and "_addanother" not in request.POST and "_popup" not in request.POST):
            self.message_user(request, f"{obj._meta.verbose_name.capitalize()} “{obj}” saved.",
                              messages.SUCCESS)
            return HttpResponseRedirect(
                reverse("admin:registry_patient_change", args=[obj.patient_id]))
        return super().response_add(request, obj, post_url_continue)


# --- sites ---------------------------------------------------------------------------


@admin.register(Site)
class SiteAdmin(RegistryAdmin):
    list_display = ["code", "name", "country", "timezone"]
    search_fields = ["code", "name"]
    inlines = [ReminderLogInline] if ReminderLogInline else []

    def has_add_permission(self, request):
        return access.is_data_manager(request.user)

    def has_change_permission(self, request, obj=None):
        return access.is_data_manager(request.user)


# --- patients ------------------------------------------------------------------------


class PatientIdentifiersInline(RegistryStackedInline):
    model = PatientIdentifiers
    fields = ["record_number", "full_name", "phone", "email", "address"]
    can_delete = False
    extra = max_num = 1
    verbose_name_plural = "identifiers (only your site sees these)"

    def _allowed(self, request, obj):
        if obj is not None and obj.pk:
            return access.can_see_identifiers(request.user, obj.site_id)
        return any(access.can_see_identifiers(request.user, s)
                   for s in access.member_site_ids(request.user))

    def has_view_permission(self, request, obj=None):
        return self._allowed(request, obj)

    def has_add_permission(self, request, obj=None):
        return self._allowed(request, obj)

    def has_change_permission(self, request, obj=None):
        return self._allowed(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False  # identifiers are edited, not removed (and a delete right would show them)

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        user = request.user

        class IdentifierFormSet(formset):
            def clean(self):
                super().clean()
                site_id = self.instance.site_id
                if self.has_changes() and site_id and not access.can_see_identifiers(user, site_id):
                    raise forms.ValidationError(
                        "Identifiers can only be entered by staff of the patient's own site.")

        return IdentifierFormSet


class PatientForm(ClinicalForm):
    prior_treatments = forms.MultipleChoiceField(
        choices=PriorTreatment.choices, required=False, widget=forms.CheckboxSelectMultiple,
        help_text="Treatments tried before the implant.")

    class Meta:
        model = Patient
        fields = "__all__"


def _next_due_subquery():
    return Visit.objects.filter(patient_id=OuterRef("pk"), status=VisitStatus.SCHEDULED) \
        .order_by("target_date")


@admin.register(Patient)
class PatientAdmin(PatientSearchMixin, RegistryAdmin):
    form = PatientForm
    patient_path = ""
    list_display = ["registry_id", "site_code", "therapy", "diagnosis", "consent_status",
                    "next_due", "follow_up_flag"]
    list_filter = [site_filter("site_id"), therapy_filter("pk"), "consent_status",
                   PatientFollowUpFilter, "diagnosis"]
    search_fields = ["registry_id"]
    search_help_text = "Registry id (e.g. NIJ-0007), or the hospital record number of a " \
                       "patient of your own site."
    list_select_related = ["site"]
    ordering = ["registry_id"]
    inlines = [PatientIdentifiersInline]
    shifted_annotations = ["next_due_date", "next_due_window_end"]  # shifted with the row
    fieldsets = [
        ("Patient", {"fields": ["site", "registry_id", "sex", "birth_year", "enrolment",
                                "consent_date", "consent_status", "withdrawal_date"]}),
        ("Pain", {"fields": ["etiology", "diagnosis", "affected_region", "side",
                             "pain_duration_months", "amputation_level", "amputation_cause",
                             "prior_treatments"]}),
        ("Reason for change", {"fields": ["change_reason", "edit_version"]}),
    ]

    def get_list_display(self, request):
        fields = list(super().get_list_display(request))
        if dates.shifts_dates(request):
            # "Overdue" compares the real window with today: it would tell the real date.
            fields.remove("follow_up_flag")
        return fields

    def get_readonly_fields(self, request, obj=None):
        fields = ["registry_id"]
        if obj is not None and not access.is_data_manager(request.user):
            # A data manager who tries to move a patient is told why it cannot (Patient.clean).
            fields.append("site")
        return fields

    def get_changeform_initial_data(self, request):
        initial = super().get_changeform_initial_data(request)
        sites = list(access.sites_for(request.user).values_list("pk", flat=True)[:2])
        if len(sites) == 1:
            initial.setdefault("site", sites[0])
        return initial

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        # Only for the list: one row each, two small correlated sub-queries per page row.
        return qs.annotate(
            latest_therapy=Subquery(Implant.objects.filter(patient_id=OuterRef("pk"))
                                    .order_by("-implant_date", "-pk").values("therapy")[:1]),
            next_due_date=Subquery(_next_due_subquery().values("target_date")[:1]),
            next_due_window_end=Subquery(_next_due_subquery().values("window_end")[:1]),
        )

    @admin.display(description="site", ordering="site__code")
    def site_code(self, obj):
        return obj.site.code

    @admin.display(description="therapy")
    def therapy(self, obj):
        return getattr(obj, "latest_therapy", None) or "-"

    @admin.display(description="next visit due", ordering="next_due_date")
    def next_due(self, obj):
        return getattr(obj, "next_due_date", None) or "-"

    @admin.display(description="follow-up")
    def follow_up_flag(self, obj):
        end = getattr(obj, "next_due_window_end", None)
        if end and end < site_today(obj.site.timezone):
            return badge("overdue", "#ba2121")
        return ""

    def save_model(self, request, obj, form, change):
        self.check_site(request, obj)
        if change:
            if not self.needs_save(obj, form, change):
                return None
            return patient_save(
                patient=obj, actor=request.user,
                reason=self.reason_of(form, change),
                expected_version=form.cleaned_data.get("edit_version"),
            )
        patient_enrol(patient=obj, actor=request.user,
                      reason=self.reason_of(form, change, default="Enrolled in admin"))

    # The hub: everything about the patient at a glance, with links to enter data.
    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and obj.pk:
            context["hub"] = self.hub(request, obj)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def hub(self, request, patient):
        today = site_today(patient.site.timezone)  # the site's day, not the server's
        # Investigators: no "overdue" (it compares the real window with today) and
        # every date shifted; the order is the same, one shift moves all of them.
        real_dates = not dates.shifts_dates(request)
        implants = list(Implant.objects.filter(patient=patient).order_by("implant_date", "pk"))
        visits = sorted(
            Visit.objects.filter(patient=patient).select_related("implant"),
            key=lambda v: (v.target_date or v.date_done or datetime.date.min,
                           timepoint_sort_key(v.timepoint)),
        )
        events = list(AdverseEvent.objects.filter(patient=patient).order_by("-onset_date"))
        scheduled = [v for v in visits if v.status == VisitStatus.SCHEDULED and v.target_date]
        next_due = min(scheduled, key=lambda v: v.target_date) if scheduled else None
        for v in visits:
            v.overdue = real_dates and v.status == VisitStatus.SCHEDULED and v.window_end and \
                v.window_end < today
        next_due_overdue = bool(real_dates and next_due and next_due.window_end
                                and next_due.window_end < today)
        if not real_dates:
            for row in (*implants, *visits, *events):
                # The rows' patient is this one: no query for the registry id.
                if hasattr(row, "patient_id"):
                    row.patient = patient
                dates.shift_in_place(row)
        for e in events:
            e.serious_class = e.iso_class in SERIOUS_CLASSES
        can_edit = access.can_edit(request.user, patient.site_id)
        current = [i for i in implants if not i.explant_date]
        therapy = ", ".join(f"{i.get_therapy_display()} ({i.therapy})" for i in current) or (
            "explanted" if implants else "no implant recorded")
        visit_list = reverse("admin:registry_visit_changelist")
        return {
            "patient": patient,
            "therapy": therapy,
            "implants": implants,
            "visits": visits,
            "events": events,
            "next_due": next_due,
            "next_due_overdue": next_due_overdue,
            "can_edit": can_edit,
            "add_implant": reverse("admin:registry_implant_add") + f"?patient={patient.pk}",
            "add_visit": reverse("admin:registry_visit_add") + f"?patient={patient.pk}",
            "add_event": reverse("admin:registry_adverseevent_add") + f"?patient={patient.pk}",
            "back": f"_changelist_filters=patient%3D{patient.pk}",
            "visit_list": f"{visit_list}?patient={patient.pk}",
        }


class IdentifierAdmin(RegistryAdmin):
    """Identifiers (names, record numbers, device serials) on every page, history
    pages included: only nurses and data managers who are members of the
    patient's own site (access.can_see_identifiers), never investigators.

    The history pages look rows up themselves (the last history row when
    get_queryset has nothing) and ask only the permissions, so the rule has to
    be in the permissions and not only in get_queryset.
    """

    def _identifier_sites(self, request):
        return [s for s in access.member_site_ids(request.user)
                if access.can_see_identifiers(request.user, s)]

    def _sees(self, request, obj) -> bool:
        return access.can_see_identifiers(request.user, self.site_id_of(obj))

    def has_module_permission(self, request):
        return bool(self._identifier_sites(request))

    def has_view_permission(self, request, obj=None):
        if obj is None:
            return bool(self._identifier_sites(request))
        return self._sees(request, obj)

    def has_add_permission(self, request):
        return bool(self._identifier_sites(request)) and super().has_add_permission(request)

    def has_change_permission(self, request, obj=None):
        return self.has_view_permission(request, obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        # A data manager deleting a patient of any site deletes its identifiers with
        # it (the confirmation names them by registry id only); the identifiers' own
        # delete page is a 404 like their other pages, through get_queryset.
        return access.is_data_manager(request.user)


@admin.register(PatientIdentifiers)
class PatientIdentifiersAdmin(IdentifierAdmin):
    list_display = ["patient", "record_number"]
    search_fields = ["patient__registry_id", "=record_number"]
    list_select_related = ["patient"]
    autocomplete_fields = ["patient"]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(patient__site_id__in=self._identifier_sites(request))

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "patient":
            kwargs["queryset"] = Patient.objects.filter(site_id__in=self._identifier_sites(request))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


# --- implants ------------------------------------------------------------------------


@admin.register(Implant)
class ImplantAdmin(BackToPatientMixin, RegistryAdmin):
    list_display = ["ref", "patient", "therapy", "implant_date", "paradigm", "explant_date"]
    list_filter = [site_filter("patient__site_id"), "therapy", "paradigm"]
    search_fields = ["ref", "patient__registry_id"]
    list_select_related = ["patient"]
    readonly_fields = ["ref"]
    autocomplete_fields = ["patient"]
    ordering = ["-pk"]
    fieldsets = [
        ("Implant", {"fields": ["patient", "ref", "therapy"]}),
        ("Trial", {"fields": ["trial_start", "trial_end", "trial_success", "trial_criterion"]}),
        ("Device", {"fields": ["implant_date", "manufacturer", "model", "lead_type", "lead_count",
                               "target", "ipg_rechargeable", "ipg_location", "paradigm"]}),
        ("Explant", {"fields": ["explant_date", "explant_reason"]}),
        ("Reason for change", {"fields": ["change_reason", "edit_version"]}),
    ]

    def save_model(self, request, obj, form, change):
        self.check_site(request, obj)
        if not self.needs_save(obj, form, change):
            return
        implant_save(
            implant=obj,
            actor=request.user,
            reason=self.reason_of(form, change),
            expected_version=form.cleaned_data.get("edit_version") if change else None,
        )


@admin.register(Revision)
class RevisionAdmin(RegistryAdmin):
    list_display = ["implant", "date", "reason"]
    raw_id_fields = ["implant"]
    list_select_related = ["implant__patient"]  # the registry id keys an investigator's shift


@admin.register(DeviceIdentifier)
class DeviceIdentifierAdmin(IdentifierAdmin):
    list_display = ["implant", "component"]
    raw_id_fields = ["implant"]
    list_select_related = ["implant"]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(
            implant__patient__site_id__in=self._identifier_sites(request))

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "implant":
            kwargs["queryset"] = Implant.objects.filter(
                patient__site_id__in=self._identifier_sites(request))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


# --- visits --------------------------------------------------------------------------


class PainScoreInline(RegistryTabularInline):
    model = PainScore
    fields = ["pain_site", "recall", "score"]
    extra = 1
    verbose_name = "further pain score"
    verbose_name_plural = "further pain scores (per pain site and recall period)"


def protocol_window(implant: Implant | None, timepoint: str):
    """Target date and window of a follow-up timepoint from the site's protocol
    (the scheduler's arithmetic). None when it cannot be known."""
    from registry.services import scheduling

    months = timepoint_months(timepoint)
    if not months or implant is None or not implant.implant_date:
        return None
    protocol = scheduling.protocol_for(site=implant.patient.site)
    tp = next((t for t in protocol.timepoints.all() if t.months == months), None) if protocol else None
    # A timepoint the protocol does not list (an extra m9, say) gets a +/-14 day window.
    tp = tp or ProtocolTimepoint(months=months, window_before_days=14, window_after_days=14)
    slot = scheduling.timepoint_slot(implant_date=implant.implant_date, timepoint=tp)
    return slot.target, slot.start, slot.end


def upcoming_windows(request, implant_id) -> str:
    """The implant's next protocol windows as a sentence for the add-visit form
    ("" when unknown or not the user's)."""
    from registry.services import scheduling

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
            window = protocol_window(implant, timepoint)
            if window:
                for name, value in zip(("target_date", "window_start", "window_end"), window,
                                       strict=True):
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
class VisitAdmin(PatientSearchMixin, BackToPatientMixin, RegistryAdmin):
    form = VisitForm
    list_display = ["patient_link", "site_code", "timepoint_name", "target_date", "window",
                    "date_done", "status", "nrs", "window_flag"]
    list_filter = [site_filter("patient__site_id"), therapy_filter("patient_id"), "status",
                   VisitFollowUpFilter]
    search_fields = ["patient__registry_id"]
    search_help_text = "Registry id, or the hospital record number of a patient of your own site."
    list_select_related = ["patient__site"]
    autocomplete_fields = ["patient", "implant"]
    inlines = [PainScoreInline] + ([ReminderLogInline] if ReminderLogInline else [])
    radio_fields = {"satisfaction": admin.VERTICAL, "pgic": admin.VERTICAL}
    object_history_template = "admin/registry/visit/object_history.html"

    def get_fieldsets(self, request, obj=None):
        schedule = ["target_date", "window_start", "window_end"]
        return [
            ("Follow-up call", {"fields": ["patient", "implant", "timepoint", "schedule",
                                           "status", "date_done", "window_check"]}),
            ("Scores", {"fields": ["nrs", "satisfaction", "pgic", "would_choose_again",
                                   "opioid_mme", "stimulation_use"]}),
            ("Notes", {"fields": ["notes"]}),
            ("Schedule (set from the protocol)", {"fields": schedule, "classes": ["collapse"]}),
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
        fields = ["schedule", "window_check"]
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
                obj.status == VisitStatus.SCHEDULED and obj.window_end and \
                obj.window_end < site_today(obj.patient.site.timezone):
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


# --- adverse events ------------------------------------------------------------------


@admin.register(AdverseEvent)
class AdverseEventAdmin(PatientSearchMixin, BackToPatientMixin, RegistryAdmin):
    list_display = ["patient_link", "onset_date", "category", "iso_class_badge", "severity",
                    "outcome", "resolved_on"]
    list_filter = [site_filter("patient__site_id"), therapy_filter("patient_id"), "serious",
                   IsoClassFilter, EventStatusFilter, "category"]
    search_fields = ["patient__registry_id"]
    search_help_text = "Registry id, or the hospital record number of a patient of your own site."
    list_select_related = ["patient"]
    autocomplete_fields = ["patient", "implant"]
    readonly_fields = ["iso_class_explained"]
    ordering = ["-onset_date", "-pk"]
    fieldsets = [
        ("Event", {"fields": ["patient", "implant", "onset_date", "category", "description"]}),
        ("Seriousness and causality", {"fields": [
            "serious", "serious_criterion", "severity", "device_relatedness",
            "procedure_relatedness", "anticipated", "iso_class_explained"]}),
        ("Action and outcome", {"fields": ["action", "outcome", "resolved_on"]}),
        ("Reason for change", {"fields": ["change_reason", "edit_version"]}),
    ]

    @admin.display(description="patient", ordering="patient__registry_id")
    def patient_link(self, obj):
        return obj.patient.registry_id

    @admin.display(description="ISO 14155 class")
    def iso_class_badge(self, obj):
        cls = obj.iso_class
        if cls in SERIOUS_CLASSES:
            return badge(cls, "#ba2121")
        return cls

    @admin.display(description="ISO 14155 class (derived)")
    def iso_class_explained(self, obj):
        if obj is None or not obj.pk:
            return "Derived when saved, from serious, relatedness and anticipated."
        cls = Iso14155Class(obj.iso_class)
        text = f"{cls.value} – {cls.label}"
        return badge(text, "#ba2121") if cls in SERIOUS_CLASSES else text


# --- protocol and roles (data managers) -----------------------------------------------


class ProtocolTimepointInline(RegistryTabularInline):
    model = ProtocolTimepoint
    fields = ["months", "window_before_days", "window_after_days"]

    def has_add_permission(self, request, obj=None):
        return access.is_data_manager(request.user)

    has_change_permission = has_delete_permission = has_add_permission


@admin.register(FollowUpProtocol)
class FollowUpProtocolAdmin(RegistryAdmin):
    list_display = ["name", "is_default"]
    inlines = [ProtocolTimepointInline]

    def get_queryset(self, request):
        return FollowUpProtocol.objects.all()

    def has_add_permission(self, request):
        return access.is_data_manager(request.user)

    def has_change_permission(self, request, obj=None):
        return access.is_data_manager(request.user)

    def save_formset(self, request, form, formset, change):
        reason = self.reason_of(form, change, default="Protocol edited")
        for obj in formset.save(commit=False):
            record_save(obj, actor=request.user, reason=reason)
        for obj in formset.deleted_objects:
            obj._history_user = request.user
            obj.delete()

"""Query filters shared by the list endpoints and the exports.

Every filter validates its value: an unknown code or a bad date makes the
filter set invalid, which the API turns into a 400 naming the parameter.
Clinical-date ranges (`*_after` / `*_before`) are refused for users who see
shifted dates (services.deid): bisecting them would reveal the real date.
"""

import copy

import django_filters as filters
from django import forms
from django.core.exceptions import ValidationError
from django_filters.fields import DateRangeField
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import exceptions

from registry.models import (
    AdverseEvent,
    AeCategory,
    ConsentStatus,
    Diagnosis,
    Etiology,
    Implant,
    Iso14155Class,
    Patient,
    PromAnswer,
    PromInstrument,
    Severity,
    Site,
    Therapy,
    Visit,
    VisitStatus,
)
from registry.models.visits import TIMEPOINT_RE
from registry.services import deid
from registry.services.access import sites_for


def _visible_sites(request):
    if request is None:
        return Site.objects.none()
    return sites_for(request.user)


class CodeListField(forms.CharField):
    """Comma-separated codes (also repeatable), each checked against `valid`."""

    def __init__(self, *args, valid=None, pattern=None, what="value", **kwargs):
        self.valid, self.pattern, self.what = valid, pattern, what
        super().__init__(*args, **kwargs)

    def to_python(self, value):
        if value in (None, ""):
            return []
        values = value if isinstance(value, list | tuple) else [value]
        codes = [part.strip() for v in values for part in str(v).split(",") if part.strip()]
        bad = [c for c in codes if (self.valid is not None and c not in self.valid)
               or (self.pattern is not None and not self.pattern.match(c))]
        if bad:
            expected = ", ".join(self.valid) if self.valid is not None else self.pattern_help
            raise ValidationError(f"Unknown {self.what} '{bad[0]}'; expected {expected}.")
        return codes

    pattern_help = "baseline, trial_end, unscheduled or m<N> (e.g. m3, m12)"


@extend_schema_field(OpenApiTypes.STR)
class CodeFilter(filters.Filter):
    """`?name=a,b` or `?name=a&name=b`: rows whose field is one of the codes."""

    field_class = CodeListField

    def filter(self, qs, value):
        if not value:
            return qs
        return qs.filter(**{f"{self.field_name}__in": value})


class CodeWidget(forms.TextInput):
    def value_from_datadict(self, data, files, name):
        getlist = getattr(data, "getlist", None)
        values = getlist(name) if getlist else data.get(name)
        if isinstance(values, list) and len(values) <= 1:
            return values[0] if values else None
        return values


def code_filter(field_name, choices=None, pattern=None, what=None, help_text=""):
    valid = list(choices.values) if choices is not None else None
    return CodeFilter(field_name=field_name, valid=valid, pattern=pattern, what=what or field_name,
                      widget=CodeWidget, help_text=help_text or _help(choices))


def _help(choices):
    return "One or more codes, comma-separated: " + ", ".join(choices.values) if choices else ""


ISO_DATE = ["%Y-%m-%d"]


class IsoDateRangeField(DateRangeField):
    """`_after`/`_before` dates in ISO form only (01/02/2020 is ambiguous across sites)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields:
            field.input_formats = ISO_DATE


DATE_RANGE_NOTE = " (real dates: refused for investigators, who see dates shifted per patient)"


class DateRangeFilter(filters.DateFromToRangeFilter):
    field_class = IsoDateRangeField

    def __init__(self, *args, help_text="", **kwargs):
        super().__init__(*args, help_text=help_text + DATE_RANGE_NOTE, **kwargs)


class TherapyFilter(CodeFilter):
    """Visits and events without an implant (baseline) follow the patient's implants."""

    def filter(self, qs, value):
        if not value:
            return qs
        from django.db.models import Q

        with_implant = Implant.objects.filter(therapy__in=value).values("patient_id")
        return qs.filter(Q(implant__therapy__in=value)
                         | Q(implant__isnull=True, patient_id__in=with_implant))


@extend_schema_field(OpenApiTypes.STR)
class SiteCodeFilter(filters.ModelMultipleChoiceFilter):
    """`?site=AAA` (repeatable): only sites the caller may see are valid."""

    def __init__(self, field_name, **kwargs):
        # distinct=False: a site is reached through to-one joins, rows cannot repeat.
        super().__init__(field_name=field_name, to_field_name="code", queryset=_visible_sites,
                         distinct=False,
                         help_text="Site code(s) the caller can see; repeat for several.", **kwargs)


UPDATED_HELP = "Rows changed at or after this ISO 8601 date-time (incremental pulls)."


class SiteFilter(filters.FilterSet):
    updated_since = filters.IsoDateTimeFilter(field_name="updated_at", lookup_expr="gte",
                                              help_text=UPDATED_HELP)

    class Meta:
        model = Site
        fields = []


class PatientFilter(filters.FilterSet):
    site = SiteCodeFilter("site__code")
    etiology = code_filter("etiology", Etiology)
    diagnosis = code_filter("diagnosis", Diagnosis)
    consent_status = code_filter("consent_status", ConsentStatus)
    therapy = CodeFilter(field_name="implants__therapy", valid=list(Therapy.values), what="therapy",
                         widget=CodeWidget, help_text=_help(Therapy))
    consent_date = DateRangeFilter(help_text="consent_date_after / consent_date_before")
    updated_since = filters.IsoDateTimeFilter(field_name="updated_at", lookup_expr="gte",
                                              help_text=UPDATED_HELP)

    class Meta:
        model = Patient
        fields = []

    def filter_queryset(self, queryset):
        # A patient with two implants of the same therapy must appear once.
        qs = super().filter_queryset(queryset)
        return qs.distinct() if self.form.cleaned_data.get("therapy") else qs


class ImplantFilter(filters.FilterSet):
    site = SiteCodeFilter("patient__site__code")
    therapy = code_filter("therapy", Therapy)
    etiology = code_filter("patient__etiology", Etiology, what="etiology")
    diagnosis = code_filter("patient__diagnosis", Diagnosis, what="diagnosis")
    implant_date = DateRangeFilter(help_text="implant_date_after / implant_date_before")
    explanted = filters.BooleanFilter(field_name="explant_date", lookup_expr="isnull", exclude=True)
    updated_since = filters.IsoDateTimeFilter(field_name="updated_at", lookup_expr="gte",
                                              help_text=UPDATED_HELP)

    class Meta:
        model = Implant
        fields = []


class VisitFilter(filters.FilterSet):
    site = SiteCodeFilter("patient__site__code")
    therapy = TherapyFilter(field_name="implant__therapy", valid=list(Therapy.values), what="therapy",
                            widget=CodeWidget, help_text=_help(Therapy))
    etiology = code_filter("patient__etiology", Etiology, what="etiology")
    diagnosis = code_filter("patient__diagnosis", Diagnosis, what="diagnosis")
    timepoint = code_filter("timepoint", pattern=TIMEPOINT_RE, what="timepoint",
                            help_text="baseline, trial_end, unscheduled or m<N>; comma-separated")
    status = code_filter("status", VisitStatus)
    date_done = DateRangeFilter(help_text="date_done_after / date_done_before")
    target_date = DateRangeFilter(help_text="target_date_after / target_date_before")
    updated_since = filters.IsoDateTimeFilter(field_name="updated_at", lookup_expr="gte",
                                              help_text=UPDATED_HELP)

    class Meta:
        model = Visit
        fields = []


class PromAnswerFilter(filters.FilterSet):
    site = SiteCodeFilter("visit__patient__site__code")
    diagnosis = code_filter("visit__patient__diagnosis", Diagnosis, what="diagnosis")
    timepoint = code_filter("visit__timepoint", pattern=TIMEPOINT_RE, what="timepoint",
                            help_text="baseline, trial_end, unscheduled or m<N>; comma-separated")
    instrument = code_filter("instrument", PromInstrument, what="instrument")
    updated_since = filters.IsoDateTimeFilter(field_name="updated_at", lookup_expr="gte",
                                              help_text=UPDATED_HELP)

    class Meta:
        model = PromAnswer
        fields = []


class AdverseEventFilter(filters.FilterSet):
    site = SiteCodeFilter("patient__site__code")
    therapy = TherapyFilter(field_name="implant__therapy", valid=list(Therapy.values), what="therapy",
                            widget=CodeWidget, help_text=_help(Therapy))
    etiology = code_filter("patient__etiology", Etiology, what="etiology")
    diagnosis = code_filter("patient__diagnosis", Diagnosis, what="diagnosis")
    category = code_filter("category", AeCategory)
    severity = code_filter("severity", Severity)
    serious = filters.BooleanFilter()
    iso_class = CodeFilter(field_name="iso_class_code", valid=list(Iso14155Class.values),
                           what="iso_class", widget=CodeWidget, help_text=_help(Iso14155Class))
    onset_date = DateRangeFilter(help_text="onset_date_after / onset_date_before")
    updated_since = filters.IsoDateTimeFilter(field_name="updated_at", lookup_expr="gte",
                                              help_text=UPDATED_HELP)

    class Meta:
        model = AdverseEvent
        fields = []

    def filter_queryset(self, queryset):
        from registry.services.exports import iso_class_expression

        if self.form.cleaned_data.get("iso_class"):
            queryset = queryset.alias(iso_class_code=iso_class_expression())
        return super().filter_queryset(queryset)


# The adverse-event filters that read the event's own fields: a deficiency without an
# event has none, so the safety tabulation lists no deficiency rows under them.
EVENT_ONLY_FILTERS = ("category", "severity", "serious", "iso_class")
# The same filter on a deficiency's own field.
DEFICIENCY_FIELDS = {"onset_date": "observed_on"}


def deficiency_rows(filterset, deficiencies):
    """`deficiencies` under the filters of a validated AdverseEventFilter that apply to them
    (the site, therapy, etiology and diagnosis paths are the same; onset = observed_on)."""
    for name, one in filterset.filters.items():
        value = filterset.form.cleaned_data.get(name)
        if value in (None, "", [], ()):
            continue
        if name in EVENT_ONLY_FILTERS:
            return deficiencies.none()
        if name in DEFICIENCY_FIELDS:
            one = copy.copy(one)
            one.field_name = DEFICIENCY_FIELDS[name]
        deficiencies = one.filter(deficiencies, value)
    return deficiencies


def filter_errors(filterset) -> dict[str, list[str]]:
    """The filter set's errors keyed by the query parameter actually sent.

    Range filters report under their base name (`date_done`); name the
    `_after`/`_before` parameter and quote the value instead.
    """
    errors: dict[str, list[str]] = {}
    data = filterset.data
    for name, messages in filterset.errors.items():
        flt = filterset.filters.get(name)
        if isinstance(flt, filters.DateFromToRangeFilter):
            for suffix in ("after", "before"):
                param = f"{name}_{suffix}"
                raw = data.get(param)
                if raw in (None, ""):
                    continue
                try:
                    forms.DateField(input_formats=ISO_DATE).clean(raw)
                except ValidationError:
                    errors[param] = [f"'{raw}' is not a date; use YYYY-MM-DD."]
            if any(key.startswith(name) for key in errors):
                continue
        elif isinstance(flt, filters.IsoDateTimeFilter):
            errors[name] = [f"'{data.get(name)}' is not an ISO 8601 date-time "
                            "(e.g. 2024-05-01T00:00:00Z)."]
            continue
        errors[name] = [str(m) for m in messages]
    return errors


def clinical_date_params(filterset) -> list[str]:
    """The `_after`/`_before` parameters of the filter set's date ranges.

    Every date range here is on a clinical calendar date (consent, implant,
    visit, onset); record modification time is `updated_since`, a date-time filter.
    """
    return [f"{name}_{suffix}" for name, flt in filterset.filters.items()
            if isinstance(flt, filters.DateFromToRangeFilter) for suffix in ("after", "before")]


def checked_queryset(filterset, user):
    """The filtered queryset, or a 400 naming every parameter at fault: bad values,
    and clinical-date filters from a user who sees shifted dates."""
    errors = {} if filterset.is_valid() else filter_errors(filterset)
    sent = [key for key in filterset.data if filterset.data.get(key) not in (None, "")]
    errors.update(deid.refused_date_filters(user, sent, clinical_date_params(filterset)))
    if errors:
        raise exceptions.ValidationError(errors)
    return filterset.qs


class RegistryFilterBackend(DjangoFilterBackend):
    """django-filter, with errors that name the parameter sent and its value (400)."""

    def filter_queryset(self, request, queryset, view):
        filterset = self.get_filterset(request, queryset, view)
        if filterset is None:
            return queryset
        return checked_queryset(filterset, request.user)

"""Output serializers: explicit fields only, never identifiers or narrative free text.

PatientIdentifiers, DeviceIdentifier, visit notes and event descriptions are
not reachable from here; nor are the free-text fields of patients and implants
(affected region, amputation cause, trial criterion, lead target, explant reason:
CharFields without a code list, so they hold whatever was typed; services.deid
declares them). Short descriptive CharFields without a code list still pass through
as typed: amputation_level and the implant's manufacturer and model. Codes are the
bundle codes of registry.models.choices. Record times (`updated_at`) are null for
users who do not see real dates (services.deid.record_time).
"""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from registry.models import (
    AdverseEvent,
    Implant,
    IpgLocation,
    Iso14155Class,
    LeadType,
    PainScore,
    Paradigm,
    Patient,
    ProgrammingSession,
    Relatedness,
    SeriousCriterion,
    Side,
    Site,
    StimulationUse,
    Visit,
)
from registry.services import deid
from registry.services.datasets import AGE_TOP
from registry.services.safety import event_reportability
from registry.services.safety.reportability import RULES

DAYS_FROM_IMPLANT = ("Visit date minus the implant date of the visit's implant or, for a visit "
                     "without one (baseline), of the patient's first implant, in days; negative "
                     "before the implant, null without either date. The same in every export.")


# Clinical dates shifted per patient for users who do not see real dates. The view
# puts `shift_dates` in the context (services.deid.sees_real_dates); which fields are
# clinical dates, and how a row reaches its patient, is services.deid's declaration.
# Derived intervals (days_from_implant) are computed from the real dates: the shift does
# not change them. Record times are dropped for them (null), never shifted. (No
# docstring: drf-spectacular would show it as the description of every serializer below.)
class ShiftedDates:
    def shifted_dates(self) -> tuple[str, ...]:
        return tuple(name for name in deid.clinical_dates(self.Meta.model) if name in self.Meta.fields)

    def record_times(self) -> tuple[str, ...]:
        return tuple(name for name in deid.RECORD_TIMES if name in self.Meta.fields)

    def get_extra_kwargs(self):
        extra = super().get_extra_kwargs()
        for name in self.shifted_dates():
            extra.setdefault(name, {})["help_text"] = deid.SHIFTED_NOTE
        for name in self.record_times():
            extra.setdefault(name, {}).update(allow_null=True, help_text=deid.RECORD_TIME_NOTE)
        return extra

    def to_representation(self, instance):
        data = super().to_representation(instance)
        if self.context.get("shift_dates"):
            days = deid.date_shift_days(deid.registry_id_of(instance))
            for name in self.shifted_dates():
                value = deid.shown(instance, name, days)
                data[name] = value.isoformat() if value else None
            for name in self.record_times():
                data[name] = deid.record_time(instance, name, real=False)
        return data


@extend_schema_field({"type": "string",
                      "description": "MDCG 2020-10/1 code: " + ", ".join(Relatedness.values)})
class RelatednessField(serializers.ChoiceField):
    """Device and procedure relatedness share one code list. Documented as a string with
    the codes listed: two enum components with the same values make drf-spectacular warn
    (W001), which fails `check --deploy`. ENUM_NAME_OVERRIDES in settings would allow an enum."""

    def __init__(self, **kwargs):
        super().__init__(choices=Relatedness.choices, read_only=True, **kwargs)


class OptionalCode(serializers.ChoiceField):
    """A coded value that may be missing: null, never "" (an empty string is not a code)."""

    def __init__(self, choices, **kwargs):
        super().__init__(choices=choices.choices, allow_null=True, read_only=True, **kwargs)

    def to_representation(self, value):
        return None if value in ("", None) else super().to_representation(value)


class SiteSerializer(serializers.ModelSerializer):
    class Meta:
        model = Site
        fields = ["code", "name", "country", "timezone", "updated_at"]
        read_only_fields = fields


class PatientSerializer(ShiftedDates, serializers.ModelSerializer):
    site = serializers.SlugRelatedField(slug_field="code", read_only=True)
    age_at_consent = serializers.SerializerMethodField(
        help_text=f"Age in years at consent; {AGE_TOP} means {AGE_TOP} or older."
    )
    prior_treatments = serializers.ListField(child=serializers.CharField(), read_only=True)
    implants = serializers.SlugRelatedField(slug_field="ref", many=True, read_only=True)
    side = OptionalCode(Side)

    class Meta:
        model = Patient
        fields = [
            "registry_id", "site", "sex", "age_at_consent", "consent_date", "consent_status",
            "withdrawal_date", "enrolment", "etiology", "diagnosis", "side",
            "pain_duration_months", "amputation_level", "prior_treatments", "implants", "updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_age_at_consent(self, patient) -> int | None:
        if not (patient.birth_year and patient.consent_date):
            return None
        return min(patient.consent_date.year - patient.birth_year, AGE_TOP)


class ProgrammingSessionSerializer(ShiftedDates, serializers.ModelSerializer):
    """A programming session; no electrode configuration or note (free text)."""

    class Meta:
        model = ProgrammingSession
        fields = ["date", "paradigm", "frequency_hz", "pulse_width_us", "amplitude_min_ma",
                  "amplitude_max_ma", "closed_loop_target_uv", "recharge_interval_days"]
        read_only_fields = fields


class ImplantSerializer(ShiftedDates, serializers.ModelSerializer):
    registry_id = serializers.CharField(source="patient.registry_id", read_only=True)
    site = serializers.CharField(source="patient.site.code", read_only=True)
    lead_type = OptionalCode(LeadType)
    ipg_location = OptionalCode(IpgLocation)
    paradigm = OptionalCode(Paradigm)
    programming_sessions = ProgrammingSessionSerializer(
        many=True, read_only=True,
        help_text="Programming sessions by date; the last is the current settings.")

    class Meta:
        model = Implant
        fields = [
            "ref", "registry_id", "site", "therapy", "trial_start", "trial_end", "trial_success",
            "implant_date", "manufacturer", "model", "lead_type", "lead_count",
            "ipg_rechargeable", "ipg_location", "paradigm", "explant_date", "programming_sessions",
            "updated_at",
        ]
        read_only_fields = fields


class PainScoreSerializer(serializers.ModelSerializer):
    class Meta:
        model = PainScore
        fields = ["pain_site", "recall", "score"]
        read_only_fields = fields


class VisitSerializer(ShiftedDates, serializers.ModelSerializer):
    registry_id = serializers.CharField(source="patient.registry_id", read_only=True)
    site = serializers.CharField(source="patient.site.code", read_only=True)
    implant_ref = serializers.CharField(source="implant.ref", read_only=True, allow_null=True,
                                        default=None)
    days_from_implant = serializers.IntegerField(read_only=True, allow_null=True, default=None,
                                                 help_text=DAYS_FROM_IMPLANT)
    opioid_mme = serializers.DecimalField(max_digits=6, decimal_places=1, coerce_to_string=False,
                                          read_only=True, allow_null=True)
    pain_scores = PainScoreSerializer(many=True, read_only=True)
    stimulation_use = OptionalCode(StimulationUse)

    class Meta:
        model = Visit
        fields = [
            "id", "registry_id", "site", "implant_ref", "timepoint", "status", "target_date",
            "window_start", "window_end", "date_done", "days_from_implant", "nrs", "satisfaction",
            "pgic", "would_choose_again", "opioid_mme", "stimulation_use", "pain_scores",
            "updated_at",
        ]
        read_only_fields = fields


class AdverseEventSerializer(ShiftedDates, serializers.ModelSerializer):
    registry_id = serializers.CharField(source="patient.registry_id", read_only=True)
    site = serializers.CharField(source="patient.site.code", read_only=True)
    implant_ref = serializers.CharField(source="implant.ref", read_only=True, allow_null=True,
                                        default=None)
    iso_class = serializers.ChoiceField(choices=Iso14155Class.choices, read_only=True,
                                        help_text="Derived (ISO 14155): AE, SAE, ADE, SADE, USADE.")
    serious_criterion = OptionalCode(SeriousCriterion)
    device_relatedness = RelatednessField()
    procedure_relatedness = RelatednessField()
    # Derived like the safety tabulation (services.safety.reportability), never stored.
    reporting_rule = serializers.SerializerMethodField(
        help_text="Derived (MDR Art. 87/88): " + ", ".join(RULES))
    deadline_days = serializers.SerializerMethodField(
        help_text="Days from awareness to the reporting deadline; null when the rule sets none.")
    reporting_deadline = serializers.SerializerMethodField(
        help_text="Awareness (or onset) + deadline_days. " + deid.SHIFTED_NOTE)

    class Meta:
        model = AdverseEvent
        fields = [
            "id", "registry_id", "site", "implant_ref", "onset_date", "awareness_date", "category",
            "serious", "serious_criterion", "severity", "device_relatedness", "procedure_relatedness",
            "anticipated", "iso_class", "imdrf_device_problem", "imdrf_clinical_signs",
            "imdrf_health_impact", "reporting_rule", "deadline_days", "reporting_deadline",
            "reported_on", "action", "outcome", "resolved_on", "updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field({"type": "string"})
    def get_reporting_rule(self, obj) -> str:
        return event_reportability(obj).rule

    @extend_schema_field({"type": "integer", "nullable": True})
    def get_deadline_days(self, obj):
        return event_reportability(obj).days

    @extend_schema_field({"type": "string", "format": "date", "nullable": True})
    def get_reporting_deadline(self, obj):
        deadline = event_reportability(obj).deadline
        if deadline is not None and self.context.get("shift_dates"):
            # Shifted like the awareness date it is counted from (the days are the same).
            deadline = deid.shifted(deadline, deid.date_shift_days(deid.registry_id_of(obj)))
        return deadline.isoformat() if deadline else None

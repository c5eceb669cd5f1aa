import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator, validate_email
from django.db import models

from .base import ClinicalModel, history
from .choices import Role

site_code_validator = RegexValidator(
    r"^[A-Z][A-Z0-9]{1,7}$",
    "Site code must be 2 to 8 upper-case letters or digits, starting with a letter (e.g. NIJ).",
)


def validate_timezone(value):
    if value not in zoneinfo.available_timezones():
        raise ValidationError(
            "Unknown time zone '%(value)s'; use an IANA name such as Europe/Amsterdam.",
            params={"value": value},
        )


def parse_emails(value: str) -> list[str]:
    return [part.strip() for part in (value or "").replace(",", ";").split(";") if part.strip()]


def validate_email_list(value):
    for address in parse_emails(value):
        try:
            validate_email(address)
        except ValidationError:
            raise ValidationError(
                "'%(value)s' is not a valid e-mail address.", params={"value": address}
            ) from None


class Site(ClinicalModel):
    code = models.CharField(max_length=8, unique=True, validators=[site_code_validator])
    name = models.CharField(max_length=200)
    country = models.CharField(max_length=2, help_text="ISO 3166-1 alpha-2, e.g. NL.")
    timezone = models.CharField(
        max_length=64, default="Europe/Amsterdam", validators=[validate_timezone]
    )
    reminder_emails = models.TextField(
        blank=True,
        validators=[validate_email_list],
        help_text="Addresses for the daily follow-up digest, separated by ';'.",
    )
    safety_emails = models.TextField(
        blank=True,
        validators=[validate_email_list],
        help_text="Safety contacts, alerted at once of every SAE, SADE and USADE (separated by "
                  "';'); empty = the reminder addresses.",
    )
    protocol = models.ForeignKey(
        "registry.FollowUpProtocol",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        help_text="Follow-up protocol for new implants; empty = the registry default.",
    )
    # Last used patient number; registry ids are CODE-0001, CODE-0002, ...
    patient_sequence = models.PositiveIntegerField(default=0, editable=False)
    history = history(excluded_fields=["patient_sequence"])

    class Meta:
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(code__regex=r"^[A-Z][A-Z0-9]{1,7}$"), name="site_code_upper"
            ),
        ]

    def __str__(self):
        return f"{self.code} - {self.name}"

    @property
    def reminder_email_list(self) -> list[str]:
        return parse_emails(self.reminder_emails)

    @property
    def safety_email_list(self) -> list[str]:
        return parse_emails(self.safety_emails)

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    def clean(self):
        if self.code:
            self.code = self.code.strip().upper()
        if self.country:
            self.country = self.country.strip().upper()
            if len(self.country) != 2 or not self.country.isalpha():
                raise ValidationError(
                    {"country": f"Country must be a 2-letter ISO code, not '{self.country}'."}
                )


class RegistryRole(models.Model):
    """A user's role in the registry and the sites it applies to.

    One row per user. Data managers, and investigators with `all_sites`, see
    every site; everyone else sees the sites listed here. The access rule itself
    lives in registry.services.access.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="registry_role"
    )
    role = models.CharField(max_length=20, choices=Role.choices)
    sites = models.ManyToManyField(Site, blank=True, related_name="members")
    all_sites = models.BooleanField(
        default=False, help_text="Registry-wide access (data managers always have it)."
    )
    history = history(m2m_fields=[sites])

    class Meta:
        verbose_name = "registry role"

    def __str__(self):
        return f"{self.user} ({self.get_role_display()})"

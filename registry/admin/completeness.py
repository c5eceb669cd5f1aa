"""The completeness report in the admin: a table per site, timepoint and instrument and a
plot per instrument (thin over services.completeness). Nurses and data managers see their
sites with the open queries; investigators the counts only, small rows suppressed. Its
URL (`/admin/registry/completeness/`) and its "Completeness report" entry in the Registry
app list are the admin site's (registry.admin_site)."""

from django import forms
from django.core.exceptions import PermissionDenied, ValidationError
from django.template.response import TemplateResponse
from django.utils.safestring import mark_safe

from registry.services import access, completeness, plots


class CompletenessForm(forms.Form):
    site = forms.ChoiceField(choices=(), required=False)
    timepoint = forms.CharField(required=False, max_length=16,
                                help_text="baseline, trial_end or m<months>; empty: every timepoint.")

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        self.fields["site"].choices = [("", "Every site")] + [
            (s.code, f"{s.code} - {s.name}") for s in access.sites_for(user).order_by("code")]
        self.params = {}

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        try:
            self.params = completeness.completeness_params_clean(
                self.user, site=cleaned.get("site"), timepoint=cleaned.get("timepoint"))
        except ValidationError as error:
            for field, messages in error.message_dict.items():
                self.add_error(field, messages)
        return cleaned


def completeness_view(request, site):
    if access.role_name(request.user) is None:
        raise PermissionDenied("Your account has no registry role.")
    form = CompletenessForm(request.GET or None, user=request.user)
    context = {**site.each_context(request), "title": "Completeness report", "form": form,
               "report": None, "reasons": [(c, completeness.REASON_LABELS[c]) for c in
                                           completeness.REASONS]}
    if not form.is_bound or form.is_valid():
        report = completeness.completeness_report(request.user, **form.params)
        totals = completeness.completeness_totals(report)
        context.update(
            report=report, api_query=request.GET.urlencode(),
            plot=mark_safe(plots.completeness_svg(totals, context["reasons"])))  # noqa: S308 - matplotlib output
    return TemplateResponse(request, "admin/registry/completeness/report.html", context)

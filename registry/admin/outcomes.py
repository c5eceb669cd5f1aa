"""The outcomes dashboard in the admin: pick a cohort, see the summary, the plots
and a results paragraph to copy into a manuscript.

Investigators, data managers and nurses (read-only, their own sites: the
access rule scopes the cohort) may open it; users without a registry role may
not. Its URL (`/admin/registry/outcomes/`) and its "Outcomes dashboard" entry
in the Registry app list are the admin site's (registry.admin_site).
"""

from django import forms
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.utils.safestring import mark_safe

from registry.models import Diagnosis, Etiology, PainSite, Recall, Therapy
from registry.services import access, deid, epro, outcomes, plots
from registry.services.proms.instruments import VALUE_SETS
from registry.services.proms.outcomes import prom_outcomes


class OutcomeCohortForm(forms.Form):
    therapy = forms.MultipleChoiceField(choices=Therapy.choices, required=False,
                                        widget=forms.CheckboxSelectMultiple)
    etiology = forms.MultipleChoiceField(choices=Etiology.choices, required=False,
                                         widget=forms.CheckboxSelectMultiple)
    diagnosis = forms.MultipleChoiceField(choices=Diagnosis.choices, required=False,
                                          widget=forms.CheckboxSelectMultiple)
    site = forms.MultipleChoiceField(choices=(), required=False, widget=forms.CheckboxSelectMultiple)
    implant_year_from = forms.IntegerField(required=False, min_value=1900, max_value=2100,
                                           label="Implanted from (year)")
    implant_year_to = forms.IntegerField(required=False, min_value=1900, max_value=2100,
                                         label="Implanted up to (year)")
    pain_site = forms.ChoiceField(choices=[("", "Primary NRS (the treated pain)")] + PainSite.choices,
                                  required=False, label="Pain scored")
    recall = forms.ChoiceField(choices=Recall.choices, initial=Recall.AVG_7D, required=False,
                               help_text="Recall period of the pain-site scores.")
    timepoint = forms.CharField(initial=outcomes.LAST, required=False, max_length=8,
                                help_text="'last' = each patient's latest follow-up with a score, "
                                          "or a fixed follow-up such as m12.")
    threshold = forms.FloatField(initial=50, required=False, min_value=0.1, max_value=100,
                                 label="Responder threshold (%)")
    value_set = forms.ChoiceField(
        choices=[("", "The sites' country")] + [(c, f"{c} ({v.country})") for c, v in VALUE_SETS.items()],
        required=False, label="EQ-5D-5L value set",
        help_text="Default: the value set of the cohort's sites' country (England when they differ).")

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        self.fields["site"].choices = [(s.code, f"{s.code} - {s.name}")
                                       for s in access.sites_for(user).order_by("code")]
        self.query = None

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        params = {key: cleaned.get(key) for key in outcomes.PARAMS if cleaned.get(key) not in (None, "", [])}
        # Investigators: no filter on the real implant year (services.deid).
        for param, message in deid.refused_outcome_filters(self.user, params).items():
            self.add_error(param, message)
        if self.errors:
            return cleaned
        try:
            self.query = outcomes.outcome_query_clean(**params)
        except outcomes.OutcomeQueryError as error:
            self.add_error(error.param if error.param in self.fields else None, str(error))
        return cleaned


def outcomes_view(request, site):
    """GET only: the form is in the query string, so a cohort view can be bookmarked.
    `site` is the admin site serving the page (its header, its app list)."""
    if access.role_name(request.user) is None:
        raise PermissionDenied("Your account has no registry role.")
    form = OutcomeCohortForm(request.GET or None, user=request.user)
    context = {
        **site.each_context(request),
        "title": "Outcomes dashboard",
        "form": form,
        "report": None,
        # Per site and timepoint, whatever the cohort form says (services.epro.figures).
        "response_rates": epro.response_rates(request.user),
        "min_cell": deid.min_cell(request.user),
    }
    query = None
    if form.is_bound:
        if form.is_valid():
            query = form.query
    else:
        query = outcomes.outcome_query_clean()
    if query is not None:
        # One read of the cohort for every analysis of the page (services.outcomes).
        cohort = outcomes.outcome_cohort(user=request.user, query=query)
        report = outcomes.outcome_report(prepared=cohort)
        summary = report["summary"]
        value_set = form.cleaned_data.get("value_set") if form.is_bound else None
        proms = prom_outcomes(prepared=cohort, value_set=value_set or None)
        # The PROM table, plot and sentences only where the cohort has PROM pairs.
        if not any(s.get("n_paired") or s.get("suppressed") for s in proms["overall"]["scores"]):
            proms = None
        else:
            context.update(proms=proms, prom_table=outcomes.prom_table(proms),
                           prom_paragraph=outcomes.prom_paragraph(proms))
        if summary["suppressed"]:
            # A cohort too small to show (services.deid.min_cell): the text says so, no plots.
            context.update(report=report, summary=summary, table=outcomes.outcome_table(summary),
                           plots=[], api_query=request.GET.urlencode())
            return TemplateResponse(request, "admin/registry/outcomes/dashboard.html", context)
        context.update(
            report=report,
            summary=summary,
            table=outcomes.outcome_table(summary),
            # matplotlib's output, no user text in it
            plots=[mark_safe(svg) for svg in plots.report_svgs(report, proms)],  # noqa: S308
            api_query=request.GET.urlencode(),
        )
        # Explant per cause, IPG longevity and attrition (services.outcomes survival,
        # attrition): same cohort, their censoring said under the plots.
        incidence = outcomes.explant_incidence(prepared=cohort)
        longevity = outcomes.ipg_longevity(prepared=cohort)
        waterfall = outcomes.attrition(prepared=cohort)
        context.update(
            incidence=incidence, longevity=longevity, attrition=waterfall,
            survival_plots=[mark_safe(svg)  # noqa: S308
                            for svg in plots.survival_svgs(incidence, longevity, waterfall)],
        )
    return TemplateResponse(request, "admin/registry/outcomes/dashboard.html", context)

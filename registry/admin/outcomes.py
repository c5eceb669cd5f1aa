"""The outcomes dashboard in the admin: pick a cohort, see the summary, the plots
and a results paragraph to copy into a manuscript.

Investigators, data managers and nurses (read-only, their own sites: the
access rule scopes the cohort) may open it; users without a registry role may
not. It is an extra URL on the default admin site (`/admin/registry/outcomes/`)
and an "Outcomes dashboard" entry in the Registry app list, added here without
replacing the admin site or its templates.
"""

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.safestring import mark_safe

from registry.models import Diagnosis, Etiology, PainSite, Recall, Therapy
from registry.services import access, outcomes, plots

URL_NAME = "registry_outcomes"


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

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["site"].choices = [(s.code, f"{s.code} - {s.name}")
                                       for s in access.sites_for(user).order_by("code")]
        self.query = None

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        params = {key: cleaned.get(key) for key in outcomes.PARAMS if cleaned.get(key) not in (None, "", [])}
        try:
            self.query = outcomes.outcome_query_clean(**params)
        except outcomes.OutcomeQueryError as error:
            self.add_error(error.param if error.param in self.fields else None, str(error))
        return cleaned


def outcomes_view(request):
    """GET only: the form is in the query string, so a cohort view can be bookmarked."""
    if access.role_name(request.user) is None:
        raise PermissionDenied("Your account has no registry role.")
    form = OutcomeCohortForm(request.GET or None, user=request.user)
    context = {
        **admin.site.each_context(request),
        "title": "Outcomes dashboard",
        "form": form,
        "report": None,
    }
    query = None
    if form.is_bound:
        if form.is_valid():
            query = form.query
    else:
        query = outcomes.outcome_query_clean()
    if query is not None:
        report = outcomes.outcome_report(user=request.user, query=query)
        summary = report["summary"]
        context.update(
            report=report,
            summary=summary,
            table=outcomes.outcome_table(summary),
            plots=[
                mark_safe(plots.nrs_pairs_svg(  # noqa: S308 - matplotlib output, no user text
                    report["pairs"], total=summary["n_paired"],
                    means=(summary["nrs_baseline_mean"], summary["nrs_followup_mean"])
                    if summary["n_paired"] else None)),
                mark_safe(plots.responder_rate_svg(report["by_therapy"])),  # noqa: S308
                mark_safe(plots.km_svg(report["km"]["years"], report["km"]["survival"],  # noqa: S308
                                       explants=summary["explants"], n=summary["n_patients"])),
                mark_safe(plots.ae_category_svg(summary["ae_by_category"],  # noqa: S308
                                                n_patients=summary["n_patients"])),
            ],
            api_query=request.GET.urlencode(),
        )
    return TemplateResponse(request, "admin/registry/outcomes/dashboard.html", context)


def _with_outcomes_urls(get_urls):
    def urls():
        return [path("registry/outcomes/", admin.site.admin_view(outcomes_view), name=URL_NAME)] + get_urls()

    urls._registry_outcomes = True
    return urls


def _with_outcomes_entry(get_app_list):
    def app_list(request, app_label=None):
        apps = get_app_list(request, app_label)
        if access.role_name(request.user) is None:
            return apps
        for app in apps:
            if app["app_label"] == "registry":
                app["models"].insert(0, {
                    "name": "Outcomes dashboard",
                    "object_name": "OutcomesDashboard",
                    "admin_url": reverse(f"admin:{URL_NAME}"),
                    "add_url": None,
                    "view_only": True,
                    "perms": {"view": True},
                })
        return apps

    app_list._registry_outcomes = True
    return app_list


# Extend the default admin site in place (idempotent if this module is reloaded).
if not getattr(admin.site.get_urls, "_registry_outcomes", False):
    admin.site.get_urls = _with_outcomes_urls(admin.site.get_urls)
if not getattr(admin.site.get_app_list, "_registry_outcomes", False):
    admin.site.get_app_list = _with_outcomes_entry(admin.site.get_app_list)

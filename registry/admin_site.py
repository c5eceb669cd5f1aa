"""The registry's admin site: Django's, plus the outcomes dashboard.

`RegistryAdminSite` is the default admin site (`registry.apps.RegistryAdminConfig`
sets `default_site`, as Django's "Overriding the default admin site" shows), so
`admin.site` and `@admin.register` are this site and nothing patches it. It adds
`/admin/registry/outcomes/` (URL name `admin:registry_outcomes`) and an
"Outcomes dashboard" entry at the top of the Registry app list for users with a
registry role; the dashboard itself is registry.admin.outcomes. Likewise the
completeness report (`/admin/registry/completeness/`, registry.admin.completeness).

The class lives outside the registry.admin package on purpose: Django creates
the default site on first use by importing this class, and importing
registry.admin registers every ModelAdmin on the default site. Inside that
package the site would be created twice, and the first one, holding the
registrations, thrown away.
"""

from urllib.parse import urlencode

from django.conf import settings
from django.contrib import admin
from django.urls import path, reverse
from django.utils.functional import classproperty

from registry.services import access, deid, worklist

OUTCOMES_URL_NAME = "registry_outcomes"
STATUS_GRID_URL_NAME = "registry_status_grid"
COMPLETENESS_URL_NAME = "registry_completeness"


class RegistryAdminSite(admin.AdminSite):
    # Branding with the registry's name, not "Django administration".
    site_header = classproperty(lambda cls: settings.REGISTRY_TITLE)
    site_title = classproperty(lambda cls: settings.REGISTRY_TITLE)
    index_template = "admin/registry/home.html"

    def index(self, request, extra_context=None):
        """The site home page: nurses and data managers land on what is to do today
        at their sites (services/worklist.py); the list of models follows."""
        extra_context = {**(extra_context or {}), **self.worklist_context(request)}
        return super().index(request, extra_context)

    def worklist_context(self, request) -> dict:
        if not deid.sees_real_dates(request.user):
            return {}
        sites = list(access.sites_for(request.user).order_by("code").values_list(
            "pk", "code", "name", "timezone"))
        if not sites:
            return {}
        found = worklist.counts([(pk, tz) for pk, _code, _name, tz in sites])
        rows = []
        for cat in worklist.CATEGORIES:
            base = reverse(cat.changelist, current_app=self.name)
            cells = [{"site": code, "count": found[pk][cat.key],
                      "url": f"{base}?{urlencode({**cat.list_params, 'site': pk})}"}
                     for pk, code, _name, _tz in sites]
            rows.append({"key": cat.key, "label": cat.label, "help": cat.help,
                         "action": cat.action, "cells": cells,
                         "total": sum(c["count"] for c in cells),
                         "url": f"{base}?{urlencode(cat.list_params)}"})
        grids = [(code, name, reverse(f"{self.name}:{STATUS_GRID_URL_NAME}", args=[pk],
                                      current_app=self.name)) for pk, code, name, _tz in sites]
        return {"worklist": rows, "worklist_sites": [(code, name) for _pk, code, name, _tz in sites],
                "worklist_grids": grids,
                "title": "Today at your sites"}

    def get_urls(self):
        return [
            path("registry/outcomes/", self.admin_view(self.outcomes_view), name=OUTCOMES_URL_NAME),
            path("registry/status-grid/<int:site_id>/", self.admin_view(self.status_grid_view),
                 name=STATUS_GRID_URL_NAME),
            path("registry/completeness/", self.admin_view(self.completeness_view),
                 name=COMPLETENESS_URL_NAME),
        ] + super().get_urls()

    def completeness_view(self, request):
        from registry.admin.completeness import completeness_view

        return completeness_view(request, site=self)

    def outcomes_view(self, request):
        # Imported on use: registry.admin cannot be imported before this class exists.
        from registry.admin.outcomes import outcomes_view

        return outcomes_view(request, site=self)

    def status_grid_view(self, request, site_id: int):
        from registry.admin.status_grid import status_grid_view

        return status_grid_view(request, site=self, site_id=site_id)

    def get_app_list(self, request, app_label=None):
        apps = super().get_app_list(request, app_label)
        if access.role_name(request.user) is None:
            return apps
        for app in apps:
            if app["app_label"] == "registry":
                app["models"].insert(0, {
                    "name": "Outcomes dashboard",
                    "object_name": "OutcomesDashboard",
                    "admin_url": reverse(f"{self.name}:{OUTCOMES_URL_NAME}", current_app=self.name),
                    "add_url": None,
                    "view_only": True,
                    "perms": {"view": True},
                })
                app["models"].insert(1, {
                    "name": "Completeness report",
                    "object_name": "CompletenessReport",
                    "admin_url": reverse(f"{self.name}:{COMPLETENESS_URL_NAME}", current_app=self.name),
                    "add_url": None,
                    "view_only": True,
                    "perms": {"view": True},
                })
        return apps

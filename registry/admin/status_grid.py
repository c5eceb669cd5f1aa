"""The record status grid page (services/status_grid.py): patients x timepoints of a site."""

from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.template.response import TemplateResponse
from django.urls import reverse

from registry.models import Site
from registry.services import access, status_grid


def status_grid_view(request, site, site_id: int):
    """GET ?page=N&per_page=M. Another site's grid is a 404, as every record of it."""
    found = access.sites_for(request.user).filter(pk=site_id).first()
    if found is None:
        if not Site.objects.filter(pk=site_id).exists() or access.role_name(request.user):
            raise Http404("No such site.")
        raise PermissionDenied("Your account has no registry role.")
    per_page = request.GET.get("per_page", status_grid.PER_PAGE)
    if not str(per_page).isdigit():
        per_page = status_grid.PER_PAGE
    grid = status_grid.record_status_grid(site=found, user=request.user,
                                          page=request.GET.get("page", 1), per_page=per_page)
    visit_url = reverse("admin:registry_visit_change", args=[0], current_app=site.name)
    patient_url = reverse("admin:registry_patient_change", args=[0], current_app=site.name)
    others = list(access.sites_for(request.user).order_by("code").values_list("pk", "code"))
    context = {
        **site.each_context(request),
        "title": f"Record status grid: {found.code} - {found.name}",
        "grid": grid,
        "legend": [(key, label, grid.totals[key], status_grid.SYMBOLS[key])
                   for key, label in status_grid.LEGEND],
        "visit_url": visit_url.replace("/0/", "/{}/"),
        "patient_url": patient_url.replace("/0/", "/{}/"),
        "other_sites": others if len(others) > 1 else [],
        "per_page": grid.page.paginator.per_page,
    }
    rows = []
    for row in grid.rows:
        rows.append({"row": row, "patient": context["patient_url"].format(row.patient_id),
                     "cells": [(cell, context["visit_url"].format(cell.visit_id)
                                if cell.visit_id else "") for cell in row.cells]})
    context["table"] = rows
    return TemplateResponse(request, "admin/registry/status_grid/grid.html", context)

"""Bundle import in the admin, for data managers: upload a .zip, see the dry run
(counts and every error), confirm, import.

Nothing is written before the confirmation: the upload is validated with a dry
run (an ImportRun is recorded), kept next to it (services.imports.
staged_bundle_path), and imported from there on confirm by the same service
the command uses. The ImportRun list gets an "Import a bundle" button.
"""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from registry.models import ImportRun
from registry.services import access
from registry.services.imports import (
    ImportRefused,
    bundle_import,
    staged_bundle_path,
    staged_bundle_ready,
    staged_bundles_prune,
)

from .operations import DataManagerOnly


class BundleUploadForm(forms.Form):
    bundle = forms.FileField(label="Bundle (.zip)",
                             help_text="A .zip of the CSV files described in docs/import-format.md.")
    reason = forms.CharField(max_length=255, widget=forms.TextInput(attrs={"size": 60}),
                             help_text="Goes into the audit trail of every imported record, "
                                       "e.g. 'Chart review 2005-2021, Radboudumc'.")

    def clean_bundle(self):
        upload = self.cleaned_data["bundle"]
        if not upload.name.lower().endswith(".zip"):
            raise forms.ValidationError(f"'{upload.name}' is not a .zip file; zip the folder "
                                        "holding the CSV files.")
        return upload


@admin.register(ImportRun)
class ImportRunAdmin(DataManagerOnly, admin.ModelAdmin):
    """The import log (read-only, data managers), with the upload and confirm pages."""

    change_list_template = "admin/registry/importrun/change_list.html"
    list_display = ["created_at", "user", "source", "dry_run", "succeeded", "error_count"]
    list_filter = ["dry_run", "succeeded"]
    list_select_related = ["user"]

    @admin.display(description="errors")
    def error_count(self, run):
        return run.counts.get("errors", len(run.errors)) if isinstance(run.counts, dict) else ""

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("upload/", view(self.upload_view), name="registry_importrun_upload"),
            path("<int:run_id>/confirm/", view(require_POST(self.confirm_view)),
                 name="registry_importrun_confirm"),
        ] + super().get_urls()

    def _check(self, request):
        if not access.is_data_manager(request.user):
            raise PermissionDenied("Only data managers import bundles.")

    def _render(self, request, *, form=None, report=None, run=None, status=200):
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Import a bundle" if report is None else "Import a bundle: dry run",
            "form": form,
            "report": report,
            "run": run,
            "counts": _count_rows(report) if report else [],
        }
        return TemplateResponse(request, "admin/registry/importrun/upload.html", context,
                                status=status)

    def upload_view(self, request):
        self._check(request)
        if request.method != "POST":
            return self._render(request, form=BundleUploadForm())
        form = BundleUploadForm(request.POST, request.FILES)
        if not form.is_valid():
            return self._render(request, form=form, status=400)
        upload = form.cleaned_data["bundle"]
        try:
            report = bundle_import(source=upload, actor=request.user,
                                   reason=form.cleaned_data["reason"], dry_run=True)
        except ImportRefused as exc:
            form.add_error("bundle", str(exc))
            return self._render(request, form=form, status=400)
        if report.ok:
            # Kept for the confirmation, keyed by this dry run (for STAGED_HOURS).
            staged_bundles_prune()
            upload.seek(0)
            with open(staged_bundle_path(report.run), "wb") as target:
                for chunk in upload.chunks():
                    target.write(chunk)
        return self._render(request, report=report, run=report.run)

    def confirm_view(self, request, run_id):
        self._check(request)
        dry_run = get_object_or_404(ImportRun, pk=run_id, dry_run=True, succeeded=True,
                                    user=request.user)
        staged = staged_bundle_ready(dry_run)
        if staged is None:
            messages.error(request, "This dry run was already imported or has expired; upload "
                                    "the bundle again.")
            return redirect("admin:registry_importrun_upload")
        report = bundle_import(source=staged, actor=request.user, reason=dry_run.reason)
        if not report.ok:  # the registry changed since the dry run
            return self._render(request, report=report, run=report.run, status=409)
        staged.unlink(missing_ok=True)
        messages.success(request, f"Imported {dry_run.source}: {report.summary()}.")
        return redirect(reverse("admin:registry_importrun_change", args=[report.run.pk]))


def _count_rows(report):
    labels = {"sites": "Sites", "patients": "Patients", "implants": "Implants",
              "visits": "Visits", "pain_scores": "Pain scores", "adverse_events": "Adverse events"}
    return [(labels.get(name, name), c.get("new", 0), c.get("updated", 0), c.get("unchanged", 0))
            for name, c in report.counts.items()]

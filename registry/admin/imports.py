"""Bundle import in the admin, for data managers: upload a .zip, see the dry run
(counts and every error), confirm, import in the background with a progress bar,
read the result in words and counts.

Nothing is written before the confirmation: the upload is validated with a dry
run (an ImportRun is recorded), kept next to it (services.imports.
staged_bundle_path), and imported from there on confirm by the same service
the command uses, run by a Celery task (services.imports.jobs; eager under
`make run`, a worker in production) while the page polls its progress. The
upload page links the format and offers an empty template. The ImportRun list
gets an "Import a bundle" button.
"""

import io
import zipfile

from celery import current_app
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from registry.models import ImportRun
from registry.services import access, bundles
from registry.services.imports import (
    BundleError,
    ImportRefused,
    bundle_import,
    jobs,
    staged_bundle_path,
    staged_bundle_ready,
    staged_bundles_prune,
)

from .operations import DataManagerOnly


def enqueue_import(job_id: str) -> None:
    # By name: channels do not import each other (the task lives in registry.tasks).
    current_app.tasks[jobs.TASK].delay(job_id)


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
    list_display = ["created_at", "user", "source", "dry_run", "succeeded", "error_count", "result_link"]
    list_filter = ["dry_run", "succeeded"]
    list_select_related = ["user"]

    @admin.display(description="errors")
    def error_count(self, run):
        return run.counts.get("errors", len(run.errors)) if isinstance(run.counts, dict) else ""

    @admin.display(description="result")
    def result_link(self, run):
        if run.dry_run:
            return ""
        return format_html('<a href="{}">In words and counts</a>',
                           reverse("admin:registry_importrun_result", args=[run.pk]))

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("upload/", view(self.upload_view), name="registry_importrun_upload"),
            path("<int:run_id>/confirm/", view(require_POST(self.confirm_view)),
                 name="registry_importrun_confirm"),
            path("job/<str:job_id>/", view(self.job_view), name="registry_importrun_job"),
            path("job/<str:job_id>/status/", view(self.job_status_view),
                 name="registry_importrun_job_status"),
            path("<int:run_id>/result/", view(self.result_view), name="registry_importrun_result"),
            path("template.zip", view(self.template_view), name="registry_importrun_template"),
            path("format/", view(self.format_view), name="registry_importrun_format"),
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
        job_id = jobs.import_job_create(dry_run=dry_run, actor=request.user)
        # The dry run and its staged file are committed already; the job is in the
        # cache: nothing to wait for (eager under `make run`: it runs right here).
        enqueue_import(job_id)
        return redirect("admin:registry_importrun_job", job_id=job_id)

    def _job(self, request, job_id):
        self._check(request)
        state = jobs.import_job_status(job_id, request.user)
        if state is None:
            raise Http404("No such import (it may have expired).")
        return state

    def job_view(self, request, job_id):
        """The progress page: polls the status every second, shows the result when done."""
        state = self._job(request, job_id)
        context = {**self.admin_site.each_context(request), "opts": self.model._meta,
                   "title": f"Importing {state['source']}", "job": state,
                   "status_url": reverse("admin:registry_importrun_job_status", args=[job_id])}
        if state["state"] == jobs.DONE:
            # Shown at 100 % (the script goes on to the result; without it, the link).
            context["result_url"] = reverse("admin:registry_importrun_result", args=[state["run_id"]])
        return TemplateResponse(request, "admin/registry/importrun/job.html", context)

    def job_status_view(self, request, job_id):
        state = self._job(request, job_id)
        result = (reverse("admin:registry_importrun_result", args=[state["run_id"]])
                  if state["state"] == jobs.DONE else None)
        return JsonResponse({
            "state": state["state"], "stage": state["stage"], "percent": state["percent"],
            "checked": state["rows_checked"], "to_check": state["rows_to_check"],
            "written": state["written"][0], "to_write": state["written"][1],
            "scheduled": state["scheduling"][0], "to_schedule": state["scheduling"][1],
            "errors": state["errors"], "error_count": state["error_count"], "result_url": result})

    def result_view(self, request, run_id):
        """What an import did, in words and counts (the run's counts, no raw JSON)."""
        self._check(request)
        run = get_object_or_404(ImportRun, pk=run_id, dry_run=False)
        counts = run.counts if isinstance(run.counts, dict) else {}
        labels = dict(_LABELS)
        rows = [(labels.get(name, name.replace("_", " ").capitalize()), c.get("new", 0),
                 c.get("updated", 0), c.get("unchanged", 0))
                for name, c in counts.items() if isinstance(c, dict)]
        context = {**self.admin_site.each_context(request), "opts": self.model._meta,
                   "title": f"Import of {run.source}", "run": run, "rows": rows,
                   "scheduled": counts.get("scheduled", 0), "notes": counts.get("notes", []),
                   "error_count": counts.get("errors", len(run.errors)),
                   "errors": [str(BundleError(**e)) for e in run.errors[:jobs.SHOWN_ERRORS]]}
        return TemplateResponse(request, "admin/registry/importrun/result.html", context)

    def template_view(self, request):
        """An empty bundle: each file with its header row (services.bundles.FILES)."""
        self._check(request)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for spec in bundles.FILES:
                archive.writestr(f"bundle/{spec.name}", ",".join(spec.column_names) + "\r\n")
        response = HttpResponse(buffer.getvalue(), content_type="application/zip")
        response["Content-Disposition"] = 'attachment; filename="registry-bundle-template.zip"'
        return response

    def format_view(self, request):
        """The column reference of docs/import-format.md, from the same declaration."""
        self._check(request)
        files = [{"spec": spec, "columns": [
            {"name": c.name, "required": c.required, "kind": bundles.KIND_HELP[c.kind].replace("`", ""),
             "values": ", ".join(c.codes) if c.choices is not None and c.kind in (
                 bundles.CODE, bundles.CODES, bundles.INT) else (
                 f"{c.value_range[0]} to {c.value_range[1]}" if c.value_range else ""),
             "help": (c.help + (" Must not be empty." if c.mandatory else "")).strip().replace("`", "")}
            for c in spec.columns]} for spec in bundles.FILES]
        context = {**self.admin_site.each_context(request), "opts": self.model._meta,
                   "title": "The bundle format", "files": files}
        return TemplateResponse(request, "admin/registry/importrun/format.html", context)


_LABELS = (("sites", "Sites"), ("patients", "Patients"), ("implants", "Implants"),
           ("visits", "Visits"), ("pain_scores", "Pain scores"), ("adverse_events", "Adverse events"),
           ("prom_answers", "Questionnaire answers"))


def _count_rows(report):
    labels = dict(_LABELS)
    return [(labels.get(name, name), c.get("new", 0), c.get("updated", 0), c.get("unchanged", 0))
            for name, c in report.counts.items()]

"""PROM entry on the visit: one page per instrument (a nurse enters the answers on the
patient's behalf), and the visit page's summary of what is due, missing and scored.

The page only translates between the form and services.proms.answers: the answers are
checked against the instrument definition there (the same check as the import, the
API and the patient's own pages), and each row gets the nurse and the reason in its
history. Item labels are our short labels, never the licensed wording.
"""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from registry.models import PromAnswer, Visit
from registry.models.choices import VALUE_MISSING_CHOICES
from registry.services import checks
from registry.services.proms.answers import (
    answers_by_visit,
    prom_answers_record,
    prom_item_missing_record,
    visit_prom_status,
)
from registry.services.proms.instruments import INSTRUMENTS, answer_problem

from . import dates
from .base import RegistryAdmin


def score_text(value) -> str:
    if value is None:
        return "-"
    return f"{value:g}" if isinstance(value, float) else str(value)


class PromEntryForm(forms.Form):
    """The items of one instrument, each an integer; the allowed values are checked by
    the instrument definition (answer_problem), so the message is the same everywhere."""

    def __init__(self, *args, instrument: str, held: dict[str, int], reasons: dict[str, str] | None = None,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.instrument = INSTRUMENTS[instrument]
        reasons = reasons or {}
        for item in self.instrument.items:
            self.fields[item.code] = forms.IntegerField(
                label=f"{item.code}: {item.label}", required=False, initial=held.get(item.code),
                help_text=f"{item.low}-{item.high}; leave empty if not answered.",
                widget=forms.NumberInput(attrs={"min": item.low, "max": item.high, "style": "width:5em"}))
            # Why it is not answered, beside it (issue 18): kept instead of the answer.
            self.fields[f"{item.code}_missing"] = forms.ChoiceField(
                label=f"{item.code} not answered because", required=False,
                choices=[("", "---------"), *VALUE_MISSING_CHOICES], initial=reasons.get(item.code, ""))
        self.fields["change_reason"] = forms.CharField(
            label="Reason for change", required=False, max_length=500,
            help_text="Needed when answers of a completed visit are changed.")

    def clean(self):
        cleaned = super().clean()
        for item in self.instrument.items:
            value = cleaned.get(item.code)
            if value is not None and (problem := answer_problem(self.instrument.code, item.code, value)):
                self.add_error(item.code, problem)
            elif value is not None and cleaned.get(f"{item.code}_missing"):
                self.add_error(f"{item.code}_missing", "Give the answer or the reason it is missing, "
                                                       "not both.")
        return cleaned

    def answers(self) -> dict[str, int | None]:
        """Item -> value (None: no answer); items given a reason instead are left out."""
        return {item.code: self.cleaned_data.get(item.code) for item in self.instrument.items
                if not self.cleaned_data.get(f"{item.code}_missing")}

    def reasons(self) -> dict[str, str]:
        return {item.code: why for item in self.instrument.items
                if (why := self.cleaned_data.get(f"{item.code}_missing"))}


class VisitPromsMixin:
    """Adds the PROM pages to VisitAdmin and the `proms` summary shown on the visit."""

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<path:object_id>/proms/<str:instrument>/", view(self.prom_entry_view),
                 name="registry_visit_proms"),
        ] + super().get_urls()

    def prom_entry_view(self, request, object_id, instrument):
        if instrument not in INSTRUMENTS:
            raise Http404(f"No instrument '{instrument}'.")
        visit = self.get_object(request, object_id)  # 404 for other sites
        if dates.shifts_dates(request) or not self.has_change_permission(request, visit):
            raise PermissionDenied("Only nurses and data managers of the visit's site enter answers.")
        held = answers_by_visit([visit.pk]).get(visit.pk, {}).get(instrument, {})
        reasons = dict(PromAnswer.objects.filter(visit=visit, instrument=instrument, value__isnull=True)
                       .values_list("item", "value_missing"))
        form = PromEntryForm(request.POST or None, instrument=instrument, held=held, reasons=reasons)
        if request.method == "POST" and form.is_valid():
            try:
                with transaction.atomic():
                    prom_answers_record(visit=visit, instrument=instrument, answers=form.answers(),
                                        actor=request.user, reason=form.cleaned_data["change_reason"])
                    for item, why in form.reasons().items():
                        if reasons.get(item) != why:
                            prom_item_missing_record(visit=visit, instrument=instrument, item=item,
                                                     why=why, actor=request.user,
                                                     reason=form.cleaned_data["change_reason"])
            except ValidationError as exc:
                for key, errors in exc.message_dict.items():
                    name = key.split(".", 1)[-1]
                    form.add_error(name if name in form.fields else None, errors)
            else:
                # As after every admin save: the PROM check's query opens or closes now.
                checks.checks_after_save(visit)
                status = next((s for s in visit_prom_status(visit, self.value_set(visit))
                               if s.code == instrument), None)  # None: nothing answered, not due
                scores = ", ".join(f"{k} {score_text(v)}" for k, v in status.scores.items()) \
                    if status else "no answers"
                messages.success(request, f"{INSTRUMENTS[instrument].name} saved for {visit}: {scores}.")
                return HttpResponseRedirect(reverse("admin:registry_visit_change", args=[visit.pk]))
        status = next((s for s in visit_prom_status(visit, self.value_set(visit)) if s.code == instrument),
                      None)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta, "visit": visit, "form": form,
            "instrument": INSTRUMENTS[instrument], "status": status,
            "title": f"{INSTRUMENTS[instrument].name} at {visit}",
        }
        return TemplateResponse(request, "admin/registry/visit/prom_entry.html", context,
                                status=400 if request.method == "POST" else 200)

    @staticmethod
    def value_set(visit: Visit) -> str:
        from registry.services.proms.instruments import value_set_for_country

        return value_set_for_country(visit.patient.site.country)

    def proms(self, obj):
        """Expected and answered instruments, each with its scores or what is missing."""
        if obj is None or not obj.pk:
            return "Save the visit first; then enter the questionnaires due at this timepoint."
        value_set = self.value_set(obj)
        rows = []
        for s in visit_prom_status(obj, value_set):
            if s.scorable:
                state = "scored: " + ", ".join(f"{k} {score_text(v)}" for k, v in s.scores.items())
            elif s.started:
                state = f"incomplete ({len(s.answers)}/{len(INSTRUMENTS[s.code].items)} items)"
            else:
                state = "missing"
            link = reverse("admin:registry_visit_proms", args=[obj.pk, s.code])
            rows.append((s.name, "due" if s.expected else "not due", state, link, s.code))
        others = [code for code in INSTRUMENTS if code not in {r[4] for r in rows}]
        body = format_html_join("", '<tr class="prom-{}"><td>{}</td><td>{}</td><td>{}</td>'
                                    '<td><a href="{}">enter</a></td></tr>',
                                ((code, name, due, state, link) for name, due, state, link, code in rows))
        extra = format_html_join(", ", '<a href="{}">{}</a>',
                                 ((reverse("admin:registry_visit_proms", args=[obj.pk, c]),
                                   INSTRUMENTS[c].name) for c in others))
        return format_html('<table id="visit-proms"><thead><tr><th>questionnaire</th><th>protocol</th>'
                           '<th>state</th><th></th></tr></thead><tbody>{}</tbody></table>'
                           '<p class="help">EQ-5D-5L index by the {} value set (the site\'s country). '
                           'Other questionnaires: {}</p>', body, value_set, extra or "-")

    proms.short_description = "questionnaires (PROMs)"


@admin.register(PromAnswer)
class PromAnswerAdmin(RegistryAdmin):
    """Registered for lookups and the audit trail; answers are entered on the visit."""

    list_display = ["visit", "instrument", "item", "value", "value_missing"]
    list_select_related = ["visit__patient"]
    raw_id_fields = ["visit"]

    def has_module_permission(self, request):
        return False

"""Questionnaire links in the admin: the visit page's printable link and QR code, and
the patient page's list of links with resend and revoke.

Thin: links are made, resent and revoked by services.epro (each audited with the
nurse and a reason). Only staff who may edit the patient's site (her nurses, data
managers) see or touch links; investigators never do.
"""

import re

import qrcode
import qrcode.image.svg
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from registry.models import EproLink, Visit
from registry.services import access, epro


def qr_svg(url: str) -> str:
    """An inline SVG QR code of `url` (no XML declaration, scales to its box)."""
    image = qrcode.make(url, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    svg = image.to_string(encoding="unicode")
    svg = svg[svg.index("<svg"):]
    return re.sub(r'width="[^"]+" height="[^"]+"', 'width="100%" height="100%"', svg, count=1)


def may_handle_links(user, site_id: int) -> bool:
    return access.can_edit(user, site_id)  # her site's nurses, data managers


class QuestionnaireLinksMixin:
    """For VisitAdmin: the link page (GET shows what it will do, POST makes the link and
    shows it once with its QR code), resend and revoke (POST, back to the patient page)."""

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:visit_id>/questionnaire-link/", view(self.questionnaire_link_view),
                 name="registry_visit_questionnaire_link"),
            path("<int:visit_id>/questionnaire-link/resend/", view(require_POST(self.resend_view)),
                 name="registry_visit_questionnaire_resend"),
            path("questionnaire-links/<int:link_id>/revoke/", view(require_POST(self.revoke_view)),
                 name="registry_eprolink_revoke"),
        ] + super().get_urls()

    def _visit(self, request, visit_id) -> Visit:
        visit = access.visible(Visit.objects.select_related("patient__site"), request.user) \
            .filter(pk=visit_id).first()
        if visit is None:
            raise Http404("No such visit.")
        if not may_handle_links(request.user, visit.patient.site_id):
            raise PermissionDenied("Only the patient's own site gives out questionnaire links.")
        return visit

    def questionnaire_link_view(self, request, visit_id):
        visit = self._visit(request, visit_id)
        context = {**self.admin_site.each_context(request), "opts": self.model._meta, "visit": visit,
                   "title": f"Questionnaire link for {visit}", "days": epro.valid_days(visit),
                   "refusal": None, "url": None, "qr": None,
                   "links": epro.links_of_patient(visit.patient)}
        context["links"] = [row for row in context["links"] if row["visit"].pk == visit.pk]
        status = 200
        if request.method == "POST":
            try:
                _link, token = epro.link_create(
                    visit=visit, channel=EproLink.Channel.PRINTED, actor=request.user,
                    reason=(request.POST.get("reason") or "").strip()[:200]
                    or "questionnaire link printed in the admin")
            except ValidationError as exc:
                context["refusal"], status = " ".join(exc.messages), 400
            else:
                context["url"] = epro.link_url(token)
                context["qr"] = qr_svg(context["url"])
        return TemplateResponse(request, "admin/registry/visit/questionnaire_link.html", context,
                                status=status)

    def _back(self, visit):
        return HttpResponseRedirect(reverse("admin:registry_patient_change", args=[visit.patient_id])
                                    + "#hub-questionnaires")

    def resend_view(self, request, visit_id):
        visit = self._visit(request, visit_id)
        try:
            epro.link_resend(visit=visit, actor=request.user)
        except (ValidationError, epro.ResendRefused) as exc:
            text = " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
            messages.error(request, f"Not resent: {text}")
        else:
            messages.success(request, f"A new questionnaire link for {visit} was e-mailed to the "
                                      "patient; the earlier links no longer work.")
        return self._back(visit)

    def revoke_view(self, request, link_id):
        link = EproLink.objects.select_related("visit").filter(pk=link_id).first()
        if link is None:
            raise Http404("No such link.")
        visit = self._visit(request, link.visit_id)
        if epro.link_revoke(link=link, actor=request.user, reason="revoked in the admin"):
            messages.success(request, f"Questionnaire link {link.pk} for {visit} revoked.")
        else:
            messages.info(request, f"Questionnaire link {link.pk} was already used or revoked.")
        return self._back(visit)

    def questionnaire(self, obj):
        if obj is None or not obj.pk:
            return "-"
        url = reverse("admin:registry_visit_questionnaire_link", args=[obj.pk])
        return format_html('<a href="{}" id="questionnaire-link">Questionnaire link for the patient '
                           "(print or QR code)</a>", url)

    questionnaire.short_description = "patient questionnaire"

    def get_fieldsets(self, request, obj=None):
        fieldsets = list(super().get_fieldsets(request, obj))
        if obj is not None and obj.pk and may_handle_links(request.user, obj.patient.site_id):
            fieldsets.insert(-1, ("Questionnaire link", {"fields": ["questionnaire"]}))
        return fieldsets


def hub_questionnaires(request, patient) -> dict | None:
    """The patient page's questionnaire section, for staff of her site (None otherwise)."""
    if not may_handle_links(request.user, patient.site_id):
        return None
    links = epro.links_of_patient(patient)
    return {"links": links, "refusal": epro.contact_refusal(patient),
            "conflicts": [row for row in links if row["status"] == "conflict"]}

"""The admin as an investigator would use it to undo the pseudonymisation: free text
the API withholds (visit notes, AE description, affected region, amputation cause,
trial criterion, lead target, explant and revision reasons), the birth year next to
the API's age at consent, and sorting lists on real dates. Hidden, not shown read-only."""

import datetime
import re

import pytest
from django.contrib.admin.views.main import ORDER_VAR
from django.urls import reverse

from registry.models import AdverseEvent, Implant, Patient, Revision, Visit
from registry.services import deid
from registry.services.audit import record_save
from tests.factories import make_patient

pytestmark = pytest.mark.django_db

SECRET = re.compile(r"SECRET-[A-Z]+")


@pytest.fixture
def written(entered_today, site_a, nurse):
    """Free text in every field deid declares as free text, and a birth year."""
    patient = entered_today["patient"]
    patient.affected_region = "SECRET-REGION left sural nerve"
    patient.amputation_cause = "SECRET-CAUSE car crash on the A2"
    record_save(patient, actor=nurse, reason="test")
    implant = entered_today["implant"]
    implant.trial_criterion = "SECRET-CRITERION walked to the shop"
    implant.explant_reason = "SECRET-EXPLANT"
    record_save(implant, actor=nurse, reason="test")
    revision = record_save(Revision(implant=implant, date=datetime.date(2021, 5, 4),
                                    reason="SECRET-REASON", description="SECRET-DESCRIBED"),
                           actor=nurse, reason="test")
    return {**entered_today, "revision": revision}


def pages(found) -> list[str]:
    """Every admin page with a row of the patient: lists and change pages."""
    out = []
    for model, obj in ((Patient, found["patient"]), (Implant, found["implant"]),
                       (Visit, found["visit"]), (AdverseEvent, found["event"]),
                       (Revision, found["revision"])):
        name = f"admin:registry_{model._meta.model_name}"
        out += [reverse(f"{name}_changelist"), reverse(f"{name}_change", args=[obj.pk])]
    return out


def test_a_nurse_sees_the_free_text_the_probe_looks_for(client, written, nurse):
    client.force_login(nurse)
    seen = set()
    for url in pages(written):
        response = client.get(url)
        assert response.status_code == 200, url
        seen |= set(SECRET.findall(response.content.decode()))
    assert seen >= {"SECRET-NOTE", "SECRET-DESCRIPTION", "SECRET-REGION", "SECRET-CAUSE",
                    "SECRET-CRITERION", "SECRET-TARGET", "SECRET-EXPLANT", "SECRET-REASON",
                    "SECRET-DESCRIBED"}


def test_no_admin_page_shows_an_investigator_free_text(client, written, investigator):
    client.force_login(investigator)
    for url in pages(written):
        response = client.get(url)
        assert response.status_code == 200, url
        html = response.content.decode()
        assert not SECRET.findall(html), (url, SECRET.findall(html))


# Every model with free text or a birth year (identifier models are not shown to them at all).
TEXT_MODELS = [m for m, r in deid.MODELS.items() if r.free_text or r.birth_year]


@pytest.mark.parametrize("model", TEXT_MODELS, ids=lambda m: m.__name__)
def test_every_withheld_field_is_out_of_the_investigators_forms(client, written, investigator, model):
    from django.contrib import admin

    model_admin = admin.site._registry[model]
    client.force_login(investigator)
    request = client.get("/admin/").wsgi_request
    request.user = investigator
    hidden = set(deid.hidden_fields(model, investigator))
    assert hidden
    obj = model.objects.first()
    form = model_admin.get_form(request, obj)
    assert not hidden & set(form.base_fields)
    shown = {f for _, opts in model_admin.get_fieldsets(request, obj) for f in opts["fields"]}
    assert not hidden & shown
    assert not hidden & set(model_admin.get_list_display(request))
    assert not hidden & set(model_admin.get_readonly_fields(request, obj))


def test_an_investigator_gets_no_birth_year_in_the_admin(client, written, investigator, nurse):
    url = reverse("admin:registry_patient_change", args=[written["patient"].pk])
    client.force_login(nurse)
    assert 'name="birth_year"' in client.get(url).content.decode()
    client.force_login(investigator)
    html = client.get(url).content.decode()
    assert "birth_year" not in html and "1961" not in html


def test_a_post_of_a_hidden_field_changes_nothing(client, written, investigator):
    # Investigators have no change permission at all; the hidden field is no way in either.
    client.force_login(investigator)
    url = reverse("admin:registry_visit_change", args=[written["visit"].pk])
    client.post(url, {"notes": "overwritten"})
    assert Visit.objects.get(pk=written["visit"].pk).notes == "SECRET-NOTE"


def visit_list(client, **params):
    response = client.get(reverse("admin:registry_visit_changelist"), params)
    assert response.status_code == 200
    return response


def column(response, name) -> int:
    return list(response.context["cl"].list_display).index(name)


def test_an_investigator_cannot_sort_a_list_on_a_real_date(client, written, site_a, nurse,
                                                           investigator):
    make_patient(site_a, actor=nurse)  # a second patient: a sort would rank both
    client.force_login(investigator)
    plain = visit_list(client)
    cl = plain.context["cl"]
    assert not any(deid.is_date_ordering(Visit, o) for o in cl.queryset.query.order_by
                   if isinstance(o, str))
    for name in ("target_date", "date_done"):
        assert name not in cl.sortable_by
        response = visit_list(client, **{ORDER_VAR: str(column(plain, name))})
        order = response.context["cl"].queryset.query.order_by
        assert not any(isinstance(o, str) and name in o for o in order)
        assert "not available to you" in response.content.decode()
    # The same on the patients' "next visit due" (a date annotation).
    response = client.get(reverse("admin:registry_patient_changelist"),
                          {ORDER_VAR: str(list(client.get(reverse("admin:registry_patient_changelist"))
                                               .context["cl"].list_display).index("next_due"))})
    assert "next_due_date" not in str(response.context["cl"].queryset.query.order_by)


def test_a_nurse_still_sorts_on_dates(client, written, nurse):
    client.force_login(nurse)
    plain = visit_list(client)
    assert "target_date" in plain.context["cl"].sortable_by
    response = visit_list(client, **{ORDER_VAR: str(column(plain, "target_date"))})
    assert "target_date" in response.context["cl"].queryset.query.order_by

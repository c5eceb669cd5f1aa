"""Two nurses save the same visit at once: the one who loses the race gets a friendly
"changed by someone else" message, never a StaleEdit server error, and nothing of her
save is kept."""

import datetime

from django.urls import reverse

from registry.admin.forms import ClinicalForm
from registry.models import Visit
from registry.services.audit import record_save
from tests.admin.conftest import post_form
from tests.factories import make_implant, make_visit


def test_a_save_that_loses_the_race_gets_a_message_and_keeps_the_winner(client, monkeypatch,
                                                                       patient_a, nurse):
    visit = make_visit(patient_a, make_implant(patient_a, actor=nurse), actor=nurse, timepoint="m3",
                       nrs=4, date_done=datetime.date(2020, 6, 1))
    checked = ClinicalForm.clean

    def clean_then_someone_else_saves(form):
        cleaned = checked(form)
        if form.instance.pk == visit.pk:
            # The other nurse's save commits after this form passed its version check.
            other = Visit.objects.get(pk=visit.pk)
            other.nrs = 2
            record_save(other, actor=nurse, reason="Other nurse: corrected NRS")
        return cleaned

    monkeypatch.setattr(ClinicalForm, "clean", clean_then_someone_else_saves)
    client.force_login(nurse)
    url = reverse("admin:registry_visit_change", args=[visit.pk])
    response = post_form(client, url, nrs="6", change_reason="Re-rated at call")
    assert response.status_code == 302 and response["Location"] == url
    page = client.get(url)
    assert "changed by someone else" in page.content.decode()
    visit.refresh_from_db()
    # Nothing of the losing save is kept. (The simulated winner ran inside the same
    # request's transaction here, so it was rolled back with it; in production it is a
    # separate request and stays.)
    assert visit.nrs != 6
    assert visit.history.filter(history_change_reason="Re-rated at call").count() == 0

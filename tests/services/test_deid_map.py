"""services.deid declares every field once, and every channel obeys that declaration.

- every model, date and free-text field is declared (a system check; a model made up
  here with an undeclared date fails it);
- the analysis datasets (exports, REDCap) read no withheld field, write a calendar date
  only in a real-dates column, and read the birth year only to compute an age;
- the REST serializers serialize no withheld field and shift every clinical date.
"""

import pytest
from django.apps import apps
from django.core import checks
from django.db import models
from django.db.models import Subquery, Value
from django.db.models.expressions import Col
from django.test.utils import isolate_apps

from registry.api import serializers
from registry.models import Patient, Visit
from registry.models.base import ClinicalModel
from registry.services import datasets, deid


def test_the_declaration_covers_every_model_and_field_of_the_registry():
    assert deid.undeclared(apps.get_app_config("registry").get_models()) == []
    assert [e for e in checks.run_checks() if e.id == "registry.E001"] == []


@isolate_apps("registry")
def test_a_date_or_free_text_added_without_declaring_it_fails_the_check(monkeypatch):
    class FollowUpCall(ClinicalModel):
        patient = models.ForeignKey(Patient, on_delete=models.CASCADE)
        called_on = models.DateField()
        remarks = models.TextField(blank=True)

        class Meta:
            app_label = "registry"

    assert deid.undeclared([FollowUpCall]) == [
        "FollowUpCall: not declared in services.deid (MODELS, NOT_PATIENT_DATA or OPERATIONS)"]
    monkeypatch.setitem(deid.MODELS, FollowUpCall, deid.Rule("patient.registry_id"))
    assert deid.undeclared([FollowUpCall]) == [
        "FollowUpCall.called_on: a date not declared in services.deid (a clinical date to shift?)",
        "FollowUpCall.remarks: text without a code list, not declared in services.deid as free text "
        "or released text"]
    monkeypatch.setitem(deid.MODELS, FollowUpCall, deid.Rule(
        "patient.registry_id", dates=("called_on",), free_text=("remarks", "gone")))
    assert deid.undeclared([FollowUpCall]) == [
        "FollowUpCall.gone: declared in services.deid but not a field"]


def _fields_read(expression, found):
    """Every model field an expression (and the subqueries in it) reads."""
    if isinstance(expression, Col):
        found.add(expression.target)
    if isinstance(expression, Subquery):
        query = expression.query
        for inner in [*query.select, *query.annotations.values()]:
            _fields_read(inner, found)
    for inner in expression.get_source_expressions():
        if inner is not None:
            _fields_read(inner, found)
    return found


@pytest.mark.django_db
@pytest.mark.parametrize("dataset", list(datasets.ALL.values()), ids=lambda d: d.name)
def test_no_dataset_column_reads_a_withheld_field_or_writes_a_real_date(dataset):
    select = dataset.select(dataset.model.objects.all(), dates="iso")
    for column in dataset.columns_for(dates="iso"):
        expression = select.query.annotations[f"c_{column.name}"]
        read = _fields_read(expression, set())
        # A column reads a field, or is a constant (the EQ-5D-5L value set of the request).
        assert read or isinstance(expression, Value), column.name
        for field in read:
            model = field.model
            assert deid.released(model, field.name), f"{column.name} reads {model.__name__}.{field.name}"
            rule = deid.rule(model)
            if rule and field.name in rule.birth_year:
                assert column.kind == "age", f"{column.name} reads the birth year"
        if column.kind == "date":
            assert column.dates_only, f"{column.name} writes a calendar date in every mode"


SERIALIZERS = [s for s in vars(serializers).values()
               if isinstance(s, type) and issubclass(s, serializers.serializers.ModelSerializer)
               and s is not serializers.serializers.ModelSerializer]


@pytest.mark.parametrize("serializer", SERIALIZERS, ids=lambda s: s.__name__)
def test_no_serializer_hands_out_a_withheld_field_and_every_date_is_shifted(serializer):
    model = serializer.Meta.model
    assert not set(serializer.Meta.fields) & set(deid.withheld(model)), serializer.__name__
    rule = deid.rule(model)
    assert rule is None or not rule.identifiers, f"{serializer.__name__} serializes identifiers"
    dates = [f.name for f in model._meta.concrete_fields
             if isinstance(f, models.DateField) and not isinstance(f, models.DateTimeField)
             and f.name in serializer.Meta.fields]
    if dates:
        assert issubclass(serializer, serializers.ShiftedDates), serializer.__name__
        assert set(serializer().shifted_dates()) == set(dates)


def test_a_channel_cannot_write_out_a_date_the_declaration_does_not_know():
    visit = Visit(date_done=None)
    with pytest.raises(ValueError, match="not a declared clinical date"):
        deid.shown(visit, "updated_at", 3)
    import datetime

    visit.date_done = datetime.date(2024, 3, 10)
    assert deid.shown(visit, "date_done", None) == datetime.date(2024, 3, 10)
    assert deid.shown(visit, "date_done", 10) == datetime.date(2024, 2, 29)

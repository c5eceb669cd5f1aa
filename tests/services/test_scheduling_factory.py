"""Issue 21: bulk scheduling copies one template visit instead of running Visit.__init__
per visit; that is only right while no Visit field has a callable default, and the copies
must be the visits Django would have built."""

from registry.models import Visit, VisitStatus
from registry.services import scheduling


def test_no_visit_field_has_a_callable_default():
    callable_defaults = [f.name for f in Visit._meta.concrete_fields
                         if f.has_default() and callable(f.default)]
    assert callable_defaults == []


def test_factory_visits_are_the_visits_django_builds():
    new_visit = scheduling._visit_factory()
    values = {"patient_id": 7, "implant_id": 9, "timepoint": "m3"}
    made = new_visit(**values)
    built = Visit(status=VisitStatus.SCHEDULED, **values)
    fields = [f.attname for f in Visit._meta.concrete_fields]
    assert [getattr(made, f) for f in fields] == [getattr(built, f) for f in fields]
    assert made._state.adding and made._state.db is None
    other = new_visit(patient_id=8, implant_id=10, timepoint="m6")
    assert made.patient_id == 7 and other.patient_id == 8 and made._state is not other._state

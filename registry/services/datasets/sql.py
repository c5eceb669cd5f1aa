"""SQL building blocks of the dataset columns (portable between PostgreSQL and SQLite)."""

from django.db.models import BooleanField, Case, CharField, DateField, F, Func, IntegerField, Q, Value, When
from django.db.models.functions import Cast, Concat, ExtractYear

from registry.models import RELATED, Iso14155Class, first_implant_value

from ..cells import FORMULA_STARTS
from .columns import AGE_TOP, AGE_TOP_LABEL


class DaysBetween(Func):
    """later - earlier in whole days (NULL if either is NULL)."""

    output_field = IntegerField()
    arity = 2

    def as_sql(self, compiler, connection, **extra):
        # PostgreSQL: date - date is an integer number of days.
        return super().as_sql(compiler, connection, template="(%(expressions)s)", arg_joiner=" - ", **extra)

    def as_sqlite(self, compiler, connection, **extra):
        return super().as_sql(
            compiler, connection,
            template="CAST(julianday(%(expressions)s) AS INTEGER)",
            arg_joiner=") - julianday(", **extra)


class AddDays(Func):
    """date + whole days (NULL if either is NULL)."""

    output_field = DateField()
    arity = 2

    def as_sql(self, compiler, connection, **extra):
        return super().as_sql(compiler, connection, template="(%(expressions)s)", arg_joiner=" + ", **extra)

    def as_sqlite(self, compiler, connection, **extra):
        return super().as_sql(compiler, connection, template="date(%(expressions)s || ' days')",
                              arg_joiner=", '+' || ", **extra)


class GreaterThan(Func):
    """a > b as a boolean expression usable in When()."""

    arity = 2
    template = "(%(expressions)s)"
    arg_joiner = " > "

    def __init__(self, *expressions):
        super().__init__(*expressions, output_field=BooleanField())


def yes_no(condition_true: Q, condition_false: Q):
    return Case(When(condition_true, then=Value("yes")), When(condition_false, then=Value("no")),
                default=Value(None), output_field=CharField())


def blank_is_null(field: str):
    """An optional code stored as "" comes out as NULL (an empty string is not a code)."""
    return Case(When(**{field: ""}, then=Value(None)), default=F(field), output_field=CharField())


def row_implant(field: str, output_field):
    """`field` of the row's implant, else of the patient's first implant.

    Baseline visits (and events recorded before an implant) have no implant of their
    own: they are dated from, and described by, the patient's first implant. CASE
    evaluates the correlated subquery only for rows without an implant.
    """
    return Case(When(implant__isnull=False, then=F(f"implant__{field}")),
                default=first_implant_value(field), output_field=output_field)


def age_at(implant_date, birth_year: str):
    """Age in whole years in the implant's year, as text; "90+" over 89; NULL without both."""
    age = ExtractYear(implant_date) - F(birth_year)
    return Case(When(Q(**{f"{birth_year}__isnull": True}), then=Value(None)),
                When(GreaterThan(age, AGE_TOP - 1), then=Value(AGE_TOP_LABEL)),
                default=Cast(age, CharField()), output_field=CharField())


def iso_class():
    """SQL for the derived ISO 14155 class (the same rule as `models.iso14155_class`)."""
    related = Q(device_relatedness__in=RELATED) | Q(procedure_relatedness__in=RELATED)
    return Case(
        When(Q(serious=True) & related & Q(anticipated=False), then=Value(Iso14155Class.USADE.value)),
        When(Q(serious=True) & related, then=Value(Iso14155Class.SADE.value)),
        When(serious=True, then=Value(Iso14155Class.SAE.value)),
        When(related, then=Value(Iso14155Class.ADE.value)),
        default=Value(Iso14155Class.AE.value), output_field=CharField())


def neutralised(name: str):
    """The text of annotation `name` as `cells.to_cell` writes it: a quote in front of a
    value a spreadsheet would run as a formula (so COPY's CSV is safe too)."""
    quoted = Concat(Value("'"), F(name), output_field=CharField())
    return Case(*(When(**{f"{name}__startswith": start}, then=quoted) for start in FORMULA_STARTS),
                default=F(name), output_field=CharField())

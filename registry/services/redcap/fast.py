"""REDCap record exports written by PostgreSQL: the same bytes as `RecordExport.rows()`, in one COPY.

`RecordExport.rows()` (Python, batches of patients) is the reference and the SQLite path.
Here one statement produces REDCap's rows from the same declarations: the enrolment,
visit and adverse-event values are the datasets' own SELECTs (`datasets.PATIENTS`,
`VISITS`, `EVENTS`, via `Dataset.select`), each REDCap field's text is chosen by its
kind and code list (`Field`), the event of a visit and its repeat instance come from the
event list and `row_number()`, and the rows are sorted as the Python path yields them:
record, event order, then the dataset's own order within an event. The PROM forms of a
visit row: its answers (one aggregate per visit), the visits dataset's score columns in the
value set of the user's sites, as `RecordExport._prom_cells` writes them. The result is streamed
by COPY, so the worker's memory does not grow with the number of patients, and the
number of queries is fixed (the event list, then one COPY).

Row order within one event relies on `row_number() OVER ()` numbering a sorted subquery in
its order (PostgreSQL never flattens a subquery with ORDER BY), as `datasets.pg` does.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator

from django.db.models import F

from registry.models import (
    AdverseEvent,
    DeviceComponent,
    Patient,
    Visit,
    VisitStatus,
    choices,
)
from registry.models.events import CLOSED_OUTCOMES
from registry.models.instruments import INSTRUMENTS
from registry.models.proms import sheet_item, sheet_rows
from registry.models.visits import BASELINE

from .. import datasets, missing
from ..access import visible
from ..datasets import pg
from ..datasets.pg import Sql
from .project import (
    AE_EVENT,
    ARM,
    COMPLETE,
    COMPONENT_EVENT,
    FORM_LABELS,
    FORM_NAMES,
    INCOMPLETE,
    Field,
)
from .proms import PROM_FORM_NAMES, VALUE_SET_FIELD

COMPLETE_LABELS = {"2": "Complete", "1": "Unverified", "0": "Incomplete"}
KEYS = ("record_id", "redcap_event_name", "redcap_repeat_instrument", "redcap_repeat_instance")


def fast_available() -> bool:
    return pg.available(Patient.objects.db)


YESNO_RAW = {"yes": "1", "true": "1", "no": "0", "false": "0"}  # the stored texts of a yes/no


def _coded(f: Field) -> dict[str, str] | None:
    """A code or yes/no field's raw text per stored text (`Field.raw`); None for the rest."""
    if f.kind == "yesno":
        return YESNO_RAW
    if f.kind == "code":
        return {str(code): str(number) for number, code, _label in choices.numbered(f.codes)}
    return None


def _stored(ref: str) -> str:
    """The value's stored text, NULL when empty."""
    return f"NULLIF(({ref})::text, '')"


def _raw(f: Field, ref: str) -> Sql:
    """SQL of `Field.raw(typed value)`: REDCap's raw text, NULL when empty."""
    text = _stored(ref)
    if f.kind == "number":
        # float -> "50" when integral, else repr: float8's text is the same shortest form.
        return Sql(f"(({text})::float8::text)")
    coded = _coded(f)
    return pg.case(text, coded) if coded is not None else Sql(text)


def _value(f: Field, ref: str, labels: bool) -> Sql:
    """`Field.raw` or, with `labels`, `Field.label_of` of the value. A code or yes/no goes
    from its stored text to its label in one CASE (not a CASE of the raw CASE: the label
    export evaluated the raw one twice for every value without a label, NULLs included)."""
    if not labels or f.kind not in ("code", "scale", "yesno"):
        return _raw(f, ref)
    named = dict(f.choices())
    coded = _coded(f)
    if coded is not None:  # an unknown stored text is NULL either way
        return pg.case(_stored(ref), {key: named.get(raw, raw) for key, raw in coded.items()})
    return pg.case(_stored(ref), named, otherwise=_raw(f, ref))


class _Plan:
    """The pieces of one export's SQL, from a checked `RecordExport`."""

    def __init__(self, export):
        self.export = export
        self.labels = export.labels
        self.columns = export.columns()
        self.patient_cols = datasets.PATIENTS.columns_for()
        self.visit_cols = datasets.VISITS.columns_for()
        self.event_cols = datasets.EVENTS.columns_for()
        self.component_cols = datasets.COMPONENTS.columns_for()
        self.patients = export.patients()
        self.visits = visible(Visit.objects.all(), export.user).filter(patient__in=export.patients())
        self.events = visible(AdverseEvent.objects.all(), export.user).filter(
            patient__in=export.patients())
        self.components = visible(DeviceComponent.objects.all(), export.user).filter(
            implant__patient__in=export.patients())
        self.fields = {f.name: f for f in export.selected}
        self.present: list[frozenset] = []  # per branch of `flat`, the columns it can fill
        self.event_order = {e.code: i for i, e in enumerate(export.event_list)}
        # The PROM forms: answers and scores on read, in the value set of the user's sites.
        self.proms = export.wants_proms
        self.value_set = export.prom_value_set() if self.proms else None

    # text of the fixed columns
    def event_text(self, event) -> str:
        return f"{event.label} (Arm {ARM}: Arm {ARM})" if self.labels else event.unique_name

    def complete(self, status: str) -> str:
        return COMPLETE_LABELS[status] if self.labels else status

    def _complete_case(self, condition: str, *params) -> Sql:
        return Sql(f"(CASE WHEN {condition} THEN %s::text ELSE %s::text END)",
                   [*params, self.complete(COMPLETE), self.complete(INCOMPLETE)])

    def _select(self, cells: dict[str, Sql]) -> Sql:
        """The branch's number (its place in `present`, which keeps the columns it has) and
        its text columns in the export's column order (NULL where it has none)."""
        sql = Sql("%s::int", [len(self.present)])
        self.present.append(frozenset(name for name in self.columns if cells.get(name)))
        for name in self.columns:
            sql.add(", ").extend(cells.get(name) or Sql("NULL::text"))
        return sql

    def _dataset(self, dataset, queryset, prefix: str, columns, numbered: bool, *,
                 sheet: tuple[str, ...] = ()) -> Sql:
        """The dataset's rows as a subquery `prefix` (with `seq`, their place, if `numbered`);
        `sheet`: PromSheet columns appended after the dataset's own, as `<prefix>_sheet_<name>`,
        read through the join the dataset's score columns already make (a second join of
        the sheets took ~7 s of the registry's 22 s, issue 21)."""
        names = ", ".join(pg.aliases(f"{prefix}_", columns)
                          + [pg.quoted(f"{prefix}_sheet_{n}") for n in sheet])
        select = dataset.select(queryset, value_set=self.value_set)
        if sheet:
            select = select.annotate(**{f"sheet_{n}": F(f"prom_sheet__{n}") for n in sheet})
        inner = Sql("(").extend(pg.subquery(select))
        if not numbered:
            return inner.add(f") AS {prefix}({names})")
        inner.add(f") AS {prefix}0({names})")
        return Sql(f"(SELECT row_number() OVER () AS seq, {prefix}0.* FROM ").extend(inner).add(
            f") AS {prefix}")

    def _form_cells(self, form: str, prefix: str, when: Sql | None = None) -> dict[str, Sql]:
        cells = {name: self._cell(f, prefix)
                 for name, f in self.fields.items() if f.form == form and name != "record_id"}
        if when is not None:
            cells = {name: Sql("(CASE WHEN ").extend(when).add(" THEN ").extend(value).add(" END)")
                     for name, value in cells.items()}
        return cells

    def _prom_sheet(self) -> tuple[str, ...]:
        """The visit's PROM sheet columns the forms read (models.PromSheet: one per item, the
        answer rows per instrument), as `v."v_sheet_<name>"`; a visit without answers has
        none (NULLs: no value, no value set, forms incomplete as
        `services.redcap.proms.form_complete` says)."""
        def ref(name):
            return pg.quoted(f"v_sheet_{name}")

        self.item_refs = {}
        for code, instrument in INSTRUMENTS.items():
            for item in instrument.items:
                self.item_refs[f"prom:{code}:{item.code}"] = f"v.{ref(sheet_item(code, item.code))}"
        self.has_eq5d = f"v.{ref(sheet_rows('eq5d5l'))} > 0"
        # Every item has a row (a value or a reason): the answers hold only the
        # instrument's own items, one row each (constraints of PromAnswer).
        self.form_done = [f"v.{ref(sheet_rows(code))} = {len(INSTRUMENTS[code].items)}"
                          for code in PROM_FORM_NAMES]
        items = tuple(sheet_item(code, item.code) for code, instrument in INSTRUMENTS.items()
                      for item in instrument.items)
        return items + tuple(sheet_rows(code) for code in INSTRUMENTS)

    def _prom_cells(self) -> dict[str, Sql]:
        """The PROM forms' cells of a visit row, as `RecordExport._prom_cells`."""
        cells = {}
        for name, f in self.fields.items():
            if f.form not in PROM_FORM_NAMES:
                continue
            if f.column in self.item_refs:
                ref = self.item_refs[f.column]
            elif f.column == f"score:{VALUE_SET_FIELD}":
                ref = f'(CASE WHEN {self.has_eq5d} THEN v."v_{VALUE_SET_FIELD}" END)'
            else:
                ref = f'v."v_{f.column.removeprefix("score:")}"'
            cells[name] = _value(f, ref, self.labels)
        for code, done in zip(PROM_FORM_NAMES, self.form_done, strict=True):
            cells[f"{code}_complete"] = self._complete_case(done)
        return cells

    def _cell(self, f: Field, prefix: str) -> Sql:
        """A field's text; where the value is missing for a reason, REDCap's missing-data
        code (its label when labels are asked for), as `RecordExport._value`."""
        value = _value(f, f'{prefix}."{prefix}_{f.column}"', self.labels)
        if not f.reason:
            return value
        # The value's own reason, else (visit form) the whole visit's (Field.reasons).
        why = ", ".join(f'{prefix}."{prefix}_{r}"' for r in f.reasons)
        sql = Sql(f'(CASE WHEN {prefix}."{prefix}_{f.column}" IS NULL '
                  f'THEN (CASE COALESCE({why})')
        for reason in missing.REASONS.values():
            sql.add(" WHEN %s THEN %s::text", reason.code, reason.label if self.labels else reason.redcap)
        return sql.add(" END) ELSE ").extend(value).add(" END)")

    def patients_cte(self) -> Sql:
        """`p`: the enrolment values, `seq` = the record's place in registry-id order (the
        output is sorted by this integer, not by the text again)."""
        numbered = self._dataset(datasets.PATIENTS, self.patients, "p", self.patient_cols, True)
        return Sql("WITH p AS MATERIALIZED (SELECT * FROM ").extend(numbered).add(") ")

    def visit_branch(self, wanted: list) -> Sql:
        """Visit rows (baseline rows carry the enrolment form)."""
        values = Sql()
        for i, event in enumerate(wanted):
            values.add(", " if i else "")
            values.add("(%s::text, %s::int, %s::text, %s::bool)", event.code,
                       self.event_order[event.code], self.event_text(event), event.repeating)
        cells = {"record_id": Sql('v."v_registry_id"'), "redcap_event_name": Sql("ev.txt")}
        cells.update(self._form_cells("enrolment", "p", when=Sql('v."v_timepoint" = %s', [BASELINE])))
        cells["enrolment_complete"] = Sql('(CASE WHEN v."v_timepoint" = %s THEN %s::text END)',
                                          [BASELINE, self.complete(COMPLETE)])
        cells.update(self._form_cells("visit", "v"))
        cells["visit_complete"] = self._complete_case('v."v_status" = %s', str(VisitStatus.COMPLETED))
        sheet = self._prom_sheet() if self.proms else ()
        if self.proms:
            cells.update(self._prom_cells())
        sql = Sql("SELECT p.seq, ev.ord, v.seq, ev.repeating, ").extend(self._select(cells))
        sql.add(" FROM ")
        sql.extend(self._dataset(datasets.VISITS, self.visits, "v", self.visit_cols, True, sheet=sheet))
        sql.add(" JOIN (VALUES ").extend(values)
        sql.add(') AS ev(code, ord, txt, repeating) ON ev.code = v."v_timepoint"')
        return sql.add(' JOIN p ON p."p_registry_id" = v."v_registry_id"')

    def enrolment_branch(self, baseline) -> Sql:
        """The enrolment row of a patient without a baseline visit."""
        cells = {"record_id": Sql('p."p_registry_id"'),
                 "redcap_event_name": Sql("%s::text", [self.event_text(baseline)]),
                 "enrolment_complete": Sql("%s::text", [self.complete(COMPLETE)])}
        cells.update(self._form_cells("enrolment", "p"))
        sql = Sql("SELECT p.seq, %s::int, 0::bigint, false, ", [self.event_order[BASELINE]])
        sql.extend(self._select(cells)).add(" FROM p")
        having = pg.subquery(self.visits.filter(timepoint=BASELINE).order_by()
                             .values_list("patient__registry_id"))
        sql.add(" WHERE NOT EXISTS (SELECT 1 FROM (").extend(having)
        sql.add(') AS b(rid) WHERE b.rid = p."p_registry_id")')
        return sql

    def event_branch(self, event) -> Sql:
        instrument = FORM_LABELS["adverse_event"] if self.labels else "adverse_event"
        cells = {"record_id": Sql('e."e_registry_id"'),
                 "redcap_event_name": Sql("%s::text", [self.event_text(event)]),
                 "redcap_repeat_instrument": Sql("%s::text", [instrument])}
        cells.update(self._form_cells("adverse_event", "e"))
        closed = sorted(str(o) for o in CLOSED_OUTCOMES)
        cells["adverse_event_complete"] = self._complete_case(
            f'e."e_outcome" IN ({", ".join(["%s"] * len(closed))})', *closed)
        sql = Sql("SELECT p.seq, %s::int, e.seq, true, ", [self.event_order[AE_EVENT]])
        sql.extend(self._select(cells)).add(" FROM ")
        sql.extend(self._dataset(datasets.EVENTS, self.events, "e", self.event_cols, True))
        sql.add(' JOIN p ON p."p_registry_id" = e."e_registry_id"')
        return sql

    def component_branch(self, event) -> Sql:
        """The device-component rows (a repeating instrument in its own event, as the
        adverse events; every instance complete, as `RecordExport.rows`)."""
        instrument = FORM_LABELS["device_component"] if self.labels else "device_component"
        cells = {"record_id": Sql('c."c_registry_id"'),
                 "redcap_event_name": Sql("%s::text", [self.event_text(event)]),
                 "redcap_repeat_instrument": Sql("%s::text", [instrument]),
                 "device_component_complete": Sql("%s::text", [self.complete(COMPLETE)])}
        cells.update(self._form_cells("device_component", "c"))
        sql = Sql("SELECT p.seq, %s::int, c.seq, true, ", [self.event_order[COMPONENT_EVENT]])
        sql.extend(self._select(cells)).add(" FROM ")
        sql.extend(self._dataset(datasets.COMPONENTS, self.components, "c", self.component_cols, True))
        sql.add(' JOIN p ON p."p_registry_id" = c."c_registry_id"')
        return sql

    def flat(self, *, branch: bool = False) -> Sql:
        """All REDCap rows, text columns k0..kN in the export's column order, sorted;
        `branch`: and last the number of the branch each row comes from (`present`)."""
        export = self.export
        wanted = [e for e in export.event_list if e.code in export.wanted_events
                  and e.code not in (AE_EVENT, COMPONENT_EVENT)]
        branches = []
        if wanted:
            branches.append(self.visit_branch(wanted))
        if BASELINE in export.wanted_events:
            branches.append(self.enrolment_branch(export.event_by_code[BASELINE]))
        if AE_EVENT in export.wanted_events:
            branches.append(self.event_branch(export.event_by_code[AE_EVENT]))
        if COMPONENT_EVENT in export.wanted_events:
            branches.append(self.component_branch(export.event_by_code[COMPONENT_EVENT]))
        names = [f"k{i}" for i in range(len(self.columns))]
        # The repeat instance is numbered after the one sort (the window's order is the
        # output's: PostgreSQL sorts once for both).
        instance = self.columns.index("redcap_repeat_instance")
        outer = ["(CASE WHEN u.repeating THEN (row_number() OVER w)::text END)" if i == instance
                 else f"u.{n}" for i, n in enumerate(names)] + (["u.branch"] if branch else [])
        sql = self.patients_cte().add(f"SELECT {', '.join(outer)} FROM (")
        if not branches:
            sql.add(f"SELECT NULL::text, 0, 0::bigint, false, 0, {', '.join(['NULL::text'] * len(names))} "
                    "WHERE false")
        for i, branch in enumerate(branches):
            sql.add(" UNION ALL " if i else "").add("(").extend(branch).add(")")
        sql.add(f") AS u(rank, ev_ord, seq, repeating, branch, {', '.join(names)}) "
                "WINDOW w AS (PARTITION BY u.rank, u.ev_ord ORDER BY u.seq) ORDER BY u.rank, u.ev_ord, u.seq")
        return sql


def _json_rows(inner: Sql, alias: str, names: list[tuple[str, str]], plain: frozenset,
               present: list[frozenset]) -> Sql:
    """One JSON object per row of `inner`, every value a JSON string ("" when NULL), written
    by format(): the keys and the text between values are the format string, the values its
    arguments (NULL gives ""), in groups of at most 90; a value of a `plain` key is written
    between quotes as it is (`_plain_column`), the others by to_json. `present`: per branch
    (`inner`'s column `branch`, `_Plan.flat(branch=True)`) the columns it can fill; the
    others are constants of its format string (a visit row never has an adverse event's
    fields). (concat() of the constants and values took ~30 % longer; a || chain copied the
    growing text once per field; row_to_json looks up each field's output function on every
    row: 2x, issue 21.)"""
    sql = Sql(f"SELECT (CASE {alias}.branch")
    for number, columns in enumerate(present):
        sql.add(" WHEN %s THEN ", number).extend(_json_object(alias, names, plain, columns))
    return sql.add(" END) FROM (").extend(inner).add(f") AS {alias}")


def _json_object(alias: str, names: list[tuple[str, str]], plain: frozenset, filled: frozenset) -> Sql:
    """The JSON text of a row of a branch (`_json_rows`); a column not in `filled` is "" ."""
    groups: list[Sql] = []
    template, args = "", []
    for i, (key, col) in enumerate(names):
        template += ("{" if i == 0 else ",") + json.dumps(key, ensure_ascii=False).replace("%", "%%") + ":"
        if key not in filled and key != "redcap_repeat_instance":
            template += '""'
        elif key in plain:
            template += '"%s"'
            args.append(f"{alias}.{col}")
        else:
            template += "%s"
            args.append(f"to_json(COALESCE({alias}.{col}, ''))::text")
        if len(args) == CONCAT_ARGS or i == len(names) - 1:
            groups.append(Sql(f"format({', '.join(['%s::text', *args])})", [template]))
            template, args = "", []
    row = Sql()
    for i, group in enumerate(groups):
        row.add(" || " if i else "").extend(group)
    return row.add(" || '}'" if names else "'{}'")


def _eav(plan: _Plan, flat: Sql) -> tuple[Sql, list[str]]:
    """REDCap's eav rows from the flat rows: one per non-empty value, in column order."""
    index = {name: f"f.k{i}" for i, name in enumerate(plan.columns)}
    values = [(name, index[name]) for name in plan.columns if name not in KEYS]
    record = index.get("record_id", "NULL::text")
    sql = Sql(f"SELECT {record}, {index['redcap_event_name']}, {index['redcap_repeat_instrument']}, "
              f"{index['redcap_repeat_instance']}, u.field_name, u.value FROM (").extend(flat)
    sql.add(f") AS f({', '.join(f'k{i}' for i in range(len(plan.columns)))})")
    if values:
        sql.add(" CROSS JOIN LATERAL unnest(%s::text[], ARRAY[" + ", ".join(col for _, col in values)
                + "]::text[]) AS u(field_name, value) WHERE u.value IS NOT NULL",
                [name for name, _ in values])
    else:
        sql.add(" CROSS JOIN LATERAL (SELECT NULL::text, NULL::text WHERE false) AS u(field_name, value)")
    return sql, EAV_NAMES


EAV_NAMES = ["record", "redcap_event_name", "redcap_repeat_instrument", "redcap_repeat_instance",
             "field_name", "value"]
EAV_JSON_START = b'{"record":'  # begins each eav JSON object and nothing else (values' quotes are escaped)
CONCAT_ARGS = 90  # concat() takes at most 100 arguments (FUNC_MAX_ARGS)


def _concat(parts: list[Sql]) -> Sql:
    """concat(parts...) (NULLs left out) in groups, as one text; never NULL."""
    if len(parts) <= CONCAT_ARGS:
        sql = Sql("concat(")
        for i, part in enumerate(parts):
            sql.add(", " if i else "").extend(part)
        return sql.add(")")
    return _concat([_concat(parts[i:i + CONCAT_ARGS]) for i in range(0, len(parts), CONCAT_ARGS)])


# The kinds whose SQL text (`_raw`) holds only digits, a sign, a point or an exponent
# (int, scale: an integer column's text; age: that or "90+"): written between quotes as
# they are, without to_json's escaping (a third of the work).
PLAIN_KINDS = ("number", "yesno", "code", "int", "scale", "age")


def _plain(text: str) -> bool:
    return json.dumps(text, ensure_ascii=False) == f'"{text}"'


def _plain_column(plan: _Plan, name: str, plain=_plain) -> bool:
    """Is every text the column `name` can hold `plain` (by default: a JSON string's content
    as it is)? A field of a plain kind (its missing-data codes and, with labels, its labels
    plain too), a form's complete status, the event and repeating form (constants) or the
    repeat instance (a number)."""
    f = plan.fields.get(name)
    if name == "redcap_event_name":  # the events' texts (constants)
        return all(plain(plan.event_text(e)) for e in plan.export.event_list)
    if name == "redcap_repeat_instrument":  # the repeating forms' names or labels
        return all(plain(FORM_LABELS[form] if plan.labels else form)
                   for form in ("adverse_event", "device_component"))
    if name == "redcap_repeat_instance":  # row_number()
        return True
    if f is None:
        constants = (*COMPLETE_LABELS, *COMPLETE_LABELS.values())
        return name.endswith("_complete") and all(plain(t) for t in constants)
    if f.kind not in PLAIN_KINDS:
        return False
    if f.reason and not all(plain(r.label if plan.labels else r.redcap) for r in missing.REASONS.values()):
        return False
    return not plan.labels or f.kind == "number" or all(plain(label) for _, label in f.choices())


def _eav_refs(plan: _Plan) -> tuple[list[tuple[str, str]], list[str]]:
    """The eav exports' pieces over `g` (a flat row, `f`, with its head): each value field
    and its column; the four keys' columns (record, event, instrument, instance)."""
    index = {name: f"f.k{i}" for i, name in enumerate(plan.columns)}
    values = [(name, f"g.k{plan.columns.index(name)}") for name in plan.columns if name not in KEYS]
    keys = [index.get("record_id", "NULL::text"), index["redcap_event_name"],
            index["redcap_repeat_instrument"], index["redcap_repeat_instance"]]
    return values, keys


def _eav_json(plan: _Plan, flat: Sql) -> Sql:
    """REDCap's eav JSON objects from the flat rows, one text line per flat row holding its
    objects (one per non-empty value, in column order) each after a comma: the same text as
    `_json_rows` over `_eav`, with the record's keys written once per row, not once per
    value, and no row per value (`eav_json_stream` joins the lines and counts the objects)."""
    values, keys = _eav_refs(plan)
    head = Sql("concat(")
    for i, (name, ref) in enumerate(zip(EAV_NAMES[:4], keys, strict=True)):
        head.add(", " if i else "").add(f"%s::text, to_json(COALESCE({ref}, ''))::text",
                                        ("," if i else ",{") + json.dumps(name, ensure_ascii=False) + ":")
    head.add(", %s::text)", "," + json.dumps("field_name") + ":")
    width = len(plan.columns)
    # One || chain per value (faster than a concat() per value); NULL when the value is empty,
    # and concat() leaves it out.
    pieces = []
    for name, ref in values:
        key = json.dumps(name, ensure_ascii=False) + "," + json.dumps("value") + ":"
        if _plain_column(plan, name):
            pieces.append(Sql(f"(CASE WHEN {ref} IS NOT NULL THEN g.head || %s::text || {ref} || '\"}}' END)",
                              [key + '"']))
        else:
            pieces.append(Sql(f"(CASE WHEN {ref} IS NOT NULL THEN g.head || %s::text || to_json({ref})::text"
                              " || '}' END)", [key]))
    sql = Sql("SELECT ").extend(_concat(pieces))
    # OFFSET 0: the head is made once per row (a flattened subquery would repeat it per value).
    sql.add(" FROM (SELECT ").extend(head).add(" AS head, f.* FROM (").extend(flat)
    sql.add(f") AS f({', '.join(f'k{i}' for i in range(width))}) OFFSET 0) AS g")
    if values:
        return sql.add(f" WHERE COALESCE({', '.join(ref for _, ref in values)}) IS NOT NULL")
    return sql.add(" WHERE false")


def _csv_plain(text: str) -> bool:
    """Does COPY's CSV write `text` as it is (no quotes: not empty, no comma, quote or line end)?"""
    return bool(text) and not any(c in text for c in ',"\r\n')


def _csv_field(ref: str, plain: bool) -> str:
    """SQL of `ref`'s CSV field as COPY writes it (NULL an empty field; `ref` is never '')."""
    if plain:
        return f"COALESCE({ref}, '')"
    return (f"(CASE WHEN {ref} ~ '[\",\\r\\n]' THEN '\"' || replace({ref}, '\"', '\"\"') || '\"' "
            f"ELSE COALESCE({ref}, '') END)")


def _eav_csv(plan: _Plan, flat: Sql) -> Sql:
    """REDCap's eav CSV lines from the flat rows, one text per flat row holding its lines (one
    per non-empty value, in column order) joined by newlines: the same text as COPY of `_eav`,
    with one COPY row per flat row, not per value (49 M rows of the registry through
    psycopg's per-row loop took most of the 74 s, issue 21), streamed as lines
    (`pg.copy_stream`)."""
    values, keys = _eav_refs(plan)
    head = " || ',' || ".join(_csv_field(ref, False) for ref in keys) + " || ','"
    pieces = []
    for name, ref in values:
        field = _csv_field(ref, _plain_column(plan, name, _csv_plain))
        key = (name if _csv_plain(name) else '"' + name.replace('"', '""') + '"') + ","
        pieces.append(Sql(f"(CASE WHEN {ref} IS NOT NULL THEN g.head || %s::text || {field} END)", [key]))
    sql = Sql("SELECT ").extend(_lines(pieces))
    # OFFSET 0: the head is made once per row (a flattened subquery would repeat it per value).
    sql.add(f" FROM (SELECT {head} AS head, f.* FROM (").extend(flat)
    sql.add(f") AS f({', '.join(f'k{i}' for i in range(len(plan.columns)))}) OFFSET 0) AS g")
    if values:
        return sql.add(f" WHERE COALESCE({', '.join(ref for _, ref in values)}) IS NOT NULL")
    return sql.add(" WHERE false")


def _lines(parts: list[Sql]) -> Sql:
    """The non-NULL `parts` joined by newlines (concat_ws in groups of at most 90 arguments;
    a group of NULLs adds no line); NULL when every part is."""
    if len(parts) <= CONCAT_ARGS:
        sql = Sql("NULLIF(concat_ws(E'\\n'")
        for part in parts:
            sql.add(", ").extend(part)
        return sql.add("), '')")
    return _lines([_lines(parts[i:i + CONCAT_ARGS]) for i in range(0, len(parts), CONCAT_ARGS)])


def eav_json_stream(chunks: Iterator[bytes], counter) -> Iterator[bytes]:
    """The lines of `_eav_json` as one JSON array: the first object's comma becomes the '['."""
    seen = False
    for chunk in chunks:
        body = chunk.replace(b"\n", b"")
        if counter is not None:
            counter.rows += body.count(EAV_JSON_START)
        if not seen:
            body = b"[" + body[1:]
            seen = True
        yield body
    yield b"]" if seen else b"[]"


def record_sql(export, record_type: str, fmt: str) -> tuple[Sql, list[str]]:
    """The statement of an export (flat CSV: text columns; flat JSON: one object per row;
    eav: the lines or objects of a flat row per row) and its column names (the CSV header)."""
    plan = _Plan(export)
    if record_type == "eav":
        return (_eav_json if fmt == "json" else _eav_csv)(plan, plan.flat()), EAV_NAMES
    if fmt == "json":
        width = len(plan.columns)
        inner = Sql("SELECT * FROM (").extend(plan.flat(branch=True)).add(
            f") AS r0({', '.join(f'j{i}' for i in range(width))}, branch)")
        plain = frozenset(name for name in plan.columns if _plain_column(plan, name))
        names = [(name, f"j{i}") for i, name in enumerate(plan.columns)]
        return _json_rows(inner, "r", names, plain, plan.present), plan.columns
    return plan.flat(), plan.columns


def eav_rows_sql(export) -> Sql:
    """The eav rows as plain SQL rows, one per value (what `_eav_csv` writes, row by row): the
    benchmark's "COPY of the same rows" for the eav exports (bench/channels.py)."""
    plan = _Plan(export)
    return _eav(plan, plan.flat())[0]


def record_stream(export, record_type: str, fmt: str, counter, *,
                  label_headers: bool = False) -> Iterator[bytes]:
    """The bytes of a record export, as `interop.redcap._encode_rows` writes the Python rows."""
    sql, names = record_sql(export, record_type, fmt)
    db = Patient.objects.db
    if fmt == "json" and record_type == "eav":
        return eav_json_stream(pg.copy_stream(sql, db, lines=True), counter)
    if fmt == "json":
        return pg.joined(pg.copy_stream(sql, db, lines=True), first=b"[", between=b",", last=b"]",
                         empty=b"[]", counter=counter)
    if record_type == "eav":
        return _csv(names, pg.copy_stream(sql, db, lines=True), counter)  # lines: CSV lines
    header = names
    if label_headers and record_type == "flat":
        labels = export.header_labels()
        header = [labels.get(c, c) for c in names]
    return _csv(header, pg.copy_stream(sql, db, lines=False), counter)


def _csv(header: list[str], chunks: Iterator[bytes], counter) -> Iterator[bytes]:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(header)
    pending = buffer.getvalue().encode()
    for chunk in chunks:
        counter.rows += chunk.count(b"\n")  # no REDCap value holds a newline (no free text)
        yield pending + chunk
        pending = b""
    if pending:
        yield pending


__all__ = ["FORM_NAMES", "fast_available", "record_sql", "record_stream"]

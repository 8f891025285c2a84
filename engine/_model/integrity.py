"""Integrity constraints of a domain's database, and the violations a call brings in.

A domain's columns say what their values may be (``scaleenv._store.specs.FieldSpec``):
a foreign key (``ref``: the referenced table's primary key), a closed set (``enum``),
``unique``, ``required`` (not null), a number range (``minimum``/``maximum``) and a
``type``. :func:`constraints_of` turns a ``DomainSpec`` into :class:`Constraints`, a
small msgspec value that crosses the sandbox pipe once per worker.

:func:`check_delta` returns every violation a call's delta introduces: a created or
changed record whose column breaks a rule, a unique value now held twice, a deleted
record that something still points at. It looks only at the records the delta names
and the columns it changed (a fixture's own problems in untouched columns are not the
call's fault), so its cost follows the delta, not the database, once the per-column
indexes it needs exist: an :class:`IntegrityIndex` builds each one from the state the
first time a check needs it (unique values of one column, the holders of one foreign
key) and keeps it up to date from the deltas it is told were committed.
:func:`state_violations` checks a whole state (generated fixtures, initial task states).

Pure: no I/O, no clock; the sandbox's worker processes run it after every call.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol

import msgspec

if TYPE_CHECKING:  # the worker processes import this module without loading the store
    from scaleenv._store.specs import DomainSpec

Record = dict[str, Any]
StateView = Mapping[str, Mapping[str, Record]]
"""A database state as this module reads it: table -> key -> record (a DbState or a view)."""

ViolationKind = Literal["type", "required", "enum", "range", "primary_key", "dangling_ref", "still_referenced",
                        "duplicate"]


class TableRules(msgspec.Struct, frozen=True, omit_defaults=True, forbid_unknown_fields=True):
    """The constraints of one table (columns by name)."""

    primary_key: str
    refs: dict[str, str] = {}
    """Foreign keys: column -> the table whose record keys it holds (a ``list[str]`` column holds several)."""
    unique: list[str] = []
    enums: dict[str, list[str]] = {}
    required: list[str] = []
    ranges: dict[str, tuple[float | None, float | None]] = {}
    """Column -> (minimum, maximum), inclusive; None: unbounded on that side."""
    types: dict[str, str] = {}
    """Column -> ``str`` | ``int`` | ``float`` | ``bool`` | ``list[str]``."""


class Constraints(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A domain's integrity constraints, per table."""

    tables: dict[str, TableRules]


class Violation(msgspec.Struct, frozen=True):
    """One broken constraint: where (table, key, column), the value, and a sentence saying it."""

    kind: ViolationKind
    table: str
    key: str
    column: str
    value: Any
    message: str

    def __str__(self) -> str:
        return self.message


class Change(Protocol):
    """A record created (``before`` None), changed, or deleted (``after`` None) by a call."""

    @property
    def table(self) -> str: ...
    @property
    def key(self) -> str: ...
    @property
    def before(self) -> Record | None: ...
    @property
    def after(self) -> Record | None: ...


def constraints_of(spec: DomainSpec) -> Constraints:
    """The constraints a domain's schema declares (its tables' columns)."""
    tables: dict[str, TableRules] = {}
    for table in spec.tables:
        pk = table.primary_key
        fields = table.fields
        tables[table.name] = TableRules(
            primary_key=pk,
            refs={f.name: f.ref for f in fields if f.ref and f.name != pk},
            # A record key is unique by construction: the primary key needs no index.
            unique=[f.name for f in fields if f.unique and f.name != pk],
            enums={f.name: list(f.enum) for f in fields if f.enum},
            required=[f.name for f in fields if f.required and f.name != pk],
            ranges={f.name: (f.minimum, f.maximum) for f in fields if f.minimum is not None or f.maximum is not None},
            types={f.name: f.type for f in fields},
        )
    return Constraints(tables=tables)


# ---- values ---------------------------------------------------------------------------

_MISSING = object()
_TYPE_NAMES = {"str": "a str", "int": "an int", "float": "a number", "bool": "a bool", "list[str]": "a list of str"}


def _show(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _type_of(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _has_type(value: Any, wanted: str) -> bool:
    kind = type(value)
    if wanted == "str":
        return kind is str
    if wanted == "int":  # 3.0 is the JSON number 3 (canonical states do not tell them apart)
        return kind is int or (kind is float and value.is_integer())
    if wanted == "float":
        return kind is float or kind is int
    if wanted == "bool":
        return kind is bool
    if wanted == "list[str]":
        return (kind is list or kind is tuple) and all(type(v) is str for v in value)
    return True  # a type this version does not know: not checked


def _is_number(value: Any) -> bool:
    return (type(value) is int or type(value) is float) and value == value


def unique_key(value: Any) -> Any:
    """The hashable identity of a value for uniqueness: ``25`` and ``25.0`` are the same
    value, ``True`` and ``1`` are not, lists compare by content."""
    kind = type(value)
    if kind is str:
        return value
    if kind is bool:
        return ("bool", value)
    if kind is int or kind is float:
        return ("num", value)
    return ("json", msgspec.json.encode(value, order="deterministic"))


def _ref_targets(value: Any) -> list[Any]:
    """The keys a foreign-key column's value points at (a list column holds several)."""
    if value is None:
        return []
    if type(value) is list or type(value) is tuple:
        return [v for v in value if v is not None]
    return [value]


# ---- the state before a delta, read from the state after it -------------------------


class BeforeState(Mapping[str, Mapping[str, Record]]):
    """The state before ``delta``, read through the state after it (nothing is copied).

    The sandbox's worker holds only the state a call left behind; this view gives the
    checker the state the call started from.
    """

    def __init__(self, after: StateView, delta: Sequence[Change]) -> None:
        self._after = after
        self._changed: dict[str, dict[str, Record | None]] = {}
        for c in delta:
            self._changed.setdefault(c.table, {})[c.key] = c.before

    def __getitem__(self, table: str) -> Mapping[str, Record]:
        rows = self._after.get(table)
        changed = self._changed.get(table)
        if changed is None:
            if rows is None:
                raise KeyError(table)
            return rows
        return _BeforeTable(rows or {}, changed)

    def __iter__(self) -> Iterator[str]:
        return iter(set(self._after) | set(self._changed))

    def __len__(self) -> int:
        return len(set(self._after) | set(self._changed))


class _BeforeTable(Mapping[str, Record]):
    def __init__(self, after: Mapping[str, Record], changed: dict[str, Record | None]) -> None:
        self._after = after
        self._changed = changed

    def __getitem__(self, key: str) -> Record:
        if key in self._changed:
            before = self._changed[key]
            if before is None:
                raise KeyError(key)
            return before
        return self._after[key]

    def __iter__(self) -> Iterator[str]:
        for key in self._after:
            if key not in self._changed or self._changed[key] is not None:
                yield key
        for key, before in self._changed.items():
            if before is not None and key not in self._after:
                yield key

    def __len__(self) -> int:
        return sum(1 for _ in self)


# ---- indexes --------------------------------------------------------------------------


class IntegrityIndex:
    """Per-column indexes of a committed state, built when first needed and kept current.

    For a unique column: value -> keys holding it; for a foreign-key column: referenced
    key -> keys pointing at it. :meth:`commit` applies a committed delta to every index
    built so far (O(delta)); a call that is rolled back is simply not committed.
    """

    def __init__(self, constraints: Constraints) -> None:
        self.constraints = constraints
        self._values: dict[tuple[str, str], dict[Any, set[str]]] = {}
        self._refs: dict[tuple[str, str], dict[Any, set[str]]] = {}
        referenced_by: dict[str, list[tuple[str, str]]] = {}
        for table, rules in sorted(constraints.tables.items()):
            for column, target in sorted(rules.refs.items()):
                referenced_by.setdefault(target, []).append((table, column))
        self.referenced_by = referenced_by
        """Table -> the (table, column) foreign keys that point at its records."""
        self.columns = {table: _rule_columns(rules) for table, rules in constraints.tables.items()}
        """Table -> every column some rule of it names (sorted)."""

    @property
    def built(self) -> list[tuple[str, str, str]]:
        """The indexes built so far: (kind, table, column)."""
        return sorted([("unique", *k) for k in self._values] + [("ref", *k) for k in self._refs])

    def holders(self, before: StateView, table: str, column: str, value: Any) -> set[str]:
        """Keys of ``table`` whose ``column`` holds ``value`` in the committed state."""
        index = self._values.get((table, column))
        if index is None:
            index = self._values[(table, column)] = {}
            for key, record in (before.get(table) or {}).items():
                v = record.get(column)
                if v is not None:
                    index.setdefault(unique_key(v), set()).add(key)
        return index.get(unique_key(value), set())

    def pointing_at(self, before: StateView, table: str, column: str, target: str) -> set[str]:
        """Keys of ``table`` whose foreign key ``column`` holds ``target`` in the committed state."""
        index = self._refs.get((table, column))
        if index is None:
            index = self._refs[(table, column)] = {}
            for key, record in (before.get(table) or {}).items():
                for t in _ref_targets(record.get(column)):
                    if type(t) is str:
                        index.setdefault(t, set()).add(key)
        return index.get(target, set())

    def commit(self, delta: Iterable[Change]) -> None:
        """Bring the indexes built so far up to the state after ``delta`` (committed)."""
        if not self._values and not self._refs:
            return
        for c in delta:
            for (table, column), index in self._values.items():
                if table == c.table:
                    _move(index, c.key, _unique_values(c.before, column), _unique_values(c.after, column))
            for (table, column), index in self._refs.items():
                if table == c.table:
                    _move(index, c.key, _ref_values(c.before, column), _ref_values(c.after, column))


def _unique_values(record: Record | None, column: str) -> list[Any]:
    if record is None:
        return []
    v = record.get(column)
    return [] if v is None else [unique_key(v)]


def _ref_values(record: Record | None, column: str) -> list[Any]:
    if record is None:
        return []
    return [t for t in _ref_targets(record.get(column)) if type(t) is str]


def _move(index: dict[Any, set[str]], key: str, old: list[Any], new: list[Any]) -> None:
    for v in old:
        keys = index.get(v)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del index[v]
    for v in new:
        index.setdefault(v, set()).add(key)


# ---- the check ------------------------------------------------------------------------


def _changed_columns(before: Record, after: Record, columns: Iterable[str]) -> list[str]:
    out = []
    for col in columns:
        b, a = before.get(col, _MISSING), after.get(col, _MISSING)
        if b is a:
            continue
        if b is _MISSING or a is _MISSING or type(b) is not type(a) or b != a:
            out.append(col)
    return out


def check_delta(before: StateView, delta: Sequence[Change], constraints: Constraints,
                index: IntegrityIndex | None = None) -> list[Violation]:
    """Every violation of ``constraints`` that ``delta`` brings into ``before``.

    Checked: each created record's constrained columns, each changed record's changed
    constrained columns (type, required, enum, range, primary key equal to the record's
    key, foreign key pointing at an existing record after the call, unique value not held
    by another record after the call), and for each deleted record every foreign key that
    still points at it after the call. Sorted by (table, key, column, kind).

    ``index`` keeps per-column indexes across calls of one session (pass the same object
    each time and :meth:`IntegrityIndex.commit` each committed delta); without one a
    fresh index is built from ``before`` for this check alone.
    """
    if not delta:
        return []
    if index is None:
        index = IntegrityIndex(constraints)
    after_of: dict[tuple[str, str], Record | None] = {(c.table, c.key): c.after for c in delta}
    tables = constraints.tables
    out: list[Violation] = []

    def exists_after(table: str, key: str) -> bool:
        hit = after_of.get((table, key), _MISSING)
        if hit is not _MISSING:
            return hit is not None
        rows = before.get(table)
        return rows is not None and key in rows

    # Unique values held after the call by records the delta names: (table, column, value)
    # -> (key, whether the call wrote that column).
    written: dict[tuple[str, str, Any], list[tuple[str, bool]]] = {}
    to_check: list[tuple[Change, TableRules, list[str]]] = []
    for c in delta:
        rules = tables.get(c.table)
        if rules is None or c.after is None:
            continue
        columns = index.columns[c.table]
        cols = columns if c.before is None else _changed_columns(c.before, c.after, columns)
        to_check.append((c, rules, cols))
        for col in rules.unique:
            v = c.after.get(col)
            if v is not None:
                written.setdefault((c.table, col, unique_key(v)), []).append((c.key, col in cols))

    for c, rules, cols in to_check:
        assert c.after is not None
        for col in cols:
            _check_column(out, c.table, c.key, col, c.after, rules, exists_after)
        for col in rules.unique:
            if col in cols:
                v = c.after.get(col)
                if v is not None:
                    _check_unique(out, before, index, after_of, written, c.table, c.key, col, v)

    for c in delta:
        if c.after is None and c.before is not None:
            for table, column in index.referenced_by.get(c.table, ()):
                for holder in sorted(index.pointing_at(before, table, column, c.key)):
                    after = after_of.get((table, holder), _MISSING)
                    if after is None:
                        continue  # deleted in the same call
                    if after is _MISSING:
                        after = before[table][holder]
                    elif column in _changed_columns(before[table][holder], after, (column,)):
                        continue  # its new value was checked as a foreign key above
                    if c.key in _ref_targets(after.get(column)):
                        out.append(Violation(
                            "still_referenced", table, holder, column, c.key,
                            f"{c.table}[{c.key}] was deleted but {table}[{holder}].{column} still references it"))
    out.sort(key=lambda v: (v.table, v.key, v.column, v.kind))
    return out


def _rule_columns(rules: TableRules) -> list[str]:
    cols = {rules.primary_key, *rules.refs, *rules.unique, *rules.enums, *rules.required, *rules.ranges, *rules.types}
    return sorted(cols)


def _check_column(out: list[Violation], table: str, key: str, col: str, record: Record, rules: TableRules,
                  exists_after: Any) -> None:
    where = f"{table}[{key}].{col}"
    present = col in record
    value = record.get(col)
    if col == rules.primary_key:
        if value != key or type(value) is not str:
            what = "is missing" if not present else f"= {_show(value)} differs from the record's key {key!r}"
            out.append(Violation("primary_key", table, key, col, value, f"{where} (the primary key) {what}"))
        return
    if value is None:
        if col in rules.required:
            out.append(Violation("required", table, key, col, None,
                                 f"{where} is required but {'null' if present else 'missing'}"))
        return
    wanted = rules.types.get(col)
    if wanted is not None and not _has_type(value, wanted):
        out.append(Violation("type", table, key, col, value,
                             f"{where} = {_show(value)} is {_type_of(value)}, not {_TYPE_NAMES.get(wanted, wanted)}"))
        return
    allowed = rules.enums.get(col)
    if allowed is not None:
        values = value if type(value) is list or type(value) is tuple else [value]
        bad = [v for v in values if v not in allowed]
        if bad:
            choices = ", ".join(repr(a) for a in allowed[:12]) + (", ..." if len(allowed) > 12 else "")
            out.append(Violation("enum", table, key, col, value,
                                 f"{where} = {_show(bad[0])} is not one of {choices}"))
    bounds = rules.ranges.get(col)
    if bounds is not None and _is_number(value):
        low, high = bounds
        if low is not None and value < low:
            out.append(Violation("range", table, key, col, value, f"{where} = {_show(value)} is below its minimum {low:g}"))
        elif high is not None and value > high:
            out.append(Violation("range", table, key, col, value, f"{where} = {_show(value)} is above its maximum {high:g}"))
    target = rules.refs.get(col)
    if target is not None:
        for t in _ref_targets(value):
            if type(t) is not str or not exists_after(target, t):
                out.append(Violation("dangling_ref", table, key, col, t,
                                     f"{where} = {_show(t)} points at no record of {target}"))
                break


def _check_unique(out: list[Violation], before: StateView, index: IntegrityIndex,
                  after_of: dict[tuple[str, str], Record | None],
                  written: dict[tuple[str, str, Any], list[tuple[str, bool]]],
                  table: str, key: str, col: str, value: Any) -> None:
    ukey = unique_key(value)
    others: set[str] = set()
    for holder in index.holders(before, table, col, value):
        if holder == key:
            continue
        if (table, holder) not in after_of:
            others.add(holder)  # untouched by the call: still holds it
        # a holder the call changed or deleted is counted from `written` below
    for other, wrote in written.get((table, col, ukey), ()):
        # A record that kept the value is a duplicate of this one; two records the call
        # wrote with the same value are reported once, on the later key.
        if other != key and (not wrote or other < key):
            others.add(other)
    if others:
        first = min(others)
        out.append(Violation("duplicate", table, key, col, value,
                             f"{table}[{key}].{col} = {_show(value)} duplicates {table}[{first}] ({col} is unique)"))


class _Created:
    __slots__ = ("table", "key", "before", "after")

    def __init__(self, table: str, key: str, after: Record) -> None:
        self.table, self.key, self.before, self.after = table, key, None, after


def state_violations(state: StateView, constraints: Constraints) -> list[Violation]:
    """Every violation in a whole state (as if each of its records had just been created)."""
    delta = [_Created(table, key, record) for table, rows in sorted(state.items()) for key, record in sorted(rows.items())]
    return check_delta({}, delta, constraints)


def describe(violations: Sequence[Violation], limit: int = 10) -> str:
    """One line naming the violations (the first ``limit`` of them)."""
    head = "; ".join(v.message for v in violations[:limit])
    more = len(violations) - limit
    return head + (f"; and {more} more" if more > 0 else "")

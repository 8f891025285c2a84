"""Make a tool's pre-conditions hold (or break exactly one of them) in a database state.

This small solver over contracts serves three users:
- the procedural tester (stage 1): calls that satisfy every pre-condition, and for each
  pre-condition a call that breaks it, which must fail cleanly;
- dependency-aware expansion (stage 2): the entities a chain needs are exactly those
  that make each step's pre-conditions hold when it runs;
- distractors (stage 2): look-alike records that violate a pre-condition or an
  identifying attribute.

Everything is pure and seeded; states are never mutated in place.
"""

from __future__ import annotations

import math
import random
from typing import Any

from .contracts import (
    UNDEFINED,
    FieldRef,
    Literal,
    Param,
    RecordRef,
    Term,
    check_pre,
    eval_term,
    evaluate,
    parse_term,
    right_term,
)
from .dbgen import clone, field_value, make_record, new_key
from scaleenv._store.specs import Condition, DbState, DomainSpec, FieldSpec, ParamSpec, ToolSpec


class _Solver:
    def __init__(self, domain: DomainSpec, tool: ToolSpec, db: DbState, args: dict[str, Any], rng: random.Random) -> None:
        self.domain = domain
        self.tool = tool
        self.db = db
        self.args = args
        self.rng = rng

    # -- records -------------------------------------------------------------------
    def ensure_record(self, ref: RecordRef) -> tuple[str, dict[str, Any]] | None:
        """Make ``ref`` name an existing record (creating or choosing one); its (key, record)."""
        table = self.domain.table(ref.table)
        if table is None:
            return None
        rows = self.db.setdefault(ref.table, {})
        key = eval_term(ref.key, self.args, self.db)
        if key is UNDEFINED or key is None:
            if isinstance(ref.key, Param):
                key = self.rng.choice(sorted(rows)) if rows and self.rng.random() < 0.8 else None
                if key is None:
                    key, record = make_record(table, self.db, self.rng, domain=self.domain)
                    rows[key] = record
                self.args[ref.key.name] = key
            elif isinstance(ref.key, FieldRef):
                owner = self.ensure_record(ref.key.record)
                if owner is None:
                    return None
                key = self.rng.choice(sorted(rows)) if rows else None
                if key is None:
                    key, record = make_record(table, self.db, self.rng, domain=self.domain)
                    rows[key] = record
                owner[1][ref.key.field] = key
            else:
                return None
        key = str(key)
        if key not in rows:
            _, record = make_record(table, self.db, self.rng, key=key, domain=self.domain)
            rows[key] = record
        return key, rows[key]

    def set_term(self, term: Term, value: Any) -> bool:
        if isinstance(term, Param):
            self.args[term.name] = value
            return True
        if isinstance(term, FieldRef):
            found = self.ensure_record(term.record)
            if found is None:
                return False
            found[1][term.field] = value
            return True
        return False

    def value(self, term: Term) -> Any:
        if isinstance(term, FieldRef):
            self.ensure_record(term.record)
        return eval_term(term, self.args, self.db)

    # -- conditions ----------------------------------------------------------------
    def enforce(self, cond: Condition) -> None:
        left = parse_term(cond.left)
        right = right_term(cond)
        if cond.op == "exists" and isinstance(left, RecordRef):
            self.ensure_record(left)
            return
        if cond.op == "absent" and isinstance(left, RecordRef):
            key = eval_term(left.key, self.args, self.db)
            table = self.domain.table(left.table)
            if table is None:
                return
            if isinstance(left.key, Param) and (key is UNDEFINED or str(key) in self.db.get(left.table, {})):
                param = self.tool.param(left.key.name)
                fresh = new_key(table, self.db, self.rng)
                if param is not None and param.type == "str" and param.ref is None:
                    fresh = self._fresh_value(left.table, fresh)
                self.args[left.key.name] = fresh
            return
        if right is None:
            return
        if cond.op in ("some_eq", "none_eq") and isinstance(left, FieldRef):
            self._enforce_match(cond.op, left, right)
            return
        lval = self._left_value(left)
        if isinstance(right, Param) and eval_term(right, self.args, self.db) is UNDEFINED:
            # Choose the argument from the state: the user asks for what is there.
            target = lval
            if cond.op in ("ge", "gt", "le", "lt") and isinstance(lval, int | float) and not isinstance(lval, bool):
                target = self._numeric_partner(cond.op, lval)
            if target is not UNDEFINED and cond.op not in ("ne", "not_in"):
                self.args[right.name] = target
                return
        rval = self.value(right)
        if cond.op == "eq":
            self.set_term(left, rval)
        elif cond.op == "ne":
            if lval == rval:
                self.set_term(left, self._different(left, lval))
        elif cond.op == "in" and isinstance(rval, list) and rval:
            if lval not in rval:
                self.set_term(left, self.rng.choice(rval))
        elif cond.op == "not_in" and isinstance(rval, list):
            if lval in rval or lval is UNDEFINED:
                self.set_term(left, self._outside(left, rval))
        elif cond.op in ("ge", "gt", "le", "lt") and isinstance(rval, int | float) and not isinstance(rval, bool):
            ok = _compare(cond.op, lval, rval)
            if not ok:
                self.set_term(left, self._numeric_partner(cond.op, rval))

    def _enforce_match(self, op: str, left: FieldRef, right: Term) -> None:
        """some_eq: make a record carry the value; none_eq: make the value unused."""
        table = self.domain.table(left.record.table)
        if table is None:
            return
        rows = self.db.setdefault(table.name, {})
        value = eval_term(right, self.args, self.db)
        if op == "some_eq":
            if value is UNDEFINED and isinstance(right, Param):
                if not rows:
                    key, record = make_record(table, self.db, self.rng, domain=self.domain)
                    rows[key] = record
                record = rows[self.rng.choice(sorted(rows))]
                self.args[right.name] = record.get(left.field)
            elif value is not UNDEFINED and not any(r.get(left.field) == value for r in rows.values()):
                if rows and self.rng.random() < 0.5:
                    rows[self.rng.choice(sorted(rows))][left.field] = value
                else:
                    key, record = make_record(table, self.db, self.rng, domain=self.domain, overrides={left.field: value})
                    rows[key] = record
            return
        taken = {str(r.get(left.field)) for r in rows.values()}
        param = self.tool.param(right.name) if isinstance(right, Param) else None
        if param is not None and param.ref is not None and value is not UNDEFINED and str(value) in taken:
            # "nothing refers to this record any more" (a guarded delete): the records that do
            # are re-pointed at another record of the same table, or removed.
            others = sorted(k for k in self.db.get(param.ref, {}) if k != str(value))
            for key in sorted(k for k, r in rows.items() if str(r.get(left.field)) == str(value)):
                if others:
                    rows[key] = {**rows[key], left.field: self.rng.choice(others)}
                else:
                    del rows[key]
            return
        if isinstance(right, Param) and (value is UNDEFINED or str(value) in taken):
            spec = table.field(left.field)
            candidate = field_value(spec, table, self.db, self.rng, "x") if spec else f"{left.field}_new"
            while str(candidate) in taken:
                candidate = f"{candidate}_new"
            self.args[right.name] = candidate

    def _left_value(self, left: Term) -> Any:
        if isinstance(left, Param) and left.name not in self.args:
            param = self.tool.param(left.name)
            if param is not None:
                self.args[left.name] = self.random_param(param)
        return self.value(left)

    def _numeric_partner(self, op: str, anchor: float) -> Any:
        """A number that makes ``x op anchor`` hold, often exactly on the boundary."""
        is_int = isinstance(anchor, int)
        step = 1 if is_int else 0.5
        slack = self.rng.choice([0, 0, 1, 2, 3]) * step
        if op in ("ge", "gt"):
            v = anchor + slack + (step if op == "gt" else 0)
        else:
            v = anchor - slack - (step if op == "lt" else 0)
        if op in ("le", "lt") and v <= 0 and anchor > step:
            v = step if op == "lt" and anchor > step else anchor
        return int(v) if is_int else round(float(v), 2)

    def _fresh_value(self, table: str, default: str) -> str:
        return default

    def _different(self, term: Term, value: Any) -> Any:
        spec = self._field_spec(term)
        if spec is not None and spec.enum:
            others = [e for e in spec.enum if e != value]
            if others:
                return self.rng.choice(others)
        if isinstance(value, bool):
            return not value
        if isinstance(value, int | float):
            return value + 1
        return f"{value}_other"

    def _outside(self, term: Term, values: list[Any]) -> Any:
        spec = self._field_spec(term)
        if spec is not None and spec.enum:
            others = [e for e in spec.enum if e not in values]
            if others:
                return self.rng.choice(others)
        return "unavailable"

    def _field_spec(self, term: Term) -> FieldSpec | None:
        if isinstance(term, FieldRef):
            table = self.domain.table(term.record.table)
            return table.field(term.field) if table else None
        return None

    # -- params --------------------------------------------------------------------
    def random_param(self, param: ParamSpec) -> Any:
        if param.ref is not None:
            rows = self.db.get(param.ref, {})
            if rows:
                return self.rng.choice(sorted(rows))
        if param.type == "int":
            lo, hi = _window(1, 3, self._column(param))
            lo, hi = math.ceil(lo), math.floor(hi)
            return self.rng.randint(*((lo, hi) if lo <= hi else (1, 3)))
        if param.type == "float":
            return round(self.rng.uniform(*_window(1, 50, self._column(param))), 2)
        if param.type == "bool":
            return self.rng.random() < 0.5
        if param.type == "list[str]":
            return []
        # A string parameter that matches a field of a read table: take a real value.
        for table_name in self.tool.reads:
            table = self.domain.table(table_name)
            if table is None or table.field(param.name) is None:
                continue
            rows = self.db.setdefault(table_name, {})
            if not rows:
                # A lookup by value in an empty table: create the record being looked up.
                key, record = make_record(table, self.db, self.rng, domain=self.domain)
                rows[key] = record
            record = rows[self.rng.choice(sorted(rows))]
            return record.get(param.name)
        for table in self.domain.tables:
            f = table.field(param.name)
            if f is not None:
                return field_value(f, table, self.db, self.rng, "x")
        return f"{param.name}_{self.rng.randrange(1000)}"

    def _column(self, param: ParamSpec) -> FieldSpec | None:
        """The column a parameter is named after: in a table the tool writes, else one it reads."""
        for table_name in (*self.tool.writes, *self.tool.reads):
            table = self.domain.table(table_name)
            column = table.field(param.name) if table is not None else None
            if column is not None:
                return column
        return None

    def fill_params(self) -> None:
        for param in self.tool.params:
            if param.name not in self.args and param.required:
                self.args[param.name] = self.random_param(param)


def _window(lo: float, hi: float, column: FieldSpec | None) -> tuple[float, float]:
    """Where a number for ``column`` is drawn: ``lo..hi`` within the column's range (a value
    a call writes there must keep the schema's integrity); when they do not meet, a window
    as wide at the near end of the column's range."""
    if column is None or (column.minimum is None and column.maximum is None):
        return lo, hi
    low = column.minimum if column.minimum is not None else -math.inf
    high = column.maximum if column.maximum is not None else math.inf
    a, b = max(lo, low), min(hi, high)
    if a <= b:
        return a, b
    if hi < low:
        return low, min(low + (hi - lo), high)
    return max(high - (hi - lo), low), high


def _compare(op: str, a: Any, b: Any) -> bool:
    if not isinstance(a, int | float) or isinstance(a, bool):
        return False
    return {"ge": a >= b, "gt": a > b, "le": a <= b, "lt": a < b}[op]


def satisfy(
    domain: DomainSpec,
    tool: ToolSpec,
    db: DbState,
    rng: random.Random,
    args: dict[str, Any] | None = None,
    *,
    passes: int = 3,
) -> tuple[dict[str, Any], DbState] | None:
    """Arguments and a state (a modified copy of ``db``) in which every pre-condition holds.

    ``args`` fixes some arguments (e.g. bound from earlier chain steps). None when the
    solver cannot satisfy the contract (contradictory conditions).
    """
    solver = _Solver(domain, tool, clone(db), dict(args or {}), rng)
    pre = [c for c in tool.contract if c.when == "pre"]
    for _ in range(passes):
        for cond in pre:
            solver.enforce(cond)
        solver.fill_params()
        if not check_pre(tool, solver.args, solver.db):
            return solver.args, solver.db
    return None


def violate(
    domain: DomainSpec,
    tool: ToolSpec,
    index: int,
    args: dict[str, Any],
    db: DbState,
    rng: random.Random,
) -> tuple[dict[str, Any], DbState] | None:
    """From a satisfying (args, db), break contract condition ``index`` (a pre-condition).

    Returns the new (args, db), or None when this condition cannot be broken on its
    own. The result is checked: the condition really fails.
    """
    cond = tool.contract[index]
    if cond.when != "pre":
        return None
    args = dict(args)
    db = clone(db)
    solver = _Solver(domain, tool, db, args, rng)
    left = parse_term(cond.left)
    right = right_term(cond)
    if cond.op == "exists" and isinstance(left, RecordRef):
        table = domain.table(left.table)
        if table is None:
            return None
        if isinstance(left.key, Param):
            args[left.key.name] = f"{new_key(table, db, rng)}_missing"
        else:
            key = eval_term(left.key, args, db)
            db.get(left.table, {}).pop(str(key), None)
    elif cond.op == "absent" and isinstance(left, RecordRef):
        rows = db.get(left.table, {})
        if not rows or not isinstance(left.key, Param):
            return None
        args[left.key.name] = rng.choice(sorted(rows))
    elif cond.op in ("some_eq", "none_eq") and isinstance(right, Param) and isinstance(left, FieldRef):
        values = [r.get(left.field) for r in db.get(left.record.table, {}).values()]
        if cond.op == "some_eq":
            value = args.get(right.name)
            candidate = f"{value}.unknown" if isinstance(value, str) else "unknown"
            while candidate in values:
                candidate += "x"
            args[right.name] = candidate
        else:
            if not values:
                return None
            args[right.name] = rng.choice(sorted(values, key=str))
    elif right is not None:
        rval = eval_term(right, args, db)
        lval = eval_term(left, args, db)
        if cond.op == "eq":
            new = solver._different(left, lval)
        elif cond.op == "ne":
            new = rval
        elif cond.op == "in":
            new = solver._outside(left, rval if isinstance(rval, list) else [])
        elif cond.op == "not_in":
            if not isinstance(rval, list) or not rval:
                return None
            new = rng.choice(rval)
        elif cond.op in ("ge", "gt", "le", "lt"):
            if not isinstance(rval, int | float) or isinstance(rval, bool):
                return None
            opposite = {"ge": "lt", "gt": "le", "le": "gt", "lt": "ge"}[cond.op]
            new = solver._numeric_partner(opposite, rval)
        else:
            return None
        if isinstance(left, Literal) or not solver.set_term(left, new):
            return None
    else:
        return None
    if evaluate(cond, args, db).holds:
        return None
    return args, db

"""Tool contracts: parse and evaluate pre- and post-conditions over arguments and state.

A contract is a list of :class:`~scaleenv._store.specs.Condition`. Terms use a tiny
grammar: ``$param``, ``$param.field`` (a field of an object argument; ``$result`` is the
tool's return value, for post-conditions), ``table[TERM]`` (a record),
``table[TERM].field``, ``table[*].field`` (that field of every record, for
``some_eq``/``none_eq``), or a JSON literal. Evaluation is pure: it reads the arguments and the database state (and, for
post-conditions, the state before the call) and says whether the condition holds,
with a readable explanation when it does not.
"""

from __future__ import annotations

import json
import re
from typing import Any

import attrs

from scaleenv._store.specs import Condition, DbState, DomainSpec, Scalar, ToolSpec


class ContractSyntaxError(ValueError):
    """A condition term that does not parse (names the term and the position)."""


class _Undefined:
    """The value of a term whose record or field does not exist."""

    _instance: _Undefined | None = None

    def __new__(cls) -> _Undefined:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<undefined>"


UNDEFINED = _Undefined()


@attrs.frozen
class Param:
    name: str

    def __str__(self) -> str:
        return f"${self.name}"


@attrs.frozen
class ParamField:
    """``$name.field``: a field of an object-valued argument (``$result`` after the call)."""

    name: str
    field: str

    def __str__(self) -> str:
        return f"${self.name}.{self.field}"


@attrs.frozen
class Wildcard:
    """``*`` as a record key: every record of the table."""

    def __str__(self) -> str:
        return "*"


RESULT = "result"


@attrs.frozen
class Literal:
    value: Scalar | list[Scalar]

    def __str__(self) -> str:
        return json.dumps(self.value)


@attrs.frozen
class RecordRef:
    table: str
    key: Term

    def __str__(self) -> str:
        return f"{self.table}[{self.key}]"


@attrs.frozen
class FieldRef:
    record: RecordRef
    field: str

    def __str__(self) -> str:
        return f"{self.record}.{self.field}"


@attrs.frozen
class Count:
    """``count(table[*].field == TERM)``: how many records of the table have that value."""

    column: FieldRef
    value: Term

    def __str__(self) -> str:
        return f"count({self.column} == {self.value})"


Term = Param | ParamField | Wildcard | Literal | RecordRef | FieldRef | Count

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def error(self, message: str) -> ContractSyntaxError:
        return ContractSyntaxError(f"{message} at position {self.pos} in {self.text!r}")

    def skip_ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def count(self) -> Term:
        """``count(table[*].field == TERM)``, after the word ``count``."""
        self.pos += 1  # "("
        column = self.term()
        if not (isinstance(column, FieldRef) and isinstance(column.record.key, Wildcard)):
            raise self.error("count(...) needs table[*].field == TERM")
        self.skip_ws()
        if not self.text.startswith("==", self.pos):
            raise self.error("expected '==' in count(...)")
        self.pos += 2
        value = self.term()
        self.skip_ws()
        if self.pos >= len(self.text) or self.text[self.pos] != ")":
            raise self.error("expected ')' closing count(...)")
        self.pos += 1
        return Count(column, value)

    def term(self) -> Term:
        self.skip_ws()
        if self.pos >= len(self.text):
            raise self.error("expected a term")
        ch = self.text[self.pos]
        if ch == "$":
            self.pos += 1
            m = _IDENT.match(self.text, self.pos)
            if not m:
                raise self.error("expected a parameter name after '$'")
            self.pos = m.end()
            if self.pos < len(self.text) and self.text[self.pos] == ".":
                self.pos += 1
                fm = _IDENT.match(self.text, self.pos)
                if not fm:
                    raise self.error("expected a field name after '.'")
                self.pos = fm.end()
                return ParamField(m.group(), fm.group())
            return Param(m.group())
        if ch == "*":
            self.pos += 1
            return Wildcard()
        m = _IDENT.match(self.text, self.pos)
        if m and m.group() not in ("true", "false", "null"):
            self.pos = m.end()
            self.skip_ws()
            if m.group() == "count" and self.pos < len(self.text) and self.text[self.pos] == "(":
                return self.count()
            if self.pos >= len(self.text) or self.text[self.pos] != "[":
                return Literal(m.group())  # a bare word is a string: active means "active"
            self.pos += 1
            key = self.term()
            self.skip_ws()
            if self.pos >= len(self.text) or self.text[self.pos] != "]":
                raise self.error("expected ']'")
            self.pos += 1
            record = RecordRef(m.group(), key)
            if self.pos < len(self.text) and self.text[self.pos] == ".":
                self.pos += 1
                fm = _IDENT.match(self.text, self.pos)
                if not fm:
                    raise self.error("expected a field name after '.'")
                self.pos = fm.end()
                return FieldRef(record, fm.group())
            return record
        # A JSON literal: decode the longest prefix that parses.
        decoder = json.JSONDecoder()
        try:
            value, end = decoder.raw_decode(self.text, self.pos)
        except json.JSONDecodeError as exc:
            raise self.error(f"not a term ({exc.msg})") from None
        self.pos = end
        return Literal(value)


def parse_term(text: str) -> Term:
    parser = _Parser(text)
    term = parser.term()
    parser.skip_ws()
    if parser.pos != len(text):
        raise parser.error("unexpected text after term")
    return term


def right_term(cond: Condition) -> Term | None:
    if cond.right is None:
        return None
    if isinstance(cond.right, list):
        return Literal(cond.right)
    return parse_term(cond.right)


def eval_term(term: Term, args: dict[str, Any], db: DbState) -> Any:
    if isinstance(term, Param):
        return args.get(term.name, UNDEFINED)
    if isinstance(term, ParamField):
        value = args.get(term.name, UNDEFINED)
        return value.get(term.field, UNDEFINED) if isinstance(value, dict) else UNDEFINED
    if isinstance(term, Wildcard):
        return UNDEFINED
    if isinstance(term, Literal):
        return term.value
    if isinstance(term, Count):
        value = eval_term(term.value, args, db)
        rows = db.get(term.column.record.table, {})
        return sum(1 for r in rows.values() if value is not UNDEFINED and _same(r.get(term.column.field), value))
    if isinstance(term, RecordRef):
        key = eval_term(term.key, args, db)
        if key is UNDEFINED or key is None:
            return UNDEFINED
        return db.get(term.table, {}).get(str(key), UNDEFINED)
    if isinstance(term.record.key, Wildcard):
        return [r.get(term.field, UNDEFINED) for _, r in sorted(db.get(term.record.table, {}).items())]
    record = eval_term(term.record, args, db)
    if record is UNDEFINED or not isinstance(record, dict):
        return UNDEFINED
    return record.get(term.field, UNDEFINED)


def render(cond: Condition) -> str:
    """The readable one-line form of a condition."""
    prefix = "after: " if cond.when == "post" else ""
    if cond.op in ("exists", "absent", "unchanged"):
        return f"{prefix}{cond.op} {cond.left}" if cond.op != "unchanged" else f"{prefix}{cond.left} unchanged"
    right = json.dumps(cond.right) if isinstance(cond.right, list) else cond.right
    if cond.op in SELECTS:
        symbol = {"selects_eq": "==", "selects_contains": "contains", "selects_ge": ">=", "selects_le": "<="}[cond.op]
        return f"{prefix}the result lists the {cond.left} {symbol} {right}"
    if cond.op in ("some_eq", "none_eq"):
        return f"{prefix}{'some' if cond.op == 'some_eq' else 'no'} {cond.left} == {right}"
    symbol = {"eq": "==", "ne": "!=", "ge": ">=", "gt": ">", "le": "<=", "lt": "<"}.get(cond.op, cond.op.replace("_", " "))
    return f"{prefix}{cond.left} {symbol} {right}"


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _same(a: Any, b: Any) -> bool:
    na, nb = _num(a), _num(b)
    if na is not None and nb is not None:
        return _close(na, nb)
    return a == b


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))


@attrs.frozen
class Verdict:
    holds: bool
    detail: str


def evaluate(
    cond: Condition, args: dict[str, Any], db: DbState, before: DbState | None = None
) -> Verdict:
    """Evaluate one condition. Post-conditions need ``before`` (the state before the call).

    Terms of a post-condition are read in the state *after* the call, except the right
    side of increases_by/decreases_by and both sides' "before" value, read before it.
    """
    if cond.op in SELECTS:
        return check_selects([cond], args, db)
    left = parse_term(cond.left)
    right = right_term(cond)
    text = render(cond)
    if cond.op in ("exists", "absent"):
        value = eval_term(left, args, db)
        present = value is not UNDEFINED
        ok = present if cond.op == "exists" else not present
        return Verdict(ok, "" if ok else f"{text}: {left} {'does not exist' if cond.op == 'exists' else 'exists'}")
    lval = eval_term(left, args, db)
    if cond.op in ("increases_by", "decreases_by", "unchanged"):
        if before is None:
            raise ValueError(f"{text}: a {cond.op} condition needs the state before the call")
        old = eval_term(left, args, before)
        if cond.op == "unchanged":
            ok = old == lval
            return Verdict(ok, "" if ok else f"{text}: was {old!r}, now {lval!r}")
        assert right is not None
        amount = eval_term(right, args, before)
        a, o, d = _num(lval), _num(old), _num(amount)
        if a is None or o is None or d is None:
            return Verdict(False, f"{text}: not numbers (before {old!r}, after {lval!r}, amount {amount!r})")
        expected = o + d if cond.op == "increases_by" else o - d
        ok = _close(a, expected)
        return Verdict(ok, "" if ok else f"{text}: expected {expected!r} (was {old!r}, by {amount!r}), got {lval!r}")
    assert right is not None, f"{text}: missing right-hand side"
    rval = eval_term(right, args, db)
    if cond.op in ("some_eq", "none_eq"):
        values = lval if isinstance(lval, list) else []
        found = rval is not UNDEFINED and any(_same(v, rval) for v in values)
        ok = found if cond.op == "some_eq" else not found
        return Verdict(ok, "" if ok else f"{text}: {'no' if cond.op == 'some_eq' else 'a'} record has {rval!r}")
    if lval is UNDEFINED:
        return Verdict(False, f"{text}: {left} is undefined")
    if cond.op in ("in", "not_in"):
        if not isinstance(rval, list):
            return Verdict(False, f"{text}: right side is not a list")
        inside = lval in rval
        ok = inside if cond.op == "in" else not inside
        return Verdict(ok, "" if ok else f"{text}: {left} is {lval!r}")
    if cond.op in ("eq", "ne"):
        equal = (_num(lval) is not None and _num(rval) is not None and _close(_num(lval), _num(rval))) or lval == rval  # type: ignore[arg-type]
        ok = equal if cond.op == "eq" else not equal
        return Verdict(ok, "" if ok else f"{text}: {left} is {lval!r}, right side is {rval!r}")
    a, b = _num(lval), _num(rval)
    if a is None or b is None:
        return Verdict(False, f"{text}: not numbers ({lval!r}, {rval!r})")
    ok = {"ge": a >= b, "gt": a > b, "le": a <= b, "lt": a < b}[cond.op]
    return Verdict(ok, "" if ok else f"{text}: {left} is {lval!r}, right side is {rval!r}")


SELECTS = ("selects_eq", "selects_contains", "selects_ge", "selects_le")
"""Ops that say which records a list result holds (post-conditions of listing tools)."""


def _passes(op: str, value: Any, wanted: Any) -> bool:
    if op == "selects_eq":
        return _same(value, wanted)
    if op == "selects_contains":
        return isinstance(value, str) and str(wanted).lower() in value.lower()
    a, b = _num(value), _num(wanted)
    if a is None or b is None:  # dates and other text compare as text
        if isinstance(value, str) and isinstance(wanted, str):
            return value >= wanted if op == "selects_ge" else value <= wanted
        return False
    return a >= b if op == "selects_ge" else a <= b


def selected(conds: list[Condition], args: dict[str, Any], db: DbState) -> tuple[str, list[str]]:
    """The table the ``selects_*`` conditions filter and the keys of its records that pass
    every filter (a filter whose right side is undefined or None, an argument left out,
    does not filter), sorted."""
    filters = []
    table = ""
    for cond in conds:
        left = parse_term(cond.left)
        assert isinstance(left, FieldRef)
        table = left.record.table
        wanted = eval_term(right_term(cond), args, db)  # type: ignore[arg-type]
        if wanted is UNDEFINED or wanted is None:
            continue
        filters.append((cond.op, left.field, wanted))
    rows = db.get(table, {})
    keys = [k for k in sorted(rows) if all(_passes(op, rows[k].get(f), w) for op, f, w in filters)]
    return table, keys


def _canonical_item(item: Any) -> str:
    if isinstance(item, dict):
        return json.dumps({k: (int(v) if isinstance(v, float) and v.is_integer() else v) for k, v in item.items()},
                          sort_keys=True, default=str)
    return json.dumps(item, default=str)


def check_selects(conds: list[Condition], args: dict[str, Any], db: DbState) -> Verdict:
    """Whether ``$result`` lists exactly the records passing every filter of ``conds``."""
    text = "; ".join(render(c) for c in conds)
    result = args.get(RESULT, UNDEFINED)
    if not isinstance(result, list):
        return Verdict(False, f"{text}: the result is not a list ({str(result)[:80]})")
    table, keys = selected(conds, args, db)
    rows = db.get(table, {})
    if not result:
        return Verdict(not keys, "" if not keys else f"{text}: the result is empty; {len(keys)} record(s) pass, "
                                                    f"e.g. {table}[{keys[0]}]")
    fields = sorted({f for item in result if isinstance(item, dict) for f in item})
    wanted = sorted(_canonical_item({f: rows[k].get(f) for f in fields}) for k in keys)
    got = sorted(_canonical_item(item) for item in result)
    if wanted == got:
        return Verdict(True, "")
    extra = [g for g in got if g not in wanted]
    missing = [w for w in wanted if w not in got]
    why = []
    if extra:
        why.append(f"{len(extra)} listed item(s) should not be there, e.g. {extra[0][:160]}")
    if missing:
        why.append(f"{len(missing)} record(s) are missing, e.g. {missing[0][:160]}")
    if not why:
        why.append(f"{len(got)} item(s) listed where {len(wanted)} pass (duplicates?)")
    return Verdict(False, f"{text}: " + "; ".join(why))


def check_pre(tool: ToolSpec, args: dict[str, Any], db: DbState) -> list[Verdict]:
    """Every pre-condition that does not hold (empty list: the call is allowed)."""
    return [v for c in tool.contract if c.when == "pre" for v in [evaluate(c, args, db)] if not v.holds]


def check_post(
    tool: ToolSpec, args: dict[str, Any], before: DbState, after: DbState, result: Any = None
) -> list[Verdict]:
    """Every post-condition that does not hold after a successful call (``$result`` is its return value)."""
    scope = {**args, RESULT: result}
    failed = [v for c in tool.contract if c.when == "post" and c.op not in SELECTS
              for v in [evaluate(c, scope, after, before)] if not v.holds]
    selects = [c for c in tool.contract if c.when == "post" and c.op in SELECTS]
    if selects:  # the filters of a listing hold together: the result is what passes all of them
        verdict = check_selects(selects, scope, after)
        if not verdict.holds:
            failed.append(verdict)
    return failed


def term_tables_fields(term: Term) -> list[tuple[str, str | None]]:
    """Every (table, field-or-None) a term touches, for schema validation."""
    out: list[tuple[str, str | None]] = []
    if isinstance(term, RecordRef):
        out.append((term.table, None))
        out.extend(term_tables_fields(term.key))
    elif isinstance(term, FieldRef):
        out.append((term.record.table, term.field))
        out.extend(term_tables_fields(term.record.key))
    elif isinstance(term, Count):
        out.extend(term_tables_fields(term.column))
        out.extend(term_tables_fields(term.value))
    return out


def term_params(term: Term) -> list[str]:
    if isinstance(term, Param | ParamField):
        return [term.name]
    if isinstance(term, RecordRef):
        return term_params(term.key)
    if isinstance(term, FieldRef):
        return term_params(term.record.key)
    if isinstance(term, Count):
        return term_params(term.value)
    return []


def validate_contract(domain: DomainSpec, tool: ToolSpec) -> list[str]:
    """Problems with a tool's contract: unknown tables, fields or params; bad syntax."""
    problems: list[str] = []
    param_names = {p.name for p in tool.params}
    for i, cond in enumerate(tool.contract):
        where = f"tool {tool.name} condition {i} ({cond.left!r})"
        try:
            terms = [parse_term(cond.left)]
            r = right_term(cond)
            if r is not None:
                terms.append(r)
        except ContractSyntaxError as exc:
            problems.append(f"{where}: {exc}")
            continue
        if cond.when == "pre" and cond.op in ("increases_by", "decreases_by", "unchanged"):
            problems.append(f"{where}: {cond.op} is only meaningful after the call (when='post')")
        if cond.op in ("exists", "absent") and not isinstance(terms[0], RecordRef):
            problems.append(f"{where}: {cond.op} needs a record term like table[$key]")
        wild = isinstance(terms[0], FieldRef) and isinstance(terms[0].record.key, Wildcard)
        if cond.op in ("some_eq", "none_eq", *SELECTS) and not wild:
            problems.append(f"{where}: {cond.op} needs a term like table[*].field on the left")
        if wild and cond.op not in ("some_eq", "none_eq", *SELECTS):
            problems.append(f"{where}: table[*] is only meaningful with some_eq / none_eq / selects_*")
        if cond.op in SELECTS and (cond.when != "post" or not tool.returns_list):
            problems.append(f"{where}: {cond.op} is an after-condition of a tool that returns a list")
        if cond.op not in ("exists", "absent", "unchanged") and cond.right is None:
            problems.append(f"{where}: {cond.op} needs a right-hand side")
        for term in terms:
            for table, field in term_tables_fields(term):
                spec = domain.table(table)
                if spec is None:
                    problems.append(f"{where}: unknown table {table!r}")
                elif field is not None and spec.field(field) is None:
                    problems.append(f"{where}: table {table!r} has no field {field!r}")
            for name in term_params(term):
                if name == RESULT and cond.when == "post":
                    continue
                if name not in param_names:
                    problems.append(f"{where}: unknown parameter ${name}")
    selects_tables = set()
    for cond in tool.contract:
        if cond.op in SELECTS:
            try:
                left = parse_term(cond.left)
            except ContractSyntaxError:
                continue
            if isinstance(left, FieldRef):
                selects_tables.add(left.record.table)
    if len(selects_tables) > 1:
        problems.append(f"tool {tool.name}: its selects_* conditions filter several tables {sorted(selects_tables)}; "
                        "a listing lists one table")
    return problems

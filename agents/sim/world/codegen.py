"""Tool code from a ToolSpec and its contract (what the simulated coder writes).

The code follows the sandbox's tool convention: one function
``def <tool>(db, <params>...)`` over ``db`` (table -> key -> record), raising the
provided ``ToolError`` when a pre-condition fails, mutating ``db`` in place, returning
a JSON-able dict (or list of dicts). It stays inside the restricted subset: no imports,
no names starting with ``_``, no f-strings, only the allowed builtins.

The translation is generic over the contract grammar of ``scaleenv._model.contracts``:
pre-conditions become guards in order, post-conditions become updates (amounts read
before any update), a written table no condition names gets a new record with a key
derived from the state. ``generate(..., bug=KIND)`` injects one realistic bug.

``generate`` also returns, per contract condition, the lines that implement it: the
simulated reviewer looks for them in the code it is shown.
"""

from __future__ import annotations

import json
import random
from typing import Any

import attrs

from scaleenv._model.contracts import (
    RESULT,
    SELECTS,
    Count,
    FieldRef,
    Literal,
    Param,
    ParamField,
    RecordRef,
    Term,
    Wildcard,
    parse_term,
    render,
    right_term,
    term_tables_fields,
)
from scaleenv._store.specs import Condition, DomainSpec, TableSpec, ToolSpec


BUG_KINDS = (
    "missing_check", "wrong_key", "off_by_one", "wrong_transition", "forgot_update",
    # A listing ignores one of its filters, or matches a keyword exactly instead of within the text.
    "wrong_filter",
    # A new record starts in the wrong status (caught by ``after: t[$result.id].status == ...``).
    "wrong_initial_status",
    # A lookup finds that a record matches but returns another one (the first of the table).
    "wrong_record",
)

_RESERVED = {
    "db", "ToolError", "len", "range", "sorted", "min", "max", "sum", "abs", "round", "str", "int", "float",
    "bool", "list", "dict", "set", "tuple", "enumerate", "zip", "any", "all", "isinstance", "reversed",
    "key", "rec", "out", "new_id", "n", "value", "limit", "record", "found",
    # builtins the sandbox policy forbids naming (scaleenv._sandbox.policy.FORBIDDEN_NAMES)
    "open", "eval", "exec", "compile", "getattr", "setattr", "delattr", "hasattr", "globals", "locals", "vars",
    "type", "dir", "input", "print", "breakpoint", "help", "exit", "quit", "id", "hash", "object", "super",
    "memoryview", "bytearray", "bytes", "classmethod", "staticmethod", "property", "iter", "next", "aiter",
    "anext", "callable", "issubclass", "copyright", "credits", "license", "format", "repr", "match", "case",
}
_FLIP = {"ge": "gt", "gt": "ge", "le": "lt", "lt": "le"}
_PY_OP = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}


@attrs.define
class Generated:
    code: str
    bug: str | None
    # "pre:<i>" / "post:<i>" / "lookup" -> the lines (stripped) that implement it.
    features: dict[str, list[str]]
    detail: str = ""


def _lit(value: Any) -> str:
    return repr(value)


def _msg(text: str) -> str:
    return json.dumps(text)


def _singular(table: str) -> str:
    if table.endswith("ies"):
        return table[:-3] + "y"
    if table.endswith(("sses", "ches", "shes", "xes")):
        return table[:-2]
    if table.endswith("s") and not table.endswith("ss"):
        return table[:-1]
    return table


def _key_prefix(table: str) -> str:
    letters = [c for c in _singular(table) if c.isalpha()]
    return "".join(letters[:3]) or "rec"


def _uses_result(term: Term | None) -> bool:
    """Whether a term reads the tool's return value (``$result...``)."""
    if isinstance(term, Param | ParamField):
        return term.name == RESULT
    if isinstance(term, RecordRef):
        return _uses_result(term.key)
    if isinstance(term, FieldRef):
        return _uses_result(term.record.key)
    return False


def is_result_post(cond: Condition) -> bool:
    """A post-condition about the return value (the created or found record, a listing, a
    count), not an update to make."""
    if cond.when != "post":
        return False
    if cond.op in SELECTS:
        return True
    return _uses_result(parse_term(cond.left)) or _uses_result(right_term(cond))


def _is_match(cond: Condition) -> bool:
    """``some_eq`` / ``none_eq`` over ``table[*].field``."""
    if cond.op not in ("some_eq", "none_eq"):
        return False
    left = parse_term(cond.left)
    return isinstance(left, FieldRef) and isinstance(left.record.key, Wildcard)


def _lookup_pre(domain: DomainSpec, tool: ToolSpec) -> int | None:
    """The index of the ``some_eq`` pre-condition that is the tool's lookup (find_x_by_email)."""
    lookup = _lookup_field(domain, tool)
    target = _target_table(domain, tool)
    if lookup is None or target is None:
        return None
    for i, c in enumerate(tool.contract):
        if c.when == "pre" and c.op == "some_eq" and _is_match(c):
            left = parse_term(c.left)
            assert isinstance(left, FieldRef)
            if left.record.table == target.name and left.field == lookup and right_term(c) == Param(lookup):
                return i
    return None


def created_table(domain: DomainSpec, tool: ToolSpec) -> TableSpec | None:
    """The table a creation tool adds a record to: written, not named by a param or a (non-$result) condition."""
    if not tool.mutates:
        return None
    named = {t for c in tool.contract if c.op not in ("some_eq", "none_eq", *SELECTS)
             for term in [parse_term(c.left)] if not _uses_result(term) for t, _ in _tables(term)}
    refs = {p.ref for p in tool.params if p.ref}
    for tname in tool.writes:
        if tname in named or tname in refs:
            continue
        spec = domain.table(tname)
        if spec is not None:
            return spec
    return None


def _initial_sites(domain: DomainSpec, tool: ToolSpec) -> list[tuple[int, list[str]]]:
    """Posts fixing an enum field of the created record to a literal: (index, the other values)."""
    created = created_table(domain, tool)
    if created is None:
        return []
    out = []
    for i, c in enumerate(tool.contract):
        if c.when != "post" or c.op != "eq" or not is_result_post(c):
            continue
        left, right = parse_term(c.left), right_term(c)
        if isinstance(left, FieldRef) and left.record.table == created.name and isinstance(right, Literal):
            field = created.field(left.field)
            if field is not None and field.enum:
                others = [v for v in field.enum if v != right.value]
                if others:
                    out.append((i, others))
    return out


def applicable_bugs(domain: DomainSpec, tool: ToolSpec) -> list[str]:
    kinds = []
    pres = [c for c in tool.contract if c.when == "pre"]
    posts = [c for c in tool.contract if c.when == "post" and not is_result_post(c)]
    if pres or _lookup_field(domain, tool) is not None:
        kinds.append("missing_check")
    if (len(domain.tables) > 1 and any(c.op == "exists" and isinstance(parse_term(c.left), RecordRef)
                                       and isinstance(parse_term(c.left).key, Param) for c in pres)) \
            or _lookup_field(domain, tool) is not None:
        kinds.append("wrong_key")  # (looking a key up in another table needs another table)
    if any(c.op in _FLIP for c in pres) or any(c.op in ("increases_by", "decreases_by") for c in posts):
        kinds.append("off_by_one")
    if any(_transition_options(domain, c) for c in posts):
        kinds.append("wrong_transition")
    if any(c.op in ("eq", "increases_by", "decreases_by") for c in posts):
        kinds.append("forgot_update")
    if _initial_sites(domain, tool):
        kinds.append("wrong_initial_status")
    if _lookup_pre(domain, tool) is not None:
        kinds.append("wrong_record")
    if any(c.op in SELECTS for c in tool.contract):
        kinds.append("wrong_filter")
    return kinds


def _transition_options(domain: DomainSpec, cond: Condition) -> list[str]:
    if cond.when != "post" or cond.op != "eq" or not isinstance(cond.right, str) or is_result_post(cond):
        return []
    left, right = parse_term(cond.left), right_term(cond)
    if not isinstance(left, FieldRef) or not isinstance(right, Literal):
        return []
    table = domain.table(left.record.table)
    field = table.field(left.field) if table else None
    if field is None or not field.enum:
        return []
    return [v for v in field.enum if v != right.value]


def _target_table(domain: DomainSpec, tool: ToolSpec) -> TableSpec | None:
    """The table a read tool answers from: the read table holding every returned field."""
    names = {f.name for f in tool.returns}
    best = None
    for tname in tool.reads:
        t = domain.table(tname)
        if t is None or not names <= {f.name for f in t.fields}:
            continue
        if t.primary_key in names:
            return t
        best = best or t
    return best


def _lookup_field(domain: DomainSpec, tool: ToolSpec) -> str | None:
    """A single-record read by a non-key field (find_x_by_email): that field's name."""
    if tool.mutates or tool.returns_list:
        return None
    target = _target_table(domain, tool)
    if target is None:
        return None
    for p in tool.params:
        if p.ref is None and target.field(p.name) is not None and p.name != target.primary_key:
            return p.name
    return None


class _Writer:
    def __init__(self, domain: DomainSpec, tool: ToolSpec, bug: str | None, rng: random.Random) -> None:
        self.domain, self.tool, self.bug, self.rng = domain, tool, bug, rng
        self.lines: list[str] = []
        self.features: dict[str, list[str]] = {}
        self.bound: dict[str, str] = {}  # str(RecordRef) -> local variable
        self.found: str | None = None  # the local holding the record a lookup (some_eq) found
        self.matches = 0  # some_eq searches emitted (each binds found, found2, ...)
        self.used = set(_RESERVED) | {p.name for p in tool.params}
        self.detail = ""

    def emit(self, line: str, indent: int = 1, feature: str | None = None) -> None:
        self.lines.append("    " * indent + line)
        if feature is not None:
            self.features.setdefault(feature, []).append(line.strip())

    def var_for(self, rec: RecordRef) -> str:
        base = rec.key.name[:-3] if isinstance(rec.key, Param) and rec.key.name.endswith("_id") else _singular(rec.table)
        if isinstance(rec.key, Param) and not rec.key.name.endswith("_id"):
            base = _singular(rec.table)
        name, i = base, 2
        while name in self.used:
            name, i = f"{base}{i}", i + 1
        self.used.add(name)
        return name

    def key_expr(self, term: Term) -> str:
        if isinstance(term, Param):
            return f"str({term.name})"
        return f"str({self.expr(term)})"

    def expr(self, term: Term) -> str:
        if isinstance(term, Param):
            return term.name
        if isinstance(term, Literal):
            return _lit(term.value)
        if isinstance(term, RecordRef):
            var = self.bound.get(str(term))
            return var if var else f"db[{term.table!r}].get({self.key_expr(term.key)})"
        var = self.bound.get(str(term.record))
        if var:
            return f"{var}.get({term.field!r})"
        return f"(db[{term.record.table!r}].get({self.key_expr(term.record.key)}) or {{}}).get({term.field!r})"

    def bind(self, rec: RecordRef, feature: str | None = None, check: bool = True, table: str | None = None,
             key: Term | None = None, why: str = "") -> str:
        """Guard that a record exists (ToolError otherwise) and bind it to a local."""
        if str(rec) in self.bound:
            return self.bound[str(rec)]
        for inner in _records_in(rec.key):
            self.bind(inner)
        var = self.var_for(rec)
        tname = table or rec.table
        kexpr = self.key_expr(key if key is not None else rec.key)
        what = _singular(rec.table).replace("_", " ")
        if check:
            message = why or f"{what} not found"
            self.emit(f"if {kexpr} not in db[{tname!r}]:", feature=feature)
            self.emit(f"raise ToolError({_msg(message + ': ')} + {kexpr})", 2, feature=feature)
            self.emit(f"{var} = db[{tname!r}][{kexpr}]")
        else:
            self.emit(f"{var} = db[{tname!r}].get({kexpr}, {{}})")
        self.bound[str(rec)] = var
        return var

    def bind_all(self, *terms: Term | None) -> None:
        for term in terms:
            if term is None:
                continue
            for rec in _records_in(term):
                self.bind(rec)


def _records_in(term: Term) -> list[RecordRef]:
    """The records a term reads, innermost first (for binding in order)."""
    if isinstance(term, RecordRef):
        return [*_records_in(term.key), term]
    if isinstance(term, FieldRef):
        return _records_in(term.record)
    return []


def _numeric_guard(w: _Writer, left: str, right: str, op: str, left_is_lit: bool, right_is_lit: bool) -> str:
    parts = []
    if not left_is_lit:
        parts.append(f"isinstance({left}, (int, float)) and not isinstance({left}, bool)")
    if not right_is_lit:
        parts.append(f"isinstance({right}, (int, float)) and not isinstance({right}, bool)")
    parts.append(f"{left} {_PY_OP[op]} {right}")
    return "if not (" + " and ".join(parts) + "):"


def generate(domain: DomainSpec, tool: ToolSpec, bug: str | None = None, rng: random.Random | None = None) -> Generated:
    """The tool's code; with ``bug`` (one of BUG_KINDS applicable to the tool) one injected bug."""
    rng = rng or random.Random(0)
    w = _Writer(domain, tool, bug, rng)
    pres = [(i, c) for i, c in enumerate(tool.contract) if c.when == "pre"]
    # Posts about $result (the created or found record) are met by creating/finding it, not by an update.
    result_posts = [(i, c) for i, c in enumerate(tool.contract) if is_result_post(c)]
    posts = [(i, c) for i, c in enumerate(tool.contract) if c.when == "post" and not is_result_post(c)]
    lookup = _lookup_field(domain, tool)
    lookup_pre = _lookup_pre(domain, tool)

    # Choose the bug's site up front.
    skip_pre: int | None = None
    wrong_table_pre: int | None = None
    flip_pre: int | None = None
    bump_post: int | None = None
    transition_post: tuple[int, str] | None = None
    drop_post: int | None = None
    lookup_bug: str | None = None
    initial_post: tuple[int, str] | None = None
    if bug == "missing_check":
        if pres:
            soft = [i for i, c in pres if c.op != "exists"]
            skip_pre = rng.choice(soft or [i for i, _ in pres])
        else:
            lookup_bug = "no_raise"
    elif bug == "wrong_key":
        sites = [i for i, c in pres if c.op == "exists" and isinstance(parse_term(c.left), RecordRef)
                 and isinstance(parse_term(c.left).key, Param)]
        if sites:
            wrong_table_pre = rng.choice(sites)
        else:
            lookup_bug = "wrong_field"
    elif bug == "off_by_one":
        sites = [("pre", i) for i, c in pres if c.op in _FLIP] + \
                [("post", i) for i, c in posts if c.op in ("increases_by", "decreases_by")]
        kind, idx = rng.choice(sites)
        if kind == "pre":
            flip_pre = idx
        else:
            bump_post = idx
    elif bug == "wrong_transition":
        sites = [(i, opts) for i, c in posts for opts in [_transition_options(domain, c)] if opts]
        idx, opts = rng.choice(sites)
        transition_post = (idx, rng.choice(opts))
    elif bug == "forgot_update":
        drop_post = rng.choice([i for i, c in posts if c.op in ("eq", "increases_by", "decreases_by")])
    elif bug == "wrong_initial_status":
        idx, opts = rng.choice(_initial_sites(domain, tool))
        initial_post = (idx, rng.choice(opts))
    elif bug == "wrong_record":
        if lookup_pre is None:
            raise ValueError(f"bug kind 'wrong_record' does not apply to {tool.name}")
        lookup_bug = "first_record"
    elif bug == "wrong_filter":
        if not any(c.op in SELECTS for c in tool.contract):
            raise ValueError(f"bug kind 'wrong_filter' does not apply to {tool.name}")
    elif bug is not None:
        raise ValueError(f"unknown bug kind {bug!r}")

    params = ", ".join(["db"] + [p.name if p.required else f"{p.name}=None" for p in tool.params])
    w.lines.append(f"def {tool.name}({params}):")
    doc = tool.description.replace('"""', "'")
    w.emit(f'"""{doc}"""')

    # Pre-conditions, in order.
    for i, cond in pres:
        feat = f"pre:{i}"
        left = parse_term(cond.left)
        right = right_term(cond)
        why = cond.why or render(cond)
        if i == skip_pre:
            w.detail = f"missing check of {render(cond)}"
            if cond.op == "some_eq" and isinstance(left, FieldRef) and right is not None:
                # The record is still searched for, but nothing stops the call when none matches.
                _emit_match(w, i, cond, left, right, why, skipped=True, lookup=i == lookup_pre, lookup_bug=None)
                continue
            if cond.op == "exists" and isinstance(left, RecordRef):
                for inner in _records_in(left.key):
                    w.bind(inner)
                var = w.var_for(left)
                w.emit(f"{var} = db[{left.table!r}].get({w.key_expr(left.key)}, {{}})")
                w.bound[str(left)] = var
            continue
        if _is_match(cond):
            assert isinstance(left, FieldRef) and right is not None
            _emit_match(w, i, cond, left, right, why, skipped=False,
                        lookup=i == lookup_pre, lookup_bug=lookup_bug if i == lookup_pre else None)
            continue
        if cond.op in ("exists", "absent"):
            assert isinstance(left, RecordRef)
            if cond.op == "exists":
                if i == wrong_table_pre:
                    others = [t.name for t in domain.tables if t.name != left.table]
                    alt = rng.choice(others) if others else left.table
                    w.detail = f"wrong key: looks {left} up in {alt!r}"
                    w.bind(left, feature=feat, table=alt, why=why)
                else:
                    w.bind(left, feature=feat, why=why)
            else:
                w.bind_all(left.key)
                kexpr = w.key_expr(left.key)
                w.emit(f"if {kexpr} in db[{left.table!r}]:", feature=feat)
                w.emit(f"raise ToolError({_msg(why + ': ')} + {kexpr})", 2, feature=feat)
            continue
        w.bind_all(left, right)
        lx, rx = w.expr(left), w.expr(right) if right is not None else "None"
        if cond.op in _PY_OP:
            op = _FLIP[cond.op] if i == flip_pre else cond.op
            if i == flip_pre:
                w.detail = f"off by one: {render(cond)} checked with {_PY_OP[op]}"
            w.emit(f"value = {lx}", feature=feat)
            w.emit(f"limit = {rx}", feature=feat)
            w.emit(_numeric_guard(w, "value", "limit", op, False, isinstance(right, Literal)), feature=feat)
        elif cond.op == "eq":
            w.emit(f"if {lx} != {rx}:", feature=feat)
        elif cond.op == "ne":
            w.emit(f"if {lx} == {rx}:", feature=feat)
        elif cond.op == "in":
            w.emit(f"if {lx} not in {rx}:", feature=feat)
        elif cond.op == "not_in":
            w.emit(f"if {lx} in {rx}:", feature=feat)
        else:  # increases_by etc. are post-only; nothing to guard
            continue
        w.emit(f"raise ToolError({_msg(why)})", 2, feature=feat)

    # Records the post-conditions touch must exist too (a missing one is a clean error).
    for _, cond in posts:
        if cond.op in ("exists", "absent"):
            continue
        w.bind_all(parse_term(cond.left), right_term(cond))

    # Creation: a written table that no condition names (other than through $result) gets a new record.
    created_spec = created_table(domain, tool)
    created: tuple[TableSpec, str] | None = (created_spec, "new_id") if created_spec is not None else None

    # Amounts are read before anything changes.
    amounts: dict[int, str] = {}
    for i, cond in posts:
        if cond.op in ("increases_by", "decreases_by") and i != drop_post:
            name = f"amount{len(amounts) + 1}"
            rx = w.expr(right_term(cond))  # type: ignore[arg-type]
            if i == bump_post:
                w.detail = f"off by one: {render(cond)} uses amount + 1"
                rx = f"{rx} + 1"
            w.emit(f"{name} = {rx}", feature=f"post:{i}")
            amounts[i] = name

    if created is not None:
        spec, _ = created
        tname, prefix = spec.name, _key_prefix(spec.name)
        w.emit(f"n = len(db[{tname!r}]) + 1", feature="create")
        w.emit(f"new_id = {prefix + '_'!r} + str(n).zfill(4)", feature="create")
        w.emit(f"while new_id in db[{tname!r}]:", feature="create")
        w.emit("n = n + 1", 2)
        w.emit(f"new_id = {prefix + '_'!r} + str(n).zfill(4)", 2)
        # What the post-conditions on the new record ($result.<key>) say its fields are.
        preset: dict[str, tuple[int, str]] = {}
        stored: list[int] = []
        for i, cond in result_posts:
            left = parse_term(cond.left)
            on_new = _new_record_ref(left, spec)
            if cond.op == "exists" and on_new:
                stored.append(i)
            elif cond.op == "eq" and isinstance(left, FieldRef) and _new_record_ref(left.record, spec):
                right = right_term(cond)
                if isinstance(right, Param):
                    param = tool.param(right.name)
                    fexpr = f"str({right.name})" if param is not None and param.ref else right.name
                elif isinstance(right, Literal):
                    fexpr = _lit(right.value)
                    if initial_post and initial_post[0] == i:
                        fexpr = _lit(initial_post[1])
                        w.detail = f"wrong initial status: a new {_singular(tname)} starts as {initial_post[1]!r}"
                else:
                    continue
                preset[left.field] = (i, fexpr)
        fields = _new_record_fields(w, domain, tool, spec)
        w.emit("record = {", feature="create")
        for fname, fexpr in fields:
            i_post, fexpr = preset.get(fname, (None, fexpr))
            w.emit(f"{fname!r}: {fexpr},", 2, feature=None if i_post is None else f"post:{i_post}")
        w.emit("}")
        w.emit(f"db[{tname!r}][new_id] = record", feature="create")
        for i in stored:
            w.features.setdefault(f"post:{i}", []).append(f"db[{tname!r}][new_id] = record")

    for i, cond in posts:
        feat = f"post:{i}"
        left = parse_term(cond.left)
        if i == drop_post:
            w.detail = f"forgot the update {render(cond)}"
            continue
        if cond.op == "absent" and isinstance(left, RecordRef):
            w.emit(f"del db[{left.table!r}][{w.key_expr(left.key)}]", feature=feat)
            continue
        if not isinstance(left, FieldRef):
            continue
        var = w.bound.get(str(left.record)) or w.bind(left.record)
        if cond.op == "eq":
            rx = w.expr(right_term(cond))  # type: ignore[arg-type]
            if transition_post and transition_post[0] == i:
                rx = _lit(transition_post[1])
                w.detail = f"wrong transition: sets {left} to {transition_post[1]!r}"
            w.emit(f"{var}[{left.field!r}] = {rx}", feature=feat)
        elif cond.op in ("increases_by", "decreases_by"):
            sign = "+" if cond.op == "increases_by" else "-"
            w.emit(f"{var}[{left.field!r}] = {var}[{left.field!r}] {sign} {amounts[i]}", feature=feat)

    _emit_return(w, domain, tool, lookup, lookup_bug, created)
    return Generated(code="\n".join(w.lines) + "\n", bug=bug, features=w.features, detail=w.detail)


def _new_record_ref(term: Term, spec: TableSpec) -> bool:
    """``table[$result.<pk>]``: the record the tool creates."""
    return (isinstance(term, RecordRef) and term.table == spec.name and isinstance(term.key, ParamField)
            and term.key.name == RESULT and term.key.field == spec.primary_key)


def _emit_match(w: _Writer, i: int, cond: Condition, left: FieldRef, right: Term, why: str, *, skipped: bool,
                lookup: bool, lookup_bug: str | None) -> None:
    """some_eq: find the first matching record (ToolError when none); none_eq: ToolError when one matches."""
    feat = f"pre:{i}"
    table = left.record.table
    w.bind_all(right)
    rx = w.expr(right)
    if cond.op == "none_eq":
        w.emit(f"for key in sorted(db[{table!r}]):", feature=feat)
        w.emit(f"if db[{table!r}][key].get({left.field!r}) == {rx}:", 2, feature=feat)
        w.emit(f"raise ToolError({_msg(why + ': ')} + str({rx}))", 3, feature=feat)
        return
    w.matches += 1
    var, n = ("found", 2) if w.matches == 1 else (f"found{w.matches}", w.matches + 1)
    while var != "found" and var in w.used:
        var, n = f"found{n}", n + 1
    w.used.add(var)
    match_feat = "lookup" if lookup else feat
    field = left.field
    if lookup_bug == "wrong_field":
        spec = w.domain.table(table)
        pk = spec.primary_key if spec else field
        others = [f.name for f in spec.fields if f.type == "str" and f.name not in (field, pk)] if spec else []
        field = w.rng.choice(others) if others else pk
        w.detail = f"wrong key: matches {left.field!r} against field {field!r}"
    w.emit(f"{var} = None")
    w.emit(f"for key in sorted(db[{table!r}]):")
    w.emit(f"rec = db[{table!r}][key]", 2)
    w.emit(f"if rec.get({field!r}) == {rx}:", 2, feature=match_feat)
    if lookup_bug == "first_record":
        w.emit(f"{var} = db[{table!r}][sorted(db[{table!r}])[0]]", 3)
        w.detail = f"wrong record: returns the first {_singular(table)}, not the one whose {left.field} matches"
    else:
        w.emit(f"{var} = rec", 3, feature=match_feat)
    w.emit("break", 3)
    if skipped:
        w.emit(f"if {var} is None:")
        w.emit(f"{var} = {{}}", 2)
    else:
        w.emit(f"if {var} is None:", feature=feat)
        w.emit(f"raise ToolError({_msg(why + ': ')} + str({rx}))", 2, feature=feat)
    if lookup:
        w.found = var


def _tables(term: Term) -> list[tuple[str, str | None]]:
    return term_tables_fields(term)


def _new_record_fields(w: _Writer, domain: DomainSpec, tool: ToolSpec, spec: TableSpec) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    params = {p.name: p for p in tool.params}
    qty = next((p.name for p in tool.params if p.ref is None and p.required and p.type in ("int", "float")
                and p.name in ("quantity", "qty", "units", "count", "nights", "days", "seats", "tickets")), None)
    price = None
    for p in tool.params:
        rec = w.bound.get(f"{p.ref}[${p.name}]") if p.ref else None
        table = domain.table(p.ref) if p.ref else None
        if rec and table and table.field("price") is not None:
            price = f"{rec}.get('price')"
    for f in spec.fields:
        if f.name == spec.primary_key:
            expr = "new_id"
        elif f.name in params:
            expr = f"str({f.name})" if params[f.name].ref else f.name
        elif f.ref and any(p.ref == f.ref for p in tool.params):
            expr = "str(" + next(p.name for p in tool.params if p.ref == f.ref) + ")"
        elif f.enum:
            expr = _lit(f.enum[0])
        elif f.name in ("total", "amount", "cost") and price is not None:
            expr = f"{price} * {qty}" if qty else price
        else:
            expr = {"str": "''", "int": "0", "float": "0.0", "bool": "False", "list[str]": "[]"}[f.type]
        out.append((f.name, expr))
    return out


def _emit_return(w: _Writer, domain: DomainSpec, tool: ToolSpec, lookup: str | None, lookup_bug: str | None,
                 created: tuple[TableSpec, str] | None) -> None:
    names = [f.name for f in tool.returns]

    def proj(var: str) -> str:
        return "{" + ", ".join(f"{n!r}: {var}.get({n!r})" for n in names) + "}"

    if created is not None and set(names) <= {f.name for f in created[0].fields}:
        w.emit(f"return {proj('record')}")
        return
    counts = [(i, c) for i, c in enumerate(tool.contract) if c.when == "post" and c.op == "eq"
              and isinstance(parse_term(c.left), ParamField) and isinstance(right_term(c), Count)]
    if counts:
        _emit_counts(w, counts)
        return
    selects = [(i, c) for i, c in enumerate(tool.contract) if c.when == "post" and c.op in SELECTS]
    if tool.returns_list and selects:
        _emit_listing(w, tool, selects, proj)
        return
    target = _target_table(domain, tool)
    if tool.returns_list and target is not None:
        # Filter by the params: a ref param matches the target's field referencing its table.
        conds = []
        for p in tool.params:
            if p.ref == target.name:
                conds.append(f"key == str({p.name})")
            elif p.ref is not None:
                fk = next((f.name for f in target.fields if f.ref == p.ref), None)
                if fk is None and target.field(p.name) is not None:
                    fk = p.name
                if fk is not None:
                    conds.append(f"rec.get({fk!r}) == str({p.name})")
            elif target.field(p.name) is not None:
                conds.append(f"rec.get({p.name!r}) == {p.name}")
        w.emit("out = []")
        w.emit(f"for key in sorted(db[{target.name!r}]):")
        w.emit(f"rec = db[{target.name!r}][key]", 2)
        if conds:
            w.emit(f"if {' and '.join(conds)}:", 2, feature="filter")
            w.emit(f"out.append({proj('rec')})", 3)
        else:
            w.emit(f"out.append({proj('rec')})", 2)
        w.emit("return out")
        return
    if lookup is not None and target is not None and w.found is not None:
        w.emit(f"return {proj(w.found)}")
        return
    if lookup is not None and target is not None:
        field = lookup
        if lookup_bug == "wrong_field":
            others = [f.name for f in target.fields if f.type == "str" and f.name not in (lookup, target.primary_key)]
            field = w.rng.choice(others) if others else target.primary_key
            w.detail = f"wrong key: matches {lookup!r} against field {field!r}"
        w.emit("found = None")
        w.emit(f"for key in sorted(db[{target.name!r}]):")
        w.emit(f"rec = db[{target.name!r}][key]", 2)
        w.emit(f"if rec.get({field!r}) == {lookup}:", 2, feature="lookup")
        w.emit("found = rec", 3)
        w.emit("break", 3)
        if lookup_bug == "no_raise":
            w.detail = "missing check: no error when nothing matches"
            w.emit("if found is None:")
            w.emit("found = {}", 2)
        else:
            what = _singular(target.name).replace("_", " ")
            w.emit("if found is None:", feature="lookup")
            w.emit(f"raise ToolError({_msg(f'no {what} with {lookup} ')} + str({lookup}))", 2, feature="lookup")
        w.emit(f"return {proj('found')}")
        return
    # A single record named by a param: the first bound record of the target (or any) table.
    var = None
    if target is not None:
        var = next((v for k, v in w.bound.items() if k.startswith(target.name + "[$")), None)
    if var is None:
        var = next(iter(w.bound.values()), None)
    if var is None:
        w.emit("return {}")
    else:
        w.emit(f"return {proj(var)}")


def _emit_counts(w: _Writer, counts: list[tuple[int, Condition]]) -> None:
    """``$result.<field> == count(table[*].column == X)``: count the records and return the counts."""
    out = []
    for k, (i, cond) in enumerate(counts):
        left, right = parse_term(cond.left), right_term(cond)
        assert isinstance(left, ParamField) and isinstance(right, Count)
        table, column = right.column.record.table, right.column.field
        w.bind_all(right.value)
        var = "n" if k == 0 else f"n{k + 1}"
        w.emit(f"{var} = 0", feature=f"post:{i}")
        w.emit(f"for key in sorted(db[{table!r}]):", feature=f"post:{i}")
        w.emit(f"if db[{table!r}][key].get({column!r}) == {w.expr(right.value)}:", 2, feature=f"post:{i}")
        w.emit(f"{var} = {var} + 1", 3, feature=f"post:{i}")
        out.append(f"{left.field!r}: {var}")
    w.emit("return {" + ", ".join(out) + "}")


def _emit_listing(w: _Writer, tool: ToolSpec, selects: list[tuple[int, Condition]], proj: Any) -> None:
    """A listing filtered by its selects_* post-conditions (an argument left out filters nothing)."""
    dropped = w.rng.choice([i for i, _ in selects]) if w.bug == "wrong_filter" else None
    clauses: list[tuple[int, str]] = []
    table = ""
    for i, cond in selects:
        left, right = parse_term(cond.left), right_term(cond)
        assert isinstance(left, FieldRef) and right is not None
        table = left.record.table
        w.bind_all(right)
        value = w.expr(right)
        field = f"rec.get({left.field!r})"
        optional = isinstance(right, Param) and (p := tool.param(right.name)) is not None and not p.required
        if cond.op == "selects_eq":
            test = f"{field} == {value}"
        elif cond.op == "selects_contains":
            test = f"str({value}).lower() in str({field} or '').lower()"
            if i == dropped:
                test, dropped = f"{field} == {value}", None
                w.detail = f"wrong filter: matches {left.field!r} exactly instead of within the text"
        else:
            sign = ">=" if cond.op == "selects_ge" else "<="
            test = f"{field} is not None and {field} {sign} {value}"
        if i == dropped:
            w.detail = f"wrong filter: ignores {render(cond)}"
            continue
        clauses.append((i, f"({value} is None or {test})" if optional else f"({test})"))
    w.emit("out = []")
    w.emit(f"for key in sorted(db[{table!r}]):")
    w.emit(f"rec = db[{table!r}][key]", 2)
    if clauses:
        w.emit(f"if {' and '.join(c for _, c in clauses)}:", 2, feature="filter")
        for i, _ in clauses:
            w.features.setdefault(f"post:{i}", []).append(f"if {' and '.join(c for _, c in clauses)}:")
        w.emit(f"out.append({proj('rec')})", 3)
    else:
        w.emit(f"out.append({proj('rec')})", 2)
    w.emit("return out")

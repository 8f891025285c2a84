"""The simulated tester: test cases for one tool against the state it was given.

Cases are labelled by the contract itself (``check_pre`` against the given state), so a
bug-free tool passes them all: valid calls (with the expected record changes computed
from the post-conditions), boundary calls around each numeric pre-condition, unknown
ids, bad-state calls (a record that breaks a pre-condition), unknown lookup values.
"""

from __future__ import annotations

import random
from typing import Any

from scaleenv._model.contracts import UNDEFINED, FieldRef, Literal, Param, RecordRef, check_pre, eval_term, evaluate, parse_term, right_term
from scaleenv._store.specs import DbState, DomainSpec, ToolSpec


from .codegen import _is_match, _lookup_field, is_result_post
from scaleenv._model.contracts import SELECTS
from scaleenv._model.dbgen import field_value
from .states import STREETS

MAX_CASES = 16


def _post_eq_params(tool: ToolSpec) -> set[str]:
    out = set()
    for c in tool.contract:
        # Params a post-condition stores (update_x_email's email), not those a new record merely echoes.
        if c.when == "post" and c.op == "eq" and isinstance(c.right, str) and not is_result_post(c):
            r = right_term(c)
            if isinstance(r, Param):
                out.add(r.name)
    return out


def _candidates(domain: DomainSpec, tool: ToolSpec, state: DbState, rng: random.Random) -> dict[str, list[Any]]:
    fresh = _post_eq_params(tool)
    unused: dict[str, FieldRef] = {}  # params that must not be taken yet (none_eq): fresh values
    for c in tool.contract:
        if c.when == "pre" and c.op == "none_eq" and isinstance(right_term(c), Param):
            left = parse_term(c.left)
            if isinstance(left, FieldRef):
                unused[right_term(c).name] = left  # type: ignore[union-attr]
    enum_params: dict[str, list[Any]] = {}
    for c in tool.contract:
        if c.when == "pre" and c.op == "in" and isinstance(c.right, list):
            left = parse_term(c.left)
            if isinstance(left, Param):
                enum_params[left.name] = list(c.right)
    # Listing filters: values taken from the column each one filters (a word of a text for a
    # keyword, so a filter matching whole values only is caught).
    filtered: dict[str, list[Any]] = {}
    for c in tool.contract:
        if c.op in SELECTS and isinstance(right_term(c), Param):
            left = parse_term(c.left)
            assert isinstance(left, FieldRef)
            values = [rec.get(left.field) for rec in state.get(left.record.table, {}).values() if rec.get(left.field) is not None]
            if c.op == "selects_contains":
                pieces = sorted({w.strip(".,").lower() for v in values for w in str(v).split() if len(w) > 3})
                filtered[right_term(c).name] = pieces[:8] or ["zz"]  # type: ignore[union-attr]
            elif values:
                filtered[right_term(c).name] = sorted(set(values), key=str)[:8]  # type: ignore[union-attr]
    out: dict[str, list[Any]] = {}
    for p in tool.params:
        if p.name in filtered:
            out[p.name] = [None, *filtered[p.name]] if not p.required else filtered[p.name]
            continue
        if p.name in unused:
            column = unused[p.name]
            table = domain.table(column.record.table)
            spec = table.field(column.field) if table else None
            taken = {str(r.get(column.field)) for r in state.get(column.record.table, {}).values()}
            made = [field_value(spec, table, state, rng, "x") for _ in range(3)] if spec and table else []
            out[p.name] = [v for v in made if str(v) not in taken] or [f"new_{p.name}_{rng.randrange(1000, 9999)}"]
            continue
        if p.ref:
            vals: list[Any] = sorted(state.get(p.ref, {}))
        elif p.name in enum_params:
            vals = enum_params[p.name]
        elif p.name in fresh:
            if p.name == "email":
                vals = [f"new.contact{rng.randrange(100, 999)}@example.com"]
            elif p.type == "str":
                vals = [f"{rng.randrange(1, 99)} {rng.choice(STREETS)}, please ring twice"]
            else:
                vals = [3]
        else:
            seen = sorted({str(rec[p.name]) for t in tool.reads for rec in state.get(t, {}).values()
                           if p.type == "str" and p.name in rec and rec[p.name] is not None})
            column = next(((t, f) for tn in (*tool.writes, *tool.reads) for t in [domain.table(tn)] if t is not None
                           for f in [t.field(p.name)] if f is not None), None)
            if seen:
                vals = seen
            elif column is not None and p.type in ("int", "float") and (column[1].kind or column[1].maximum is not None):
                made = {field_value(column[1], column[0], state, rng, "x") for _ in range(3)}
                if column[1].minimum is not None:  # the smallest value: what little is left can still be asked for
                    made.add(int(column[1].minimum) if p.type == "int" else float(column[1].minimum))
                vals = sorted(made, key=str)
            elif p.type == "int":
                vals = [1, 2, 3]
            elif p.type == "float":
                vals = [20.0, 55.5]
            elif p.type == "bool":
                vals = [True, False]
            elif p.type == "list[str]":
                vals = [["a"]]
            else:
                vals = [rng.choice(("Great service", "Arrived late", "Would use again"))]
        out[p.name] = vals or [None]
    return out


def expected_changes(tool: ToolSpec, args: dict[str, Any], state: DbState) -> list[dict[str, Any]]:
    """What the post-conditions say the records look like after a valid call."""
    changes = []
    for c in tool.contract:
        if c.when != "post" or is_result_post(c):
            # About the returned record: its key is not known before the call (the engine checks these).
            continue
        left = parse_term(c.left)
        if c.op in ("exists", "absent") and isinstance(left, RecordRef):
            key = eval_term(left.key, args, state)
            if key is not UNDEFINED and key is not None:
                changes.append({"table": left.table, "key": str(key), "deleted": c.op == "absent"})
            continue
        if not isinstance(left, FieldRef):
            continue
        key = eval_term(left.record.key, args, state)
        if key is UNDEFINED or key is None:
            continue
        before = eval_term(left, args, state)
        right = right_term(c)
        if c.op == "eq" and right is not None:
            value = eval_term(right, args, state)
        elif c.op in ("increases_by", "decreases_by") and right is not None:
            amount = eval_term(right, args, state)
            if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in (before, amount)):
                continue
            value = before + amount if c.op == "increases_by" else before - amount
        elif c.op == "unchanged":
            value = before
        else:
            continue
        if value is UNDEFINED:
            continue
        changes.append({"table": left.record.table, "key": str(key), "field": left.field, "value": value})
    return changes


def plan_cases(domain: DomainSpec, tool: ToolSpec, state: DbState, rng: random.Random) -> list[dict[str, Any]]:
    cands = _candidates(domain, tool, state, rng)
    lookup = _lookup_field(domain, tool)
    names = [p.name for p in tool.params]
    cases: list[dict[str, Any]] = []
    seen: set[str] = set()

    def label(args: dict[str, Any]) -> str:
        if check_pre(tool, args, state):
            return "error"
        if lookup is not None:
            target = [rec for t in tool.reads for rec in state.get(t, {}).values() if rec.get(lookup) == args.get(lookup)]
            if not target:
                return "error"
        return "ok"

    def add(name: str, args: dict[str, Any], note: str = "") -> None:
        sig = repr(sorted(args.items()))
        if sig in seen or len(cases) >= MAX_CASES:
            return
        seen.add(sig)
        expect = label(args)
        case: dict[str, Any] = {"name": name, "args": args, "expect": expect}
        if expect == "ok" and tool.mutates:
            case["expect_changes"] = expected_changes(tool, args, state)
        if note:
            case["note"] = note
        cases.append(case)

    # A pool of random argument sets, with the pre-conditions each one breaks.
    pool = []
    tries = 300 if names else 1
    for _ in range(tries):
        args = {n: rng.choice(cands[n]) for n in names}
        pool.append((args, [v.detail for v in check_pre(tool, args, state)]))
    valid = [a for a, bad in pool if not bad and label(a) == "ok"]
    for i, args in enumerate(valid[:2]):
        add(f"valid_{i + 1}", args, "a valid call on existing records")
    if any(c.op in SELECTS for c in tool.contract):  # listings: each filter on its own, then together
        for p in tool.params:
            filters = [v for v in cands.get(p.name, []) if v is not None]
            if filters and not p.required:
                add(f"filter_{p.name}", {**{q.name: None for q in tool.params if not q.required},
                                         **{q.name: (valid[0] if valid else {}).get(q.name) for q in tool.params if q.required},
                                         p.name: rng.choice(filters)}, f"only the {p.name} filter")
        for i, args in enumerate(valid[2:4]):
            add(f"filters_{i + 1}", args, "several filters at once")
    base = valid[0] if valid else (pool[0][0] if pool else {})

    pres = [(i, c) for i, c in enumerate(tool.contract) if c.when == "pre"]
    # Boundaries around numeric pre-conditions on a parameter.
    for i, c in pres:
        if c.op not in ("ge", "gt", "le", "lt"):
            continue
        left, right = parse_term(c.left), right_term(c)
        for side, other in ((left, right), (right, left)):
            if not isinstance(side, Param) or other is None:
                continue
            edge = eval_term(other, base, state)
            if not isinstance(edge, int | float) or isinstance(edge, bool):
                continue
            # "beyond": the value on the wrong side of the bound.
            wrong_low = (c.op in ("ge", "gt")) == (side is left)
            step = 1 if isinstance(edge, int) else 0.5
            add(f"boundary_{side.name}_equal", {**base, side.name: edge}, f"{side.name} exactly at the bound of {c.left} {c.op} {c.right}")
            add(f"boundary_{side.name}_beyond", {**base, side.name: edge - step if wrong_low else edge + step},
                f"{side.name} just past the bound")
    # A parameter compared with a literal: a value the literal rules out.
    for i, c in pres:
        left, right = parse_term(c.left), right_term(c)
        if not isinstance(left, Param) or not isinstance(right, Literal):
            continue
        if c.op == "in" and isinstance(right.value, list):
            add(f"invalid_{left.name}", {**base, left.name: f"not_a_{left.name}"}, f"{left.name} outside {right.value}")
        elif c.op in ("ne", "not_in"):
            bad = right.value[0] if isinstance(right.value, list) and right.value else right.value
            add(f"forbidden_{left.name}", {**base, left.name: bad}, f"{left.name} is {bad!r}")
        elif c.op == "eq":
            add(f"mismatched_{left.name}", {**base, left.name: f"not_{right.value}"}, f"{left.name} is not {right.value!r}")
    # Unknown ids.
    for p in tool.params:
        if p.ref:
            add(f"unknown_{p.name}", {**base, p.name: f"{p.ref[:3]}_missing_{rng.randrange(1000, 9999)}"}, f"no such {p.ref} record")
    if lookup is not None:
        add(f"unknown_{lookup}", {**base, lookup: f"nobody{rng.randrange(100, 999)}@example.invalid"}, "nothing matches")
    # Matches over a whole table: a value no record has (some_eq), one a record already has (none_eq).
    for i, c in pres:
        right = right_term(c)
        if not _is_match(c) or not isinstance(right, Param):
            continue
        left = parse_term(c.left)
        assert isinstance(left, FieldRef)
        if c.op == "some_eq" and right.name != lookup:
            add(f"unknown_{right.name}", {**base, right.name: f"unknown_{right.name}_{rng.randrange(100, 999)}"},
                f"no {left.record.table} record has this {left.field}")
        elif c.op == "none_eq":
            taken = sorted({rec.get(left.field) for rec in state.get(left.record.table, {}).values()
                            if isinstance(rec.get(left.field), str | int | float)}, key=str)
            if taken:
                value = rng.choice(taken)
                add(f"taken_{right.name}", {**base, right.name: value},
                    f"a {left.record.table} record already has {left.field} {value!r}")
    # Bad state: a record breaking one pre-condition while the others hold.
    for i, c in pres:
        if c.op == "exists":
            continue
        for args, bad in pool:
            if len(bad) == 1 and check_pre(tool, args, state) and _breaks_only(tool, i, args, state):
                add(f"bad_state_{i}", args, f"breaks: {bad[0]}")
                break
    return cases


def _breaks_only(tool: ToolSpec, index: int, args: dict[str, Any], state: DbState) -> bool:
    for i, c in enumerate(tool.contract):
        if c.when != "pre":
            continue
        holds = evaluate(c, args, state).holds
        if (i == index) == holds:
            return False
    return True


def corrupt(cases: list[dict[str, Any]], rng: random.Random) -> str:
    """A tester's mistake: one wrong expectation. Returns what was changed."""
    if not cases:
        return ""
    case = rng.choice(cases)
    changes = case.get("expect_changes") or []
    numeric = [ch for ch in changes if isinstance(ch.get("value"), int | float) and not isinstance(ch.get("value"), bool)]
    if numeric and rng.random() < 0.5:
        ch = rng.choice(numeric)
        ch["value"] = ch["value"] + 1
        return f"{case['name']}: wrong expected value for {ch['table']}[{ch['key']}].{ch['field']}"
    case["expect"] = "error" if case["expect"] == "ok" else "ok"
    case.pop("expect_changes", None)
    return f"{case['name']}: flipped expectation to {case['expect']}"

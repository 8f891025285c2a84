"""Dependency-aware expansion: the exact entities a chain needs, then look-alike distractors.

The initial state starts empty. The chain is run (in the sandbox) step by step; each
step's arguments are bound from earlier steps' outputs along data edges, and whenever a
step's pre-conditions do not hold (or an earlier list returned nothing to bind), the
contract solver changes the *initial* state so they will, and the chain is run again
from the start. Chain predecessors are read-only tools, so a step's pre-state is the
initial state. The result is the smallest consistent world in which the golden chain
succeeds; distractors are then added around the target record and kept only if the
chain still succeeds.
"""

from __future__ import annotations

import copy
import random
from typing import Any

import attrs

from scaleenv.model.contracts import check_pre, evaluate
from scaleenv.model.dbgen import make_record
from scaleenv.model.graph import data_feeds
from scaleenv.model.state import apply_delta, record_changes
from scaleenv.model.satisfy import satisfy, violate
from scaleenv.store.events.tasks import ChainStep, GoldenStep
from scaleenv.store.specs import DbState, DomainSpec, ToolSpec


class ExpansionFailed(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@attrs.define
class Expansion:
    initial: DbState
    steps: list[ChainStep]
    golden: list[GoldenStep]
    # (step index -> (table, key)) of the record a list step's output was bound from.
    picks: dict[int, tuple[str, str]]
    fed: dict[int, set[str]]


async def run_chain(sandbox: Any, tools: dict[str, str], state: DbState, steps: list[ChainStep], session: str) -> list[Any]:
    """Execute concrete steps in one sandbox session; the outcomes, stopping at the first failure."""
    outcomes = []
    await sandbox.open_session(session, tools, state)
    try:
        for step in steps:
            outcome = await sandbox.call(session, step.tool, step.args)
            outcomes.append(outcome)
            if not outcome.ok:
                break
    finally:
        await sandbox.close_session(session)
    return outcomes


def golden_steps(steps: list[ChainStep], outcomes: list[Any]) -> list[GoldenStep]:
    """Executed chain steps with their results and the exact record changes they made."""
    return [GoldenStep(tool=s.tool, args=s.args, result=o.result, delta=record_changes(o.delta))
            for s, o in zip(steps, outcomes)]


def _key_of(spec: DomainSpec, tool: ToolSpec, element: dict[str, Any]) -> tuple[str, str] | None:
    """(table, key) of a list element: the first returned field that is a table's primary key."""
    for table_name in tool.reads:
        table = spec.table(table_name)
        if table is not None and table.primary_key in element:
            return table_name, str(element[table.primary_key])
    return None


def _link(spec: DomainSpec, lister: ToolSpec, lister_args: dict[str, Any], table: str, key: str, db: DbState) -> bool:
    """Make record table[key] show up in the lister's output: point its foreign key at the lister's argument."""
    tspec = spec.table(table)
    record = db.get(table, {}).get(key)
    if tspec is None or record is None:
        return False
    for param in lister.params:
        if param.ref is None:
            continue
        for f in tspec.fields:
            if f.ref == param.ref and param.name in lister_args:
                record[f.name] = lister_args[param.name]
                return True
    return False


async def expand(
    spec: DomainSpec,
    chain: list[str],
    tools_code: dict[str, str],
    sandbox: Any,
    rng: random.Random,
    session: str,
    *,
    iterations: int = 10,
) -> Expansion:
    tools = [spec.tool(n) for n in chain]
    if any(t is None for t in tools):
        raise ExpansionFailed("unknown_tool", f"chain {chain} names a tool the domain lacks")
    initial: DbState = {t.name: {} for t in spec.tables}
    fixed: list[dict[str, Any]] = [{} for _ in chain]
    picks: dict[int, tuple[str, str]] = {}
    pick_index: dict[int, int] = {}
    for _ in range(iterations):
        steps: list[ChainStep] = []
        results: list[Any] = []
        fed: dict[int, set[str]] = {}
        restart = False
        for i, tool in enumerate(tools):
            assert tool is not None
            args = dict(fixed[i])
            fed[i] = set()
            for j in range(i):
                prev = tools[j]
                assert prev is not None
                for field, param in data_feeds(prev, tool):
                    if param in args and param not in fed[i] and param in fixed[i]:
                        continue
                    result = results[j]
                    if isinstance(result, list):
                        if not result:
                            # Nothing to bind from: create the record this step needs, linked to the lister.
                            solved = satisfy(spec, tool, initial, rng, {k: v for k, v in args.items() if k != param})
                            if solved is None:
                                raise ExpansionFailed("unsatisfiable", f"{tool.name} after empty {prev.name}")
                            s_args, s_db = solved
                            ref = tool.param(param).ref if tool.param(param) else None
                            if ref is None or param not in s_args or not _link(spec, prev, steps[j].args, ref, str(s_args[param]), s_db):
                                raise ExpansionFailed("unbindable", f"{prev.name} returned nothing for {tool.name}.{param}")
                            initial = s_db
                            restart = True
                            break
                        idx = pick_index.setdefault(j, rng.randrange(len(result))) % len(result)
                        element = result[idx]
                        if field in element:
                            args[param] = element[field]
                            fed[i].add(param)
                            found = _key_of(spec, prev, element)
                            if found:
                                picks[j] = found
                    elif isinstance(result, dict) and field in result:
                        args[param] = result[field]
                        fed[i].add(param)
                if restart:
                    break
            if restart:
                break
            missing = [p.name for p in tool.params if p.required and p.name not in args]
            if missing or check_pre(tool, args, initial):
                solved = satisfy(spec, tool, initial, rng, args)
                if solved is None:
                    raise ExpansionFailed("unsatisfiable", f"pre-conditions of {tool.name} cannot hold with {args}")
                s_args, initial = solved
                fixed[i] = {k: v for k, v in s_args.items() if k not in fed[i]}
                restart = True
                break
            steps.append(ChainStep(tool=tool.name, args=args))
            outcomes = await run_chain(sandbox, tools_code, initial, steps, session)
            last = outcomes[-1]
            if not last.ok:
                raise ExpansionFailed("step_failed", f"{tool.name}({args}) failed: {last.error.kind}: {last.error.message}")
            results.append(last.result)
        if not restart:
            outcomes = await run_chain(sandbox, tools_code, initial, steps, session)
            golden = golden_steps(steps, outcomes)
            return Expansion(initial=initial, steps=steps, golden=golden, picks=picks, fed=fed)
    raise ExpansionFailed("no_convergence", f"expansion of {chain} did not converge in {iterations} iterations")


def make_distractor(
    spec: DomainSpec, goal: ToolSpec, goal_args: dict[str, Any], state: DbState, rng: random.Random, n: int
) -> tuple[DbState, tuple[str, str]] | None:
    """The ``n``-th look-alike of the goal's target record added to ``state``: (new state, (table, key)).

    It copies the target (same owner, same foreign keys) and changes one thing: a field the
    goal's pre-condition depends on (a wrong state, even ``n``), or an identifying attribute
    (a similar name, a neighbouring date or amount, odd ``n``). ``state`` already holds the
    look-alikes kept so far, so every one kept is in the task's initial state. None when
    the goal names no target record.
    """
    target = None
    for p in goal.params:
        if p.ref is not None and p.name in goal_args and str(goal_args[p.name]) in state.get(p.ref, {}):
            target = (p.ref, str(goal_args[p.name]))
            break
    if target is None:
        return None
    table = spec.table(target[0])
    assert table is not None
    base = state[target[0]][target[1]]
    pre_indices = [i for i, c in enumerate(goal.contract) if c.when == "pre" and c.op not in ("exists", "absent")]
    db = copy.deepcopy(state)
    key, fresh = make_record(table, db, rng)
    record = dict(base)
    record[table.primary_key] = key
    db[target[0]][key] = record
    if pre_indices and n % 2 == 0:
        # A wrong-state look-alike: the goal's pre-condition fails on it.
        args = dict(goal_args)
        for p in goal.params:
            if p.ref == target[0]:
                args[p.name] = key
        broken = violate(spec, goal, rng.choice(pre_indices), args, db, rng)
        if broken is not None and broken[0] == args:
            db = broken[1]
    else:
        # An identifying-attribute look-alike: same owner, a different name/date/amount.
        candidates = [f for f in table.fields if f.name != table.primary_key and f.ref is None and f.enum is None]
        if candidates:
            f = rng.choice(candidates)
            record[f.name] = fresh[f.name]
    return db, (target[0], key)


def identifying_facts(spec: DomainSpec, table: str, key: str, state: DbState, others: list[str]) -> dict[str, Any]:
    """Fields of table[key] whose values tell it apart from look-alikes ``others`` (no ids when avoidable)."""
    tspec = spec.table(table)
    record = state.get(table, {}).get(key)
    if tspec is None or record is None:
        return {}
    facts: dict[str, Any] = {}
    for f in tspec.fields:
        if f.name == tspec.primary_key or f.ref is not None or f.type not in ("str",) or f.enum is not None:
            continue
        value = record.get(f.name)
        if all(state[table].get(o, {}).get(f.name) != value for o in others):
            facts[f.name] = value
            break
    if not facts:
        facts[tspec.primary_key] = key
    return facts


def still_valid(goal: ToolSpec, args: dict[str, Any], state: DbState) -> bool:
    return all(evaluate(c, args, state).holds for c in goal.contract if c.when == "pre")


def final_state(initial: DbState, golden: list[GoldenStep]) -> DbState:
    state = initial
    for step in golden:
        state = apply_delta(state, step.delta)
    return state

"""Pieces of a task's world shared by stage 2: running calls in a sandbox session, the
golden steps they give, look-alike distractors of a goal's target, and the facts that tell
a record from its look-alikes (the goals themselves are realized in :mod:`.realize`)."""

from __future__ import annotations

import copy
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio

from scaleenv._model.dbgen import make_record
from scaleenv._model.integrity import Constraints
from scaleenv._model.state import apply_delta, record_changes
from scaleenv._model.satisfy import violate
from scaleenv._sandbox import SessionClock
from scaleenv._store.events.tasks import ChainStep, GoldenStep
from scaleenv._store.specs import DbState, DomainSpec, ToolSpec


class ExpansionFailed(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@attrs.frozen
class SessionTerms:
    """What a task's sandbox sessions open with: the domain's integrity constraints (a call
    that breaks one fails, kind ``integrity``, and changes nothing) and the task's clock
    (``scaleenv._sandbox.task_clock``: every session of the task starts at the same present,
    so the same calls read the same times). None: not enforced / the pool's default clock."""

    constraints: Constraints | None = None
    clock: SessionClock | None = None


NO_TERMS = SessionTerms()


@asynccontextmanager
async def sandbox_session(sandbox: Any, tools: dict[str, str], state: DbState, session: str,
                          terms: SessionTerms = NO_TERMS) -> AsyncIterator[None]:
    """A sandbox session on ``state`` for the block's calls, opened with ``terms``, closed
    after it (even on cancellation). Awaits the worker's answer to the open."""
    await sandbox.open_session(session, tools, state, constraints=terms.constraints, clock=terms.clock)
    try:
        yield
    finally:
        with trio.CancelScope(shield=True):
            await sandbox.close_session(session)


async def run_chain(sandbox: Any, tools: dict[str, str], state: DbState, steps: list[ChainStep], session: str,
                    terms: SessionTerms = NO_TERMS) -> list[Any]:
    """Execute concrete steps in one sandbox session (opened with ``terms``); the outcomes,
    stopping at the first failure."""
    outcomes = []
    async with sandbox_session(sandbox, tools, state, session, terms):
        for step in steps:
            outcome = await sandbox.call(session, step.tool, step.args)
            outcomes.append(outcome)
            if not outcome.ok:
                break
    return outcomes


def golden_steps(steps: list[ChainStep], outcomes: list[Any]) -> list[GoldenStep]:
    """Executed chain steps with their results and the exact record changes they made."""
    return [GoldenStep(tool=s.tool, args=s.args, result=o.result, delta=record_changes(o.delta), clock=o.clock)
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


def final_state(initial: DbState, golden: list[GoldenStep]) -> DbState:
    state = initial
    for step in golden:
        state = apply_delta(state, step.delta)
    return state

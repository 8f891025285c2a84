"""A hand-built run log over tests/shop.py whose tool calls were really executed.

The sim's policy is still noisy, so its episodes may hold no successful tool call;
this log has an episode with several (recorded from a real sandbox session) plus an
optional nondeterministic tool (``whoami``): it formats a function object, which the
sandbox policy allows and which shows the function's memory address, different in
every worker process (ASLR). Replaying that call in a fresh sandbox gives another
result: the nondeterminism ``--verify`` must catch.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from scaleenv._model.integrity import constraints_of
from scaleenv._replay.logcopy import append_all, copy_log, replace_event
from scaleenv._sandbox import Limits, SandboxPool, task_clock
from scaleenv._store.events.base import Ref
from scaleenv._store.events.episodes import EpisodeEnded, EpisodeStarted, MessageSent, RewardGiven, ToolCallRequest, ToolExecuted
from scaleenv._store.events.synth import DomainSynthesized, SchemaDefined, ToolAccepted
from scaleenv._store.events.tasks import (
    ChainSampled,
    ChainStep,
    GoldenChainExecuted,
    GoldenStep,
    InstructionWritten,
    RecordChange,
    TaskInstantiated,
    TaskKept,
)
from scaleenv._store.log import Log
from scaleenv._store.record import Record
from scaleenv._store.specs import DbState, DomainSpec, FieldSpec, ToolSpec
from scaleenv._store.writer import Pending
from tests.shop import CODE, SHOP

# Test-only: the sandbox gives tools no host clock or randomness; Limits(test_clock=True) adds a
# clock_ns() builtin for exactly this corpus, so --verify can be shown catching it.
TEST_CLOCK = Limits(test_clock=True)
WHOAMI = ToolSpec(name="whoami", description="When the call ran (nondeterministic on purpose).",
                  params=[], returns=[FieldSpec(name="handler", type="str")], reads=[], writes=[], mutates=False)
WHOAMI_CODE = '''
def whoami(db):
    return {"handler": "tick " + str(clock_ns())}
'''


def shop_state() -> DbState:
    return {
        "customers": {
            "c1": {"customer_id": "c1", "name": "Ada", "email": "ada@example.com", "balance": 10.0},
            "c2": {"customer_id": "c2", "name": "Ada", "email": "ada@example.org", "balance": 10.0},
        },
        "products": {"p1": {"product_id": "p1", "title": "Pen", "price": 2.5, "stock": 9}},
        "orders": {
            "ord_0001": {"order_id": "ord_0001", "customer_id": "c1", "product_id": "p1", "quantity": 2,
                         "total": 5.0, "status": "pending"},
            "ord_0002": {"order_id": "ord_0002", "customer_id": "c2", "product_id": "p1", "quantity": 1,
                         "total": 2.5, "status": "pending"},
        },
    }


GOLDEN = [ChainStep(tool="find_customer_by_email", args={"email": "ada@example.com"}),
          ChainStep(tool="list_customer_orders", args={"customer_id": "c1"}),
          ChainStep(tool="cancel_order", args={"order_id": "ord_0001"})]

# The policy's calls in the episode: a failing one (changes nothing), then the chain.
EPISODE_CALLS = [("cancel_order", {"order_id": "nope"}), ("find_customer_by_email", {"email": "ada@example.com"}),
                 ("list_customer_orders", {"customer_id": "c1"}), ("cancel_order", {"order_id": "ord_0001"}),
                 ("create_order", {"customer_id": "c1", "product_id": "p1", "quantity": 1})]


def _delta(outcome: Any) -> list[RecordChange]:
    return [RecordChange(table=c.table, key=c.key, before=c.before, after=c.after) for c in outcome.delta]


SEED = 0
"""The run seed the shop log's sessions use for their clock (the log stores no config: verify reads 0)."""


async def _record(nondeterministic: bool, extra: tuple[tuple[ToolSpec, str], ...] = (),
                  calls: tuple[tuple[str, dict[str, Any]], ...] = ()) -> list[Pending]:
    tools = [*SHOP.tools, *([WHOAMI] if nondeterministic else []), *(t for t, _ in extra)]
    spec = DomainSpec(name=SHOP.name, description=SHOP.description, tables=SHOP.tables, tools=tools)
    code = {**CODE, **({"whoami": WHOAMI_CODE} if nondeterministic else {}), **{t.name: c for t, c in extra}}
    calls = [*EPISODE_CALLS, *([("whoami", {})] if nondeterministic else []), *calls]
    # Sessions as the engine opens them: the domain's constraints and the task's clock.
    terms = {"constraints": constraints_of(spec), "clock": task_clock(SEED, "d00/t000")}
    items: list[Pending] = []

    def add(stream: str, event: Any, actor: str) -> Ref:
        n = sum(1 for it in items if it.stream == stream)
        cause = Ref(stream, n - 1) if n else None
        items.append(Pending(stream, n, cause, actor, event))
        return Ref(stream, n)

    add("domain/d00", SchemaDefined(spec=spec), "engine")
    for t in spec.tools:
        add(f"tool/d00/{t.name}", ToolAccepted(domain=spec.name, tool=t.name, spec=t, code=code[t.name],
                                               code_digest="x", rounds=0), "engine")
    add("domain/d00", DomainSynthesized(domain=spec.name, verified=sorted(code), rejected=[]), "engine")
    state = shop_state()
    async with SandboxPool(workers=1, limits=TEST_CLOCK if nondeterministic else Limits()) as pool:
        ts = "task/d00/t000"
        add(ts, ChainSampled(domain=spec.name, tools=[s.tool for s in GOLDEN]), "sampler")
        add(ts, TaskInstantiated(domain=spec.name, initial_state=state, needed=[("customers", "c1"), ("orders", "ord_0001")],
                                 distractors=[("customers", "c2"), ("orders", "ord_0002")], steps=GOLDEN), "expander")
        add(ts, InstructionWritten(domain=spec.name, instruction="Cancel my pen order.", user_facts={"email": "ada@example.com"}),
            "task_writer")
        await pool.open_session("golden", code, state, **terms)
        golden = []
        for s in GOLDEN:
            o = await pool.call("golden", s.tool, s.args)
            golden.append(GoldenStep(tool=s.tool, args=s.args, result=o.result, delta=_delta(o), clock=o.clock))
        await pool.close_session("golden")
        add(ts, GoldenChainExecuted(steps=golden, final_digest="", expected_answers=[]), "verifier")
        add(ts, TaskKept(task_id="d00/t000", domain=spec.name), "engine")

        es = "episode/d00/t000/g0"
        add(es, EpisodeStarted(task_id="d00/t000", domain=spec.name, attempt=0, seed=1), "engine")
        add(es, MessageSent(role="user", content="Please cancel my pen order; I am ada@example.com."), "user")
        await pool.open_session(es, code, state, **terms)
        for i, (tool, args) in enumerate(calls):
            call = ToolCallRequest(id=f"call{i}", name=tool, arguments=json.dumps(args))
            add(es, MessageSent(role="assistant", content="", tool_calls=[call]), "policy")
            o = await pool.call(es, tool, args)
            add(es, ToolExecuted(call_id=call.id, tool=tool, args=args, ok=o.ok, result=o.result,
                                 error_kind=None if o.ok else o.error.kind, error=None if o.ok else o.error.message[:1000],
                                 delta=_delta(o), clock=o.clock), "environment")
        await pool.close_session(es)
        add(es, MessageSent(role="assistant", content="Your order ord_0001 is cancelled."), "policy")
        add(es, EpisodeEnded(reason="user_done", fault="none", turns=1, tool_calls=len(calls)), "engine")
        # An outdated grade: regrade must notice (the episode also created an extra order).
        add(es, RewardGiven(reward=1.0, breakdown={"state": 1.0}, diff=[], reward_version="strict-0"), "grader")
    return items


def build_shop_log(path: str | Path, *, nondeterministic: bool = False,
                   extra: tuple[tuple[ToolSpec, str], ...] = (),
                   calls: tuple[tuple[str, dict[str, Any]], ...] = ()) -> None:
    """Write the shop run to a new log at ``path`` (``extra``: more verified tools, with
    their code; ``calls``: more episode calls after the usual ones)."""
    items = trio.run(_record, nondeterministic, extra, calls)
    with Log.open(path, sync=False) as lg:
        trio.run(append_all, lg, items)


def tamper(src: Path, dest: Path, pick: Callable[[Record], bool], **changes: Any) -> Record:
    """Copy the log at ``src`` to ``dest`` with the first record ``pick`` selects changed by
    ``changes`` (event fields); returns that record as it was."""
    hit: list[Record] = []

    def t(r: Record) -> Record:
        if not hit and pick(r):
            hit.append(r)
            return replace_event(r, **changes)
        return r

    with Log.open(src, readonly=True) as lg:
        copy_log(lg, dest, t)
    assert hit
    return hit[0]

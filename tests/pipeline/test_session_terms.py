"""Stage 2 opens every sandbox session of a task with the domain's integrity constraints and
the task's clock (``SessionTerms``): a goal whose call breaks integrity is not realized, a
golden step that reads the time records the task clock's reading, and the story of a task
holds on its own clock only. The run context builds a domain's constraints once."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest
import trio

from scaleenv._agents.synth.expansion import ExpansionFailed, SessionTerms, golden_steps, run_chain
from scaleenv._agents.synth.realize import realize_goal, same_story
from scaleenv._model import program as prog
from scaleenv._model.integrity import constraints_of
from scaleenv._run_context import RunContext
from scaleenv._sandbox import SandboxPool, task_clock
from scaleenv._store.events.tasks import ChainStep
from scaleenv._store.specs import DbState, DomainSpec
from tests.replay.test_verify import STAMP, STAMP_CODE
from tests.serve.test_sandbox_terms import REASSIGN, REASSIGN_CODE
from tests.shop import CODE, SHOP

SPEC = DomainSpec(name=SHOP.name, description=SHOP.description, tables=SHOP.tables,
                  tools=[*SHOP.tools, STAMP, REASSIGN])
TOOLS = {**CODE, "add_note": STAMP_CODE, "reassign_order": REASSIGN_CODE}
STATE: DbState = {
    "customers": {"c1": {"customer_id": "c1", "name": "Ada Lovelace", "email": "ada@example.com", "balance": 10.0},
                  "c2": {"customer_id": "c2", "name": "Bram Stoker", "email": "bram@example.com", "balance": 0.0}},
    "products": {"p1": {"product_id": "p1", "title": "Pen", "price": 2.5, "stock": 9}},
    "orders": {"ord_0001": {"order_id": "ord_0001", "customer_id": "c1", "product_id": "p1", "quantity": 2,
                            "total": 5.0, "status": "pending"}},
}
TERMS = SessionTerms(constraints=constraints_of(SPEC), clock=task_clock(5, "d00/t001"))


def _reassign(customer: str) -> list[prog.Step]:
    return [prog.Step(tool="reassign_order", args={"order_id": "ord_0001", "customer_id": customer})]


def test_a_goal_whose_call_breaks_integrity_is_not_realized() -> None:
    async def main() -> None:
        async with SandboxPool(workers=1) as pool:
            with pytest.raises(ExpansionFailed) as failed:
                await realize_goal(SPEC, _reassign("c404"), TOOLS, pool, random.Random(1), "r", STATE, [], terms=TERMS)
            assert failed.value.reason == "step_failed"
            assert "integrity: reassign_order broke 1 integrity constraint" in failed.value.detail
            assert "points at no record of customers" in failed.value.detail
            # Without the domain's constraints the same call would have passed (and the task kept a dangling key).
            loose = await realize_goal(SPEC, _reassign("c404"), TOOLS, pool, random.Random(1), "r", STATE, [])
            assert [s.tool for s in loose.steps] == ["reassign_order"]
            kept = await realize_goal(SPEC, _reassign("c2"), TOOLS, pool, random.Random(1), "r", STATE, [], terms=TERMS)
            assert kept.steps == [ChainStep(tool="reassign_order", args={"order_id": "ord_0001", "customer_id": "c2"})]

    trio.run(main)


def test_golden_steps_read_the_task_clock_and_the_story_holds_on_it_only() -> None:
    steps = [ChainStep(tool="list_customer_orders", args={"customer_id": "c1"}),
             ChainStep(tool="add_note", args={"order_id": "ord_0001"})]

    async def main() -> None:
        async with SandboxPool(workers=1) as pool:
            outcomes = await run_chain(pool, TOOLS, STATE, steps, "golden", TERMS)
            golden = golden_steps(steps, outcomes)
            assert TERMS.clock is not None
            assert [g.clock for g in golden] == [None, TERMS.clock.reading(1)]  # only the stamping call read it
            assert golden[1].result == {"noted_at": TERMS.clock.reading(1)}
            assert await same_story(pool, TOOLS, STATE, golden, "story", terms=TERMS) == {}
            # Another present stamps another time: the story is not the same.
            other = SessionTerms(constraints=TERMS.constraints, clock=task_clock(5, "d00/t002"))
            assert await same_story(pool, TOOLS, STATE, golden, "story", terms=other) is None

    trio.run(main)


def test_the_run_context_builds_a_domains_constraints_once() -> None:
    ctx = SimpleNamespace(memo={})
    first = RunContext.constraints(ctx, "d00", SPEC)  # type: ignore[arg-type]
    assert first == constraints_of(SPEC)
    assert RunContext.constraints(ctx, "d00", SPEC) is first  # type: ignore[arg-type]
    rewritten = DomainSpec(name=SPEC.name, description=SPEC.description, tables=SPEC.tables, tools=SHOP.tools)
    assert RunContext.constraints(ctx, "d00", rewritten) is not first  # type: ignore[arg-type]
    assert RunContext.constraints(ctx, "d01", SPEC) is not first  # type: ignore[arg-type]

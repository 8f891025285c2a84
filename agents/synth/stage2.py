"""Stage 2: tasks by dependency-aware graph expansion, proven solvable by execution.

Per domain, seed chains are sampled once (a pure function of the run seed and the
graph, so they are de-duplicated); each chain then becomes a task agent with its own
stream ``task/<slot>/t<k>``: expansion (the entities the chain needs), distractors,
the instruction (task-writer role), and the golden chain executed in the sandbox.
A task whose chain fails, or that changes nothing when it should, is discarded with
its reason.
"""

from __future__ import annotations

from typing import Any

import msgspec
import structlog
import trio

from scaleenv.agents.llm.port import LlmExhaustedError, rendered_request
from scaleenv.replay.projection import DomainView, RunView
from scaleenv.model.state import canonical, state_digest
from scaleenv.run_context import RunContext
from scaleenv.seeding import rng_for
from scaleenv.store.events.tasks import (
    ChainSampled,
    GoldenChainExecuted,
    InstructionWritten,
    TaskDiscarded,
    TaskInstantiated,
    TaskKept,
)
from scaleenv.store.specs import DbState, DomainSpec
from scaleenv.streams import task_id, task_stream
from scaleenv.logs import get_logger

from . import prompts
from .answers import InstructionAnswer
from .chains import sample_chains
from .expansion import (
    ExpansionFailed,
    expand,
    final_state,
    golden_steps,
    identifying_facts,
    make_distractor,
    run_chain,
)

log = get_logger("scaleenv.tasks")


def domain_chains(ctx: RunContext, domain: DomainView) -> list[list[str]]:
    rng = rng_for(ctx.seed, "chains", domain.slot)
    return sample_chains(
        domain.spec, domain.graph(), rng, ctx.config.tasks_per_domain, (ctx.config.chain_min, ctx.config.chain_max)
    )


async def instantiate_domain(ctx: RunContext, view: RunView, domain: DomainView) -> None:
    chains = domain_chains(ctx, domain)
    async with trio.open_nursery() as nursery:
        for k, chain in enumerate(chains):
            tid = task_id(domain.slot, k)
            if tid in view.tasks and view.tasks[tid].finished and ctx.mode != "verify":
                continue
            nursery.start_soon(ctx.guarded, _task_agent, ctx, domain, tid, chain)


async def _task_agent(ctx: RunContext, domain: DomainView, tid: str, chain: list[str]) -> None:
    async with ctx.agents:
        with structlog.contextvars.bound_contextvars(task=tid, domain=domain.name):
            kept = await instantiate_task(ctx, domain, tid, chain)
            ctx.progress.add("tasks kept" if kept else "tasks discarded")


async def instantiate_task(ctx: RunContext, domain: DomainView, tid: str, chain: list[str]) -> bool:
    stream = ctx.stream(task_stream(tid))
    spec = domain.spec
    rng = rng_for(ctx.seed, "task", tid)
    cause = await stream.emit(ChainSampled(domain=spec.name, tools=chain), actor="sampler")

    async def discard(reason: str, detail: str) -> bool:
        await stream.emit(TaskDiscarded(task_id=tid, domain=spec.name, reason=reason, detail=detail[:500]), actor="engine", cause=cause)
        stream.finish()
        return False

    code = domain.verified_code()
    try:
        exp = await expand(spec, chain, code, ctx.sandbox, rng, session=f"expand/{tid}")
    except ExpansionFailed as exc:
        return await discard(exc.reason, exc.detail)

    goal = spec.tool(chain[-1])
    assert goal is not None
    goal_args = exp.steps[-1].args
    initial = exp.initial
    kept_distractors: list[tuple[str, str]] = []
    for n in range(ctx.config.distractors):
        made = make_distractor(spec, goal, goal_args, initial, rng, n)
        if made is None:
            break
        candidate, where = made
        outcomes = await run_chain(ctx.sandbox, code, candidate, exp.steps, f"distract/{tid}")
        if _same_story(exp, outcomes):
            initial = candidate  # the next look-alike is added on top of the ones kept
            kept_distractors.append(where)
    needed = sorted((t, k) for t, rows in exp.initial.items() for k in rows)

    facts: dict[str, Any] = {}
    for i, step in enumerate(exp.steps):
        for name, value in step.args.items():
            if name not in exp.fed.get(i, set()):
                facts.setdefault(name, value)
    targets: dict[str, Any] = {}
    for j, (table, key) in sorted(exp.picks.items()):
        same_table = [k for t, k in kept_distractors if t == table]
        facts.update(identifying_facts(spec, table, key, initial, same_table))
        targets = {"table": table, "key": key, "record": initial[table][key]}
    if kept_distractors and not exp.picks:
        table, key = _goal_target(spec, goal_args, initial) or ("", "")
        if table:
            targets = {"table": table, "key": key, "record": initial[table][key]}
    steps_ctx = [{"tool": s.tool, "args": s.args} for s in exp.steps]
    cause = await stream.emit(
        TaskInstantiated(domain=spec.name, initial_state=initial, needed=needed, distractors=kept_distractors, steps=exp.steps),
        actor="expander", cause=cause,
    )

    context = {"domain": msgspec.to_builtins(spec), "steps": steps_ctx, "user_facts": canonical(facts),
               "goal_tool": goal.name, "targets": canonical(targets)}
    try:
        gen = await ctx.llm.generate(
            stream,
            rendered_request("task_writer", prompts.TASK_WRITER, context, "Write the request."),
            InstructionAnswer,
            cause=cause,
        )
    except LlmExhaustedError as exc:
        return await discard("writer_failed", str(exc))
    cause = await stream.emit(
        InstructionWritten(domain=spec.name, instruction=gen.value.instruction, user_facts=facts, persona=gen.value.persona),
        actor="task_writer", cause=gen.ref,
    )

    # Executable action verification: the golden chain, from the final initial state.
    outcomes = await run_chain(ctx.sandbox, code, initial, exp.steps, f"golden/{tid}")
    if len(outcomes) < len(exp.steps) or not outcomes[-1].ok:
        bad = outcomes[-1]
        return await discard("chain_failed", f"{exp.steps[len(outcomes) - 1].tool}: {bad.error.kind}: {bad.error.message}")
    golden = golden_steps(exp.steps, outcomes)
    final = final_state(initial, golden)
    answers = _expected_answers(spec, goal.name, golden[-1].result, facts) if not goal.mutates else []
    cause = await stream.emit(
        GoldenChainExecuted(steps=golden, final_digest=state_digest(final), expected_answers=answers),
        actor="verifier", cause=cause,
    )
    if goal.mutates and state_digest(final) == state_digest(initial):
        return await discard("no_effect", f"{goal.name} changed nothing")
    await stream.emit(TaskKept(task_id=tid, domain=spec.name), actor="engine", cause=cause)
    stream.finish()
    return True


def _goal_target(spec: DomainSpec, args: dict[str, Any], state: DbState) -> tuple[str, str] | None:
    for name, value in args.items():
        for table in spec.tables:
            if table.primary_key == name and str(value) in state.get(table.name, {}):
                return table.name, str(value)
    return None


def _same_story(exp: Any, outcomes: list[Any]) -> bool:
    """Distractors may lengthen lists, but every step must succeed with the same bindings and effect."""
    if len(outcomes) != len(exp.golden) or not all(o.ok for o in outcomes):
        return False
    for i, (gold, o) in enumerate(zip(exp.golden, outcomes)):
        if isinstance(gold.result, list):
            if i in exp.picks and not any(_key_matches(e, exp.picks[i][1]) for e in o.result):
                return False
            if i not in exp.picks and not all(e in o.result for e in gold.result):
                return False
        elif canonical(gold.result) != canonical(o.result):
            return False
    last = outcomes[-1]
    return canonical([msgspec.to_builtins(c) for c in last.delta]) == canonical([msgspec.to_builtins(c) for c in exp.golden[-1].delta])


def _key_matches(element: Any, key: str) -> bool:
    return isinstance(element, dict) and key in {str(v) for v in element.values()}


def _expected_answers(spec: DomainSpec, tool: str, result: Any, facts: dict[str, Any]) -> list[str]:
    """For information tasks: the values the agent must tell the user (up to two)."""
    item = result[0] if isinstance(result, list) and result else result
    if not isinstance(item, dict):
        return []
    known = {str(v) for v in facts.values()}
    out = []
    for name, value in sorted(item.items()):
        if isinstance(value, bool) or value is None or isinstance(value, dict | list):
            continue
        text = str(canonical(value))
        if text not in known and not name.endswith("_id"):
            out.append(text)
        if len(out) == 2:
            break
    return out

"""The oracle policy: a policy told the solution, run through the episode code.

Stage 2's gate measures the feasibility g(D) of adding another goal as the success rate
of this policy over ``gate_k`` rollouts on candidate goals over the unused tools (the
paper's section 4.2). A rollout is a short episode of the ``oracle`` role (the same LLM
port as every role, so a real model can play it and a recording replays it): its system
prompt holds the candidate goal's program, it acts on the state the goal starts from with
the environment's tools plus the goal's, through :class:`.episode.Episode` (the same tool
execution, malformed calls answered as tool errors, and the same fold of the conversation)
and is judged by the reward code against the goal's expected final state.

Its events go in the task's stream, not an episode stream: ``OracleStarted``, the
conversation's ``MessageSent``/``ToolExecuted`` and ``LlmCalled``, then ``OracleEnded``;
the gate's decision names where they ended (``GateDecided.oracle``) and is caused by the
last of them.
"""

from __future__ import annotations

from typing import Any

import attrs
import trio

from scaleenv._agents.llm.port import LlmExhaustedError, LlmRequest
from scaleenv._model.reward import policies_of, score
from scaleenv._model.state import canonical
from scaleenv._replay import episode as episode_fold
from scaleenv._replay.projection import DomainView, TaskView
from scaleenv._run_context import RunContext
from scaleenv._store.events import Ref
from scaleenv._store.events.episodes import MessageSent, ToolCallRequest, ToolExecuted
from scaleenv._store.events.tasks import OracleEnded, OracleStarted
from scaleenv._store.specs import DbState

from .answers import PolicyTurn
from .episode import Episode, offered

SOLUTION_OPEN = "<solution>"
SOLUTION_CLOSE = "</solution>"
ORACLE_INSTRUCTIONS = """You are an expert operator of {name}: {description}
You are given the solution to the request below as a short program of tool calls, between
<solution> tags. Carry it out with the tools, in order, one call per turn: each argument is
the literal the program writes, or (for `x["field"]` or `x[0]["field"]`) the value in the
result of the earlier call bound to `x`. Once its last call has succeeded, reply with one
short message and no tool call. If a call fails, fix its arguments and try again; if the
program cannot be carried out, say so in a message."""
TURNS_PER_STEP = 3
"""Model turns a rollout gets per call of the solution (a failed call may be retried)."""
NUDGES = 1
NUDGE = "The solution is not carried out yet: its last call has not succeeded. Please go on with it."
"""What a rollout that stops before the goal's call ran is told (``NUDGES`` times at most)."""


@attrs.frozen
class OracleCase:
    """A candidate goal as its oracle rollouts see it."""

    goal: int
    goal_tool: str
    solution: str
    """The goal's program (:mod:`scaleenv._model.program`), literals as realized."""
    steps: int
    state: DbState
    """Where the goal starts: the task's initial state after the earlier goals ran."""
    expected: DbState
    """The state after the goal's own calls."""
    expected_result: Any
    """What the goal's last call returned (an information goal is judged on it)."""
    tools: tuple[str, ...]
    """The tools offered: the environment's and the goal's."""


def system_prompt(domain: DomainView, case: OracleCase) -> str:
    assert domain.spec is not None
    head = ORACLE_INSTRUCTIONS.format(name=domain.spec.name, description=domain.spec.description)
    return f"{head}\n{SOLUTION_OPEN}\n{case.solution.rstrip()}\n{SOLUTION_CLOSE}"


async def oracle_rollout(ctx: RunContext, domain: DomainView, stream: Any, task_id: str, case: OracleCase,
                         rollout: int, *, cause: Ref | None) -> tuple[bool, Ref]:
    """One oracle rollout of ``case`` in ``stream`` (the task's); (success, the ref of its
    ``OracleEnded``).

    Awaits its model calls and tool calls; its sandbox session (``oracle/<task>/g<goal>/r<k>``)
    is closed when it ends, also on cancellation (the task is then built again from the start)."""
    eid = f"oracle/{task_id}/g{case.goal}/r{rollout}"
    view = TaskView(task_id=task_id, slot=domain.slot, domain=domain.name, initial_state=case.state,
                    env_tools=list(case.tools))
    tools, _ = offered(ctx, domain, view)
    ep = Episode(ctx=ctx, domain=domain, task=view, eid=eid, stream=stream,
                 view=episode_fold.start(case.state, eid), tools=tools, last=cause)
    ep.sandbox_tools = domain.verified_code
    prompt = system_prompt(domain, case)
    await ep.emit(OracleStarted(goal=case.goal, goal_tool=case.goal_tool, rollout=rollout, solution=case.solution,
                                system_prompt=prompt, tools=list(case.tools)), "gate")
    ep.view.messages = [{"role": "system", "content": prompt}]
    await ep.emit(MessageSent(role="user", content=f"Please carry out the solution: it ends with {case.goal_tool}."),
                  "gate")
    reason, detail = "max_turns", ""
    goal_results: list[Any] = []
    nudges = 0
    try:
        for _ in range(TURNS_PER_STEP * case.steps + 1):
            try:
                gen = await ctx.llm.generate(
                    stream, LlmRequest(role="oracle", messages=list(ep.view.messages),
                                       context={"conversation": ep.view.messages, "tools": ep.tools,
                                                "turn": ep.turns},
                                       tools=ep.tools),
                    PolicyTurn, cause=ep.last)
            except LlmExhaustedError as exc:
                reason, detail = "error", str(exc)[:300]
                break
            ep.last = gen.ref
            turn = gen.value
            calls = [ToolCallRequest(id=c.id, name=c.name, arguments=c.arguments) for c in turn.tool_calls]
            await ep.record_assistant(turn.content, calls)
            if not calls:
                if not goal_results and nudges < NUDGES:
                    # It stopped before the goal's call ran (a slip, or a text that is no tool
                    # call): told so once, as a user would.
                    nudges += 1
                    await ep.emit(MessageSent(role="user", content=NUDGE), "gate")
                    continue
                reason = "done"
                break
            for call in calls:
                if ep.tool_calls >= ctx.config.max_tool_calls:
                    reason = "max_tool_calls"
                    break
                executed: ToolExecuted = await ep.run_tool(call)
                if executed.ok and executed.tool == case.goal_tool:
                    goal_results.append(executed.result)
            if reason == "max_tool_calls":
                break
    finally:
        if ctx.sandbox.has_session(eid):
            with trio.CancelScope(shield=True):
                await ctx.sandbox.close_session(eid)
    success = judge(domain, case, ep.state, goal_results)
    if not success and reason == "done":
        detail = detail or "the final state or the goal's result differs from the solution's"
    ended = await ep.emit(OracleEnded(goal=case.goal, rollout=rollout, success=success, reason=reason,
                                      tool_calls=ep.tool_calls, detail=detail), "gate")
    return success, ended


def judge(domain: DomainView, case: OracleCase, state: DbState, goal_results: list[Any]) -> bool:
    """Whether a rollout that ended in ``state`` did the goal: the reward's comparison of the
    final state with the expected one (each column by its policy) scores 1, and the goal call
    ran (an information goal: returning, at least once, what the solution's run returned)."""
    if not goal_results:
        return False
    if score(case.expected, state, [], [], policies=policies_of(domain.spec)).reward != 1:
        return False
    tool = domain.spec.tool(case.goal_tool) if domain.spec is not None else None
    if tool is None or tool.mutates:
        return True  # the state says it all (a result may carry stamps of its own time)
    want = canonical(case.expected_result)
    return any(canonical(r) == want for r in goal_results)

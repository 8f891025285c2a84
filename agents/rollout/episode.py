"""One episode: the simulated user, the policy, the tools in the sandbox, then the reward.

An episode is a trio task with its own stream (``episode/<task>/g<attempt>``) and its
own sandbox session holding its own state (nothing is shared between episodes). Every
message, tool call (with the state change it caused) and the reward are events.
Malformed tool calls go back to the policy as tool errors, as real APIs do. Each
finished episode records why it ended and whose fault a failure was.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import msgspec
import structlog
import trio

from scaleenv._agents.llm.port import LlmExhaustedError, LlmRequest
from scaleenv._model.integrity import Constraints
from scaleenv._model.reward import Score
from scaleenv._model.state import record_changes
from scaleenv._model.tool_schemas import environment_tools, openai_tools
from scaleenv._replay import episode as episode_fold
from scaleenv._replay.episode import EpisodeView
from scaleenv._replay.projection import DomainView, TaskView
from scaleenv._replay.grading import grade
from scaleenv._run_context import RunContext
from scaleenv._sandbox import SessionClock, task_clock
from scaleenv._seeding import derive_seed
from scaleenv._store.events import Ref
from scaleenv._store.events.episodes import (
    EpisodeEnded,
    EpisodeStarted,
    MessageSent,
    RewardGiven,
    ToolCallRequest,
    ToolExecuted,
)
from scaleenv._store.specs import DbState
from scaleenv._store.stream import AckMode

from .answers import PolicyTurn, UserTurn
from scaleenv._agents.llm.user_chat import user_request
from scaleenv._streams import episode_id, episode_stream
from scaleenv._logs import get_logger

log = get_logger("scaleenv.rollout")

USER_INSTRUCTIONS = """You play a customer talking to a support agent. Pursue the goals in
`instruction`: raise the requests in `requests` one at a time, in order (open with the
first; raise the next only once the agent has settled the one before); reveal a fact
from `user_facts` (`request_facts` says which request it belongs to) only when the agent
asks for it; never invent facts. When the agent states or asks to confirm something that
contradicts your facts (another record, a wrong quantity), say no and restate the right
fact (reason="correct"); decline to give a password or anything you do not hold, saying
what you can give instead (reason="refuse_info"); turn down any action you did not ask for
(reason="refuse_action"). Set done=true when the last request is settled,
gave_up=true if the agent cannot help."""


def policy_system_prompt(domain: DomainView) -> str:
    assert domain.spec is not None
    return (
        f"You are the support agent of {domain.spec.name}: {domain.spec.description}\n"
        "Help the customer using the tools. Ask for any information you need. Act only on the records "
        "the customer means; confirm the outcome to the customer when done. When the customer asks for "
        "information, tell them the exact values from the tool results (numbers, dates, statuses, names as "
        "the tools return them). The customer may raise several requests, one after another."
    )


@attrs.define
class _Episode:
    """A live episode: its stream, and its view folded from what it emitted (``view``).

    Every event goes through :meth:`emit`, which appends it and then applies it to
    ``view`` with :func:`scaleenv._replay.episode.apply`, the fold replay and export use.
    """

    ctx: RunContext
    domain: DomainView
    task: TaskView
    eid: str
    stream: Any
    view: EpisodeView
    tools: Sequence[dict[str, Any]]
    last: Ref | None = None
    # The sandbox session opens at the first tool call (an episode that calls none never
    # costs the workers anything); `sandbox_tools` gives the code to load. Served episodes
    # open theirs up front and leave this None.
    sandbox_tools: Callable[[], dict[str, str]] | None = None
    session_open: bool = False
    tool_names: frozenset[str] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.tool_names = frozenset(t["function"]["name"] for t in self.tools)

    @property
    def state(self) -> DbState:
        assert self.view.state is not None
        return self.view.state

    @property
    def policy_messages(self) -> list[dict[str, Any]]:
        return self.view.messages

    @property
    def seed_name(self) -> str:
        """What the episode's model calls derive their seeds from (with the stream
        position): "" for the stream id, or for an episode opened with a client seed,
        :func:`client_seed_name` (see ``EpisodeStarted.client_seed``)."""
        cs = self.view.client_seed
        return "" if cs is None else client_seed_name(self.task.task_id, cs)

    @property
    def turns(self) -> int:
        return self.view.turns

    @property
    def tool_calls(self) -> int:
        return self.view.tool_calls

    async def emit(self, event: Any, actor: str, cause: Ref | None = None) -> Ref:
        self.last = await self.stream.emit(event, actor=actor, cause=cause if cause is not None else self.last)
        episode_fold.apply(self.view, event)
        return self.last

    async def user_turn(self) -> UserTurn:
        context = {
            "instruction": self.task.instruction,
            "user_facts": self.task.user_facts,
            "persona": self.task.persona,
            "requests": self.task.requests,
            "request_facts": self.task.request_facts,
            "max_turns": self.ctx.config.max_turns,
        }
        request = user_request(USER_INSTRUCTIONS, context, self.view.user_view,
                               memo=self.stream.memo.setdefault("user_chat", {}))
        if self.view.client_seed is not None:
            request = msgspec.structs.replace(request, seed_name=self.seed_name)
        gen = await self.ctx.llm.generate(self.stream, request, UserTurn, cause=self.last)
        self.last = gen.ref
        turn = gen.value
        await self.emit(MessageSent(role="user", content=turn.message, reason=turn.reason), "user")
        return turn

    async def policy_turn(self) -> PolicyTurn:
        context = {"conversation": self.policy_messages, "tools": self.tools, "turn": self.turns}
        gen = await self.ctx.llm.generate(
            self.stream,
            LlmRequest(role="policy", messages=list(self.policy_messages), context=context, tools=self.tools,
                       seed_name=self.seed_name),
            PolicyTurn,
            cause=self.last,
        )
        self.last = gen.ref
        turn = gen.value
        calls = [ToolCallRequest(id=c.id, name=c.name, arguments=c.arguments) for c in turn.tool_calls]
        await self.record_assistant(turn.content, calls)
        return turn

    async def record_assistant(self, content: str, calls: list[ToolCallRequest], *,
                               token_ids: list[int] | None = None, logprobs: list[float] | None = None) -> None:
        """Record one assistant turn (from the policy here, or from an external policy when served)."""
        await self.emit(MessageSent(role="assistant", content=content, tool_calls=calls,
                                    token_ids=token_ids, logprobs=logprobs), "policy")

    async def run_tool(self, call: ToolCallRequest) -> ToolExecuted:
        names = self.tool_names
        args: Any = None
        if call.name not in names:
            event = ToolExecuted(call_id=call.id, tool=call.name, args=None, ok=False, error_kind="unknown_tool",
                                 error=f"unknown tool {call.name!r}; available: {sorted(names)}")
        else:
            try:
                args = json.loads(call.arguments) if call.arguments.strip() else {}
            except json.JSONDecodeError as exc:
                args = exc
            if isinstance(args, Exception) or not isinstance(args, dict):
                event = ToolExecuted(call_id=call.id, tool=call.name, args=None, ok=False, error_kind="bad_json",
                                     error=f"arguments are not a JSON object: {str(args)[:200]}")
            else:
                if not self.session_open and self.sandbox_tools is not None:
                    # The first tool call opens the session (on the state so far: the initial one).
                    constraints, clock = sandbox_terms(self.ctx, self.domain, self.task)
                    await self.ctx.sandbox.open_session(self.eid, self.sandbox_tools(), self.state,
                                                        constraints=constraints, clock=clock)
                    self.session_open = True
                outcome = await self.ctx.sandbox.call(self.eid, call.name, args)
                if outcome.ok:
                    event = ToolExecuted(call_id=call.id, tool=call.name, args=args, ok=True, result=outcome.result,
                                         delta=record_changes(outcome.delta), clock=outcome.clock)
                else:
                    event = ToolExecuted(call_id=call.id, tool=call.name, args=args, ok=False,
                                         error_kind=outcome.error.kind, error=outcome.error.message[:1000],
                                         clock=outcome.clock)
        await self.emit(event, "environment")
        return event

    async def start(self, attempt: int, *, client_seed: int | None = None, label: str = "") -> None:
        """Emit EpisodeStarted (the system prompt is the first policy message).

        ``client_seed`` (served episodes): the episode's randomness derives from the task
        and this seed instead of its id (see ``EpisodeStarted.client_seed``)."""
        _, prompt = offered(self.ctx, self.domain, self.task)
        seed = (derive_seed(self.ctx.seed, "episode", self.eid) if client_seed is None
                else derive_seed(self.ctx.seed, client_seed_name(self.task.task_id, client_seed)))
        await self.emit(EpisodeStarted(task_id=self.task.task_id, domain=self.domain.name, attempt=attempt,
                                       seed=seed, system_prompt=prompt, client_seed=client_seed, label=label),
                        "engine")

    async def finish(self, reason: str, fault: str, detail: str, *,
                     done_working: Callable[[], None] | None = None) -> Score:
        """Score the final state, emit EpisodeEnded and RewardGiven, and finish the stream.

        ``done_working`` is called after the last emit, before waiting for the commit."""
        task = self.task
        assert task.expected_final is not None
        result = grade(task, self.domain.spec, self.state, self.view.said)
        if result.reward == 0 and fault == "none":
            fault = "environment" if self.view.env_failures else "policy"
        ended = EpisodeEnded(reason=reason, fault=fault, turns=self.turns, tool_calls=self.tool_calls,  # type: ignore[arg-type]
                             detail=detail)
        reward = RewardGiven(reward=result.reward, breakdown=result.breakdown, diff=result.diff[:50],
                             reward_version=result.version)
        # Both in one append (one commit to wait for); the reward's cause is the end, as if emitted one by one.
        ended_ref = Ref(self.stream.id, self.stream.next_n)
        refs = await self.stream.emit_many([(ended, "engine", self.last), (reward, "grader", ended_ref)])
        self.last = refs[-1]
        if done_working is not None:
            done_working()
        await self.stream.flush()  # the episode is acknowledged once all of it is committed
        self.stream.finish()
        return result


Episode = _Episode


def client_seed_name(task_id: str, client_seed: int) -> str:
    """The name an episode of ``task_id`` opened with ``client_seed`` derives its seeds from."""
    return f"episode/{task_id}/seed/{client_seed}"
"""The episode's state and steps, shared by the local loop (``run_episode``) and served episodes."""


def offered(ctx: RunContext, domain: DomainView, task: TaskView | None = None) -> tuple[tuple[dict[str, Any], ...], str]:
    """The tool schemas and the system prompt an episode of ``task`` starts with: the
    tools of the task's environment (H), or every verified tool of ``domain`` for a task
    that names none (older logs).

    Built once per tool set and run (kept in ``ctx.memo``) and shared by the episodes that
    offer it (read-only: nothing mutates them), instead of once per episode; a changed spec
    or verified set rebuilds them.
    """
    assert domain.spec is not None
    verified = tuple(domain.verified)
    env = tuple(task.env_tools) if task is not None and task.env_tools else verified
    cache: dict[tuple[str, tuple[str, ...]], tuple[Any, tuple[str, ...], tuple[dict[str, Any], ...], str]] = \
        ctx.memo.setdefault("rollout.offered", {})
    hit = cache.get((domain.slot, env))
    if hit is not None and hit[0] is domain.spec and hit[1] == verified:
        return hit[2], hit[3]
    # A tuple: shared by every episode offering these tools and never changed, so the LLM
    # port may keep its encoding for request digests (see port.EncodingCache).
    tools = tuple(openai_tools(environment_tools(domain.spec.tools, verified, env)))
    prompt = policy_system_prompt(domain)
    cache[(domain.slot, env)] = (domain.spec, verified, tools, prompt)
    return tools, prompt


def sandbox_terms(ctx: RunContext, domain: DomainView, task: TaskView) -> tuple[Constraints, SessionClock]:
    """What an episode's sandbox session is opened with: the domain's integrity
    constraints (built once per domain and run, see ``RunContext.constraints``) and the
    task's clock (the present its golden chain ran at)."""
    assert domain.spec is not None
    return ctx.constraints(domain.slot, domain.spec), task_clock(ctx.seed, task.task_id)


def new_episode(ctx: RunContext, domain: DomainView, task: TaskView, eid: str, *,
                ack: AckMode = "each") -> _Episode:
    """An episode of ``task`` in stream ``episode/<eid>``: verified tools offered, system prompt first.

    ``ack="deferred"``: the episode's events are acknowledged together when it finishes
    (local rollouts); served episodes keep ``"each"`` so every answer to a client
    follows the commit of what it reports.
    """
    assert domain.spec is not None and task.initial_state is not None and task.expected_final is not None
    tools, _ = offered(ctx, domain, task)
    return _Episode(ctx=ctx, domain=domain, task=task, eid=eid, stream=ctx.stream(episode_stream(eid), ack=ack),
                    view=episode_fold.start(task.initial_state, eid), tools=tools)


async def run_episode(ctx: RunContext, domain: DomainView, task: TaskView, attempt: int, *,
                      done_working: Callable[[], None] | None = None) -> float:
    """Run one episode to its reward; returns once all of its events are committed.

    ``done_working`` is called once the episode has emitted its last event and only
    waits for the commit (a concurrency slot can go to the next episode then).
    """
    eid = episode_id(task.task_id, attempt)
    ep = new_episode(ctx, domain, task, eid, ack="deferred")
    ep.sandbox_tools = domain.verified_code
    await ep.start(attempt)
    reason, fault, detail = "error", "none", ""
    try:
        with structlog.contextvars.bound_contextvars(episode=eid):
            with trio.move_on_after(ctx.config.episode_timeout_s) as scope:
                reason, fault, detail = await _converse(ep)
            if scope.cancelled_caught:
                reason, fault, detail = "timeout", "limit", f"episode exceeded {ctx.config.episode_timeout_s}s"
    finally:
        if ctx.sandbox.has_session(eid):  # opened at a tool call (or an open cut short by the timeout)
            with trio.CancelScope(shield=True):
                await ctx.sandbox.close_session(eid)
    result = await ep.finish(reason, fault, detail, done_working=done_working)
    return result.reward


async def _converse(ep: _Episode) -> tuple[str, str, str]:
    cfg = ep.ctx.config
    try:
        opening = await ep.user_turn()
    except LlmExhaustedError as exc:
        return "error", "user", str(exc)
    if opening.done or opening.gave_up:
        return ("user_done" if opening.done else "user_gave_up"), "user", "the user ended the episode before the agent spoke"
    while True:
        if ep.turns >= cfg.max_turns:
            return "max_turns", "limit", f"{cfg.max_turns} turns"
        while True:  # the policy acts until it speaks to the user
            try:
                turn = await ep.policy_turn()
            except LlmExhaustedError as exc:
                return "error", "policy", str(exc)
            if not turn.tool_calls:
                break
            for call in turn.tool_calls:
                if ep.tool_calls >= cfg.max_tool_calls:
                    return "max_tool_calls", "limit", f"{cfg.max_tool_calls} tool calls"
                await ep.run_tool(ToolCallRequest(id=call.id, name=call.name, arguments=call.arguments))
        if not turn.content:
            return "policy_stopped", "policy", "the policy ended its turn without a message or a tool call"
        try:
            reply = await ep.user_turn()
        except LlmExhaustedError as exc:
            return "error", "user", str(exc)
        if reply.done:
            return "user_done", "none", ""
        if reply.gave_up:
            return "user_gave_up", "none", ""

"""Served episodes: the run's environments driven from outside (HTTP, MCP, gymnasium).

An external policy (an RL trainer's model) plays the agent; the simulated user runs
through the run's LLM port, the tools run in the episode's own sandbox session, and
the reward is the same rule-based score. Every step goes through the same
:class:`~scaleenv._agents.rollout.episode.Episode` pieces as a local rollout, so a served
episode is the same events in the same kind of stream (``episode/<task>/s<k>``):
EpisodeStarted, the user's and the assistant's MessageSent, ToolExecuted,
EpisodeEnded, RewardGiven. It replays, verifies and exports like any other.

Ids: ``<task>/s<k>``, ``k`` counting per task from the served episodes already in the
log (so a restarted server never reuses one, and ``s`` never collides with the local
``g<attempt>``). ``EpisodeStarted.attempt`` is ``k``. These plain ids are what the log,
the LLM seeds and the digests see; the network front ends hand clients the id sealed
with a capability of the token that opened the episode (:mod:`scaleenv._serve.auth`).

One assistant turn (:meth:`Environments.step`) follows the local loop exactly: the
turn is recorded as one MessageSent (content + tool calls); its tool calls run in
order (unknown tools and non-JSON arguments become tool errors, as local); a turn
without tool calls goes to the user, who replies. The episode ends (and is scored) by
itself as the local loop would: the user is done or gives up, ``max_turns`` or
``max_tool_calls`` is reached, a turn is empty (``policy_stopped``), or nothing is
asked of it for ``idle_timeout`` seconds (``timeout``); or when the client ends it
(``policy_stopped``, whose fault is the policy only if the reward is 0).

A server that stops ends its open episodes first (reason ``error``, fault
``environment``). One that is killed cannot, so the next server on the log does it
before serving anything (:meth:`Environments.close_orphans`): every served episode
with an EpisodeStarted but no EpisodeEnded gets the ordinary EpisodeEnded + RewardGiven
pair, with the same reason and fault, the reward scored on the state folded from the
episode's own events (the task's initial state and its ToolExecuted deltas). The
writer lock makes a server the only one on its log, so an episode it finds unended at
start belongs to no live server.

Requests over :class:`~scaleenv._serve.limits.Limits` (tool arguments too large or nested
too deep, names too long) are refused with :class:`~scaleenv._serve.limits.LimitExceeded`
before anything is recorded; error messages echo client input only clipped.

This module knows nothing of HTTP: errors are :class:`ServeError` with an HTTP-like
status that each front end maps to its own error shape.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import msgspec
import trio

from scaleenv._agents.llm.port import LlmExhaustedError
from scaleenv._replay import episode as episode_fold
from scaleenv._replay import checkpoint
from scaleenv._replay.episode import EpisodeSummary, EpisodeView, tool_message
from scaleenv._replay.projection import DomainView, RunView, TaskView
from scaleenv._replay.stored import episode_ended
from scaleenv._model.reward import Score
from scaleenv._config import RunConfig, from_stored
from scaleenv._run_context import RunContext
from scaleenv._runner import EngineOptions, open_run
from scaleenv._store.events import Ref
from scaleenv._store.log import Log
from scaleenv._store.events.episodes import ToolCallRequest, ToolExecuted
from scaleenv._store.stream import Stream

from scaleenv._agents.rollout.episode import Episode, new_episode, offered, sandbox_terms
from scaleenv._streams import EPISODE, episode_stream, served_episode_id
from scaleenv._logs import get_logger
from scaleenv._serve.limits import LimitExceeded, Limits, check_arguments_text, check_name, clip

log = get_logger("scaleenv._serve")

SERVED_ID = re.compile(r"^(?P<task>.+)/s(?P<k>\d+)$")
LABEL = re.compile(r"^(?:[a-z0-9][a-z0-9_.-]{0,31})?$")

STOPPED = ("error", "environment")
"""Reason and fault of an episode ended because its server stopped (or was killed)."""
STOPPED_DETAIL = "the server shut down before the episode ended"
ORPHAN_DETAIL = "the server stopped (killed?) before the episode ended; ended when the next server started"

# Tool error kinds that are the caller's mistake (a 4xx on a single-call endpoint).
CLIENT_ERROR_STATUS = {"unknown_tool": 404, "bad_json": 400, "bad_args": 422}


class ServeError(Exception):
    """A request the environment refuses, with an HTTP-like status and a clear message."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.extra = extra

    def to_json(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "code": self.status}, **self.extra}


def tool_result_json(event: ToolExecuted) -> dict[str, Any]:
    out: dict[str, Any] = {"call_id": event.call_id, "name": event.tool, "ok": event.ok}
    if event.ok:
        out["result"] = event.result
    else:
        out["error"] = event.error
        out["error_kind"] = event.error_kind
    out["content"] = tool_message(event)
    return out


def parse_tool_calls(raw: Any, first_id: int) -> list[ToolCallRequest]:
    """Tool calls as OpenAI writes them (``{"id", "type": "function", "function": {"name",
    "arguments"}}``) or flat (``{"id", "name", "arguments"}``); arguments a JSON string
    (recorded verbatim: malformed JSON becomes a tool error, as local) or an object."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ServeError(400, "tool_calls must be a list of {id, type: function, function: {name, arguments}}")
    calls: list[ToolCallRequest] = []
    for i, c in enumerate(raw):
        if not isinstance(c, dict):
            raise ServeError(400, f"tool_calls[{i}] must be an object")
        fn = c.get("function", c)
        if not isinstance(fn, dict):
            raise ServeError(400, f"tool_calls[{i}].function must be an object with name and arguments")
        calls.append(tool_call(fn.get("name"), fn.get("arguments"), c.get("id"), first_id + i, where=f"tool_calls[{i}]"))
    return calls


def tool_call(name: Any, arguments: Any, call_id: Any, n: int, where: str = "request") -> ToolCallRequest:
    if not isinstance(name, str) or not name:
        raise ServeError(400, f"{where}: 'name' must be a non-empty string (the tool to call)")
    if arguments is None:
        arguments = "{}"
    elif isinstance(arguments, dict):
        try:
            arguments = json.dumps(arguments)
        except RecursionError:
            raise LimitExceeded(400, "max_depth", f"{where}: arguments nest too deep to encode") from None
    elif not isinstance(arguments, str):
        raise ServeError(400, f"{where}: 'arguments' must be a JSON object or a string holding one")
    if call_id is None:
        call_id = f"call_{n}"
    elif not isinstance(call_id, str) or not call_id:
        raise ServeError(400, f"{where}: 'id' must be a non-empty string")
    return ToolCallRequest(id=call_id, name=name, arguments=arguments)


def check_calls(calls: list[ToolCallRequest], limits: Limits) -> None:
    """Refuse calls over the limits (LimitExceeded), before any of them is recorded."""
    for i, call in enumerate(calls):
        where = f"tool_calls[{i}]" if len(calls) > 1 else "tool call"
        check_name(call.name, limits, f"{where}: name")
        check_name(call.id, limits, f"{where}: id")
        check_arguments_text(call.arguments, limits, where)


def _check_list(value: Any, kind: type, name: str) -> Any:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(x, kind) and not isinstance(x, bool) for x in value):
        raise ServeError(400, f"{name} must be a list of {kind.__name__}s")
    return [kind(x) for x in value]


@attrs.define
class Served:
    ep: Episode = attrs.field(repr=False)
    attempt: int
    lock: trio.Lock = attrs.field(factory=trio.Lock)
    touched: float = 0.0
    user_done: bool = False
    result: dict[str, Any] | None = None

    @property
    def ended(self) -> bool:
        return self.result is not None


def score_json(eid: str, reason: str, fault: str, ep: Episode, s: Score, detail: str) -> dict[str, Any]:
    return {"episode_id": eid, "reward": s.reward, "breakdown": s.breakdown, "diff": s.diff,
            "reward_version": s.version, "reason": reason, "fault": fault, "turns": ep.turns,
            "tool_calls": ep.tool_calls, "detail": detail}


@attrs.define
class Environments:
    """The kept tasks of one run, and the episodes served on them (many at once)."""

    ctx: RunContext = attrs.field(repr=False)
    view: RunView = attrs.field(repr=False)
    idle_timeout: float = 600.0
    max_open: int = 1024
    limits: Limits = attrs.field(factory=Limits)
    episodes: dict[str, Served] = attrs.field(factory=dict, repr=False)
    _next: dict[str, int] = attrs.field(factory=dict, repr=False)
    _served: list[str] = attrs.field(factory=list, repr=False)
    """The served episodes the log held when serving started (by id, sorted)."""
    _closing: bool = False

    @classmethod
    @asynccontextmanager
    async def open(cls, ctx: RunContext, *, idle_timeout: float = 600.0, max_open: int = 1024,
                   limits: Limits | None = None) -> AsyncIterator[Environments]:
        """Serve the run behind ``ctx``; on exit every open episode is ended (reason ``error``).

        Episodes a killed server left open are ended first (:meth:`close_orphans`). Only
        one ``Environments`` may serve a log at a time: the writer lock sees to it across
        processes, ``RunContext.served`` within one (a second open raises RuntimeError).
        """
        if ctx.served:
            raise RuntimeError("this run is already served by an Environments in this process: share that one "
                               "(a second would end the first one's open episodes as a killed server's)")
        ctx.served = True
        try:
            async with cls._serving(ctx, idle_timeout, max_open, limits or Limits()) as envs:
                yield envs
        finally:
            ctx.served = False

    @classmethod
    @asynccontextmanager
    async def _serving(cls, ctx: RunContext, idle_timeout: float, max_open: int,
                       limits: Limits) -> AsyncIterator[Environments]:
        # The projection (the newest checkpoint and what follows it; episodes and task
        # states read when asked for), and the served episodes' ids from the per-stream
        # index: starting costs what the run's domains and tasks weigh, not its whole log.
        view = checkpoint.project(ctx.log, lean=True)  # (writable: folded in checkpointed segments, read back lazily)
        envs = cls(ctx=ctx, view=view, idle_timeout=idle_timeout, max_open=max_open, limits=limits)
        for stream, _ in ctx.log.streams(EPISODE):
            m = SERVED_ID.match(stream[len(EPISODE):])
            if m:
                envs._served.append(stream[len(EPISODE):])
                envs._next[m["task"]] = max(envs._next.get(m["task"], 0), int(m["k"]) + 1)
        with trio.CancelScope(shield=True):  # a half-written ending would leave the stream unusable
            await envs.close_orphans()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(envs._reaper)
                try:
                    yield envs
                finally:
                    nursery.cancel_scope.cancel()
        finally:
            envs._closing = True
            with trio.CancelScope(shield=True), trio.move_on_after(60):
                for se in list(envs.episodes.values()):
                    if not se.ended:
                        async with se.lock:
                            if not se.ended:
                                await envs._end(se, *STOPPED, STOPPED_DETAIL)
            # The run's log closes next: a projection still held then would first read every
            # task's states and episode entries it has not read (for a reader after the close).
            envs.view = RunView()

    # ---- what is served ----------------------------------------------------------

    def kept_tasks(self, domain: str | None = None) -> list[str]:
        out = []
        for tid in sorted(self.view.tasks):
            t = self.view.tasks[tid]
            if t.status == "kept" and (domain is None or t.slot == domain):
                d = self.view.domains.get(t.slot)
                if d is not None and d.spec is not None:
                    out.append(tid)
        return out

    def domains_json(self) -> list[dict[str, Any]]:
        out = []
        for slot in sorted(self.view.domains):
            d = self.view.domains[slot]
            if d.spec is None or d.status != "done":
                continue
            out.append({"domain": slot, "name": d.name, "description": d.spec.description,
                        "tools": sorted(d.verified), "tasks": len(self.kept_tasks(slot))})
        return out

    def domain_json(self, slot: str) -> dict[str, Any]:
        for d in self.domains_json():
            if d["domain"] == slot or d["name"] == slot:
                return d
        raise ServeError(404, f"unknown domain {clip(slot)}; known: {[d['domain'] for d in self.domains_json()]}", "not_found_error")

    def tasks_json(self, domain: str | None = None) -> list[dict[str, Any]]:
        if domain is not None:
            domain = self.domain_json(domain)["domain"]
        return [self.task_json(tid) for tid in self.kept_tasks(domain)]

    def task_json(self, task_id: str) -> dict[str, Any]:
        t = self.view.tasks.get(task_id)
        if t is None or task_id not in self.kept_tasks(t.slot):
            raise ServeError(404, f"unknown task {clip(task_id)} (a kept task id like d00/t003; GET /v1/tasks lists them)",
                             "not_found_error")
        d = self.view.domains[t.slot]
        return {"task_id": task_id, "domain": t.slot, "domain_name": d.name, "chain_length": len(t.chain),
                "episodes_served": self._next.get(task_id, 0)}

    # ---- episodes ------------------------------------------------------------------

    def get(self, eid: str) -> Served:
        se = self.episodes.get(eid)
        if se is None:
            raise ServeError(404, f"unknown episode {clip(eid)} (open one with POST /v1/episodes)", "not_found_error")
        return se

    def status_json(self, eid: str) -> dict[str, Any]:
        se = self.get(eid)
        ep = se.ep
        return {"episode_id": eid, "task_id": ep.task.task_id, "ended": se.ended, "user_done": se.user_done,
                "turns": ep.turns, "tool_calls": ep.tool_calls, "messages": ep.policy_messages,
                "result": se.result}

    async def open_episode(self, task_id: Any, *, seed: Any = None, label: Any = "") -> dict[str, Any]:
        """Start an episode of a kept task: its tools and the user's opening message.

        ``seed`` (an int in [0, 2**63)): the episode's model calls derive their seeds from
        the task and this seed instead of the episode id, so two episodes of a task opened
        with the same seed and sent the same turns are the same conversation (gymnasium's
        ``reset(seed=...)``). ``label``: what the episode is for, recorded in its
        EpisodeStarted (``checker`` for an env checker's episodes, which export leaves out
        unless asked); lowercase letters, digits, ``_.-``, at most 32 characters.
        """
        if not isinstance(task_id, str):
            raise ServeError(400, "'task_id' must be a string, e.g. \"d00/t003\"")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63):
            raise ServeError(400, f"'seed' must be an integer in [0, 2**63), not {seed!r:.40}")
        if not isinstance(label, str) or not LABEL.match(label):
            raise ServeError(400, f"'label' must be lowercase letters, digits and _.- (at most 32), not {label!r:.40}")
        if self._closing:
            raise ServeError(503, "the server is shutting down", "server_error")
        self.task_json(task_id)
        open_now = sum(not s.ended for s in self.episodes.values())
        if open_now >= self.max_open:
            raise ServeError(429, f"{open_now} episodes are open (the limit is {self.max_open}); end some first",
                             "rate_limit_error")
        task = self.view.tasks[task_id]
        domain = self.view.domains[task.slot]
        k = self._next.get(task_id, 0)
        self._next[task_id] = k + 1  # no checkpoint between reading and taking the number
        eid = served_episode_id(task_id, k)
        ep = new_episode(self.ctx, domain, task, eid)
        se = Served(ep=ep, attempt=k, touched=trio.current_time())
        self.episodes[eid] = se
        async with se.lock:
            with trio.CancelScope(shield=True):  # a half-written step would leave the stream unusable
                await ep.start(k, client_seed=seed, label=label)
                constraints, clock = sandbox_terms(self.ctx, domain, task)
                await self.ctx.sandbox.open_session(eid, domain.verified_code(), task.initial_state,
                                                    constraints=constraints, clock=clock)
                user = await self._user_turn(se, opening=True)
        out: dict[str, Any] = {"episode_id": eid, "task_id": task_id, "domain": task.slot,
                               # a copy: the schemas are shared by every episode of the domain
                               "tools": copy.deepcopy(list(ep.tools)), "system_prompt": ep.policy_messages[0]["content"],
                               "messages": list(ep.policy_messages), "user": user,
                               "limits": {"max_turns": self.ctx.config.max_turns,
                                          "max_tool_calls": self.ctx.config.max_tool_calls,
                                          "idle_timeout_s": self.idle_timeout}}
        out.update(self._ending(se))
        return out

    async def step(self, eid: str, content: Any = "", tool_calls: Any = None, *,
                   token_ids: Any = None, logprobs: Any = None) -> dict[str, Any]:
        """One assistant turn: content and/or tool calls (see the module doc)."""
        se = self.get(eid)
        if content is None:
            content = ""
        if not isinstance(content, str):
            raise ServeError(400, "'content' must be a string")
        tids = _check_list(token_ids, int, "token_ids")
        lps = _check_list(logprobs, float, "logprobs")
        async with se.lock:
            self._check_open(se)
            calls = parse_tool_calls(tool_calls, se.ep.tool_calls + 1)
            check_calls(calls, self.limits)
            with trio.CancelScope(shield=True):
                return await self._step(se, content, calls, tids, lps)

    async def call_tool(self, eid: str, name: Any, arguments: Any = None, call_id: Any = None, *,
                        token_ids: Any = None, logprobs: Any = None) -> dict[str, Any]:
        """One tool call as its own assistant turn. A call the environment could not even
        try (unknown tool, arguments not a JSON object, arguments the tool does not take)
        is recorded as the tool error it is, as local, and raised as a 4xx ServeError.
        The answer is :meth:`step`'s plus ``tool_result``: the call's result (None when a
        limit ended the episode before it ran); ``result`` stays the episode's."""
        se = self.get(eid)
        tids = _check_list(token_ids, int, "token_ids")
        lps = _check_list(logprobs, float, "logprobs")
        async with se.lock:
            self._check_open(se)
            call = tool_call(name, arguments, call_id, se.ep.tool_calls + 1)
            check_calls([call], self.limits)
            with trio.CancelScope(shield=True):
                out = await self._step(se, "", [call], tids, lps)
        results = out["tool_results"]
        if results:
            res = results[0]
            status = CLIENT_ERROR_STATUS.get(res.get("error_kind") or "")
            if status is not None:
                raise ServeError(status, f"tool call {clip(call.name)} failed: {res['error']}", res["error_kind"],
                                 tool_result=res, ended=out["ended"], result=out.get("result"))
        out["tool_result"] = results[0] if results else None
        return out

    async def say(self, eid: str, content: Any, *, token_ids: Any = None, logprobs: Any = None) -> dict[str, Any]:
        """A message to the user (a turn without tool calls); returns the user's reply."""
        if not isinstance(content, str) or not content.strip():
            raise ServeError(400, "'content' must be a non-empty string (to stop, POST .../end)")
        return await self.step(eid, content, None, token_ids=token_ids, logprobs=logprobs)

    async def end(self, eid: str) -> dict[str, Any]:
        """End the episode (if it has not ended by itself) and return its reward."""
        se = self.get(eid)
        async with se.lock:
            if not se.ended:
                with trio.CancelScope(shield=True):
                    await self._end(se, "policy_stopped", "none", "the client ended the episode")
        assert se.result is not None
        return dict(se.result)

    # ---- the shared steps ----------------------------------------------------------

    def _check_open(self, se: Served) -> None:
        se.touched = trio.current_time()
        if se.ended:
            raise ServeError(409, f"episode {se.ep.eid!r} has ended ({se.result['reason']}); its result is attached",  # type: ignore[index]
                             "episode_ended", result=se.result)

    def _ending(self, se: Served) -> dict[str, Any]:
        return {"ended": se.ended, "result": se.result}

    async def _step(self, se: Served, content: str, calls: list[ToolCallRequest],
                    token_ids: list[int] | None, logprobs: list[float] | None) -> dict[str, Any]:
        ep, cfg = se.ep, self.ctx.config
        await ep.record_assistant(content, calls, token_ids=token_ids, logprobs=logprobs)
        results: list[dict[str, Any]] = []
        out: dict[str, Any] = {"episode_id": ep.eid, "tool_results": results, "user": None}
        for call in calls:
            if ep.tool_calls >= cfg.max_tool_calls:
                await self._end(se, "max_tool_calls", "limit", f"{cfg.max_tool_calls} tool calls")
                out.update(self._ending(se))
                return out
            results.append(tool_result_json(await ep.run_tool(call)))
        if not calls:
            if not content:
                await self._end(se, "policy_stopped", "policy", "the policy ended its turn without a message or a tool call")
            else:
                out["user"] = await self._user_turn(se)
                if not se.ended and ep.turns >= cfg.max_turns:
                    await self._end(se, "max_turns", "limit", f"{cfg.max_turns} turns")
        out.update(self._ending(se))
        return out

    async def _user_turn(self, se: Served, opening: bool = False) -> dict[str, Any] | None:
        try:
            turn = await se.ep.user_turn()
        except LlmExhaustedError as exc:
            await self._end(se, "error", "user", str(exc))
            return None
        user = {"message": turn.message, "done": turn.done, "gave_up": turn.gave_up}
        if turn.done or turn.gave_up:
            se.user_done = True
            reason = "user_done" if turn.done else "user_gave_up"
            if opening:
                await self._end(se, reason, "user", "the user ended the episode before the agent spoke")
            else:
                await self._end(se, reason, "none", "")
        return user

    async def _end(self, se: Served, reason: str, fault: str, detail: str) -> None:
        ep = se.ep
        try:
            await self.ctx.sandbox.close_session(ep.eid)
        except Exception:  # noqa: BLE001 - the session may never have opened; the episode still ends
            log.warning("closing the sandbox session failed", episode=ep.eid, exc_info=True)
        await self._finish(se, reason, fault, detail)

    async def _finish(self, se: Served, reason: str, fault: str, detail: str) -> None:
        ep = se.ep
        s = await ep.finish(reason, fault, detail)
        # finish() turns fault "none" into policy/environment for a zero reward (the same rule here).
        if s.reward == 0 and fault == "none":
            fault = "environment" if ep.view.env_failures else "policy"
        se.result = score_json(ep.eid, reason, fault, ep, s, detail)
        log.debug("episode ended", episode=ep.eid, reason=reason, reward=s.reward)

    # ---- episodes a killed server left open ---------------------------------------

    async def close_orphans(self) -> list[str]:
        """End every served episode of the log that has no EpisodeEnded (its server was
        killed), as a stopping server would have; returns their ids.

        Each one's state is the fold of its own events (``self.view``, projected from the
        log at start), never anything held in memory; it stays listed (ended, with its
        result) so a client that comes back gets a 409 with the result, not a 404. Only
        the served episodes are looked at, an ended one by its checkpoint entry's header.
        """
        closed: list[str] = []
        for eid in self._served:
            if eid in self.episodes or episode_ended(self.view.episodes, eid):
                continue
            ev = self.view.episodes.get(eid)
            if ev is None or ev.ended is not None:
                continue
            task = self.view.tasks.get(ev.task_id)
            domain = self.view.domains.get(task.slot) if task is not None else None
            if (task is None or domain is None or domain.spec is None or ev.state is None
                    or task.expected_final is None):
                log.warning("an unended served episode whose task is not in the log: left as it is", episode=eid)
                continue
            se = self._restore(ev, task, domain)
            self.episodes[eid] = se
            await self._finish(se, *STOPPED, ORPHAN_DETAIL)
            closed.append(eid)
        if closed:
            log.warning("ended served episodes a stopped server left open", episodes=closed)
        return closed

    def _restore(self, ev: EpisodeView | EpisodeSummary, task: TaskView, domain: DomainView) -> Served:
        """A served episode rebuilt from its events, its stream positioned after the last one."""
        sid = episode_stream(ev.episode_id)
        recorded = list(self.ctx.log.read_stream(sid))
        stream = Stream(self.ctx.writer, sid, recorded=recorded, mode="append")
        tools, _ = offered(self.ctx, domain, task)
        view = episode_fold.fold((r.event for r in recorded), task.initial_state, ev.episode_id)
        ep = Episode(ctx=self.ctx, domain=domain, task=task, eid=ev.episode_id, stream=stream, view=view, tools=tools)
        ep.last = Ref(sid, len(recorded) - 1) if recorded else None
        return Served(ep=ep, attempt=ev.attempt)

    async def _reaper(self) -> None:
        """End episodes nobody has touched for ``idle_timeout`` seconds."""
        while True:
            await trio.sleep(min(5.0, max(0.05, self.idle_timeout / 4)))
            now = trio.current_time()
            for se in list(self.episodes.values()):
                if not se.ended and not se.lock.locked() and now - se.touched > self.idle_timeout:
                    async with se.lock:
                        if not se.ended:
                            with trio.CancelScope(shield=True):
                                await self._end(se, "timeout", "limit", f"no request for {self.idle_timeout:g}s")


def stored_config(path: str) -> Any:
    """The RunConfig a log was made with (ValueError if the path holds no run)."""
    if not Path(path).exists():
        raise ValueError(f"no log at {path} (make one with: scaleenv run --log {path})")
    with Log.open(path, readonly=True) as event_log:
        stored = event_log.meta_get("run_config")
    if stored is None:
        raise ValueError(f"{path} holds no run (no run_config in its metadata)")
    return from_stored(stored)


@asynccontextmanager
async def open_environments(path: str, options: Any = None, *, idle_timeout: float = 600.0,
                            max_open: int = 1024, limits: Limits | None = None) -> AsyncIterator[Environments]:
    """Open the run at ``path`` for appending (the writer lock) and serve its kept tasks."""
    config = stored_config(path)
    options = options if options is not None else EngineOptions(progress=False)
    async with open_run(path, config, options) as ctx:
        async with Environments.open(ctx, idle_timeout=idle_timeout, max_open=max_open, limits=limits) as envs:
            yield envs

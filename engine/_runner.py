"""Runs: open the log, the sandbox and the LLM port, then run stages over them.

Every stage first folds the log (the projection tells what is already done) and then
starts one trio task per unit of work that is not finished yet: so running the same
command again after Ctrl-C or a crash resumes where the log ends, and finished work is
never redone.
"""

from __future__ import annotations

import itertools
import math
from functools import partial
from pathlib import Path
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import trio

from scaleenv._agents.llm.port import Backend, Llm
from scaleenv._agents.llm.recorded import RecordedBackend, log_calls
from scaleenv._agents.rollout.episode import run_episode
from scaleenv._agents.synth.stage1 import synthesize_domain
from scaleenv._agents.synth.stage2 import task_agent, tasks_left
from scaleenv._backend_spec import backend_from_spec, check_spec, sim_latency, sim_noise
from scaleenv._replay import checkpoint
from scaleenv._replay.projection import DomainView, RunView, fold
from scaleenv._replay.stored import episode_summaries, left_to_run
from scaleenv._sandbox import SandboxPool
from scaleenv._store.errors import LogError
from scaleenv._store.log import Log
from scaleenv._store.record import run_digest

from scaleenv._store.gc_tuning import engine_gc, frozen_heap
from scaleenv._config import ConfigError, RunConfig, from_stored, make, reconcile
from scaleenv._errors import UsageError
from scaleenv._streams import DOMAIN, domain_stream, slot_id, task_stream, tool_streams_of
from scaleenv._store.events.tasks import TaskDiscarded, TaskKept
from scaleenv._store.events.synth import DomainFailed, DomainSynthesized
from scaleenv._logs import get_logger
from ._progress import Progress
from ._run_context import RunContext

log = get_logger("scaleenv.run")

WRITER_CHANNEL = 4096
"""Appends in flight to the log writer before appenders wait (backpressure). Episodes do
not wait for their commits, so a thousand of them keep many appends in flight; with a
shorter channel they parked on it, which cost more than the appends themselves."""


class EngineOptions(msgspec.Struct, frozen=True, kw_only=True):
    """How a run executes (none of these may change a digest)."""

    llm: str = "sim"
    model: str | None = None
    noise: float | None = None
    latency: bool = False
    concurrency: int = 64
    llm_concurrency: int = 64
    sandbox_workers: int = 2
    sync: bool = True
    progress: bool = True
    checkpoint_every: int = 1000
    """A projection checkpoint after every this many finished rollouts, besides the one each
    stage starts with and the run ends with (0: those only), so a resume after a crash
    folds at most about this many episodes' events."""


@asynccontextmanager
async def open_verify(path: str, options: EngineOptions) -> AsyncIterator[RunContext]:
    """A context that re-runs every agent against a recorded log, appending nothing."""
    with Log.open(path, readonly=True) as event_log, engine_gc():
        stored = event_log.meta_get("run_config")
        if stored is None:
            raise UsageError(f"{path} holds no run (no run_config in its metadata)")
        config = from_stored(stored)
        if options.llm.startswith("recorded:") and Path(options.llm.partition(":")[2]).resolve() == Path(path).resolve():
            # The log being verified is already open here: read its recorded calls from it.
            backend: Any = RecordedBackend(log_calls(event_log))
        else:
            backend = backend_from_spec(
                options.llm, model=options.model, noise=sim_noise(options.noise), latency=sim_latency(options.latency),
            )
        llm = Llm(backend, config.seed, limiter=trio.CapacityLimiter(options.llm_concurrency))
        try:
            async with SandboxPool(workers=options.sandbox_workers) as pool:
                yield RunContext(
                    log=event_log, writer=None, llm=llm, sandbox=pool, config=config,
                    agents=trio.CapacityLimiter(options.concurrency), progress=Progress(enabled=options.progress),
                    mode="verify", reference=event_log,
                )
        finally:
            await llm.aclose()


def adopt_config(event_log: Log, config: RunConfig | Mapping[str, Any]) -> RunConfig:
    """The config of the run in ``event_log`` once ``config`` is applied to it, stored.

    ``config`` is a whole :class:`RunConfig` (every field given) or a mapping of the fields
    a command sets (the others keep the log's values). See :func:`scaleenv._config.reconcile`:
    counts may grow, any other difference raises :class:`ConfigError` naming the field.
    """
    given = msgspec.to_builtins(config) if isinstance(config, RunConfig) else dict(config)
    stored = event_log.meta_get("run_config")
    if stored is not None:
        try:
            from_stored(stored)
        except ConfigError as exc:  # not the command's values: the log's own record is bad
            raise LogError(f"{event_log.path}: the run config stored in this log is invalid ({exc})") from None
    try:
        adopted = reconcile(stored, given)
    except ConfigError as exc:
        raise ConfigError(f"{event_log.path}: {exc}") from None
    as_stored = msgspec.to_builtins(adopted)
    if stored != as_stored:
        event_log.meta_set("run_config", as_stored)
    return adopted


@asynccontextmanager
async def open_run(path: str, config: RunConfig | Mapping[str, Any], options: EngineOptions, *,
                   backend: Backend | None = None) -> AsyncIterator[RunContext]:
    """Open the run in the log at ``path`` (created if absent) for appending; yields its context.

    ``config``: a whole RunConfig, or the fields a command sets (see :func:`adopt_config`).
    ``backend``: a model backend object to use instead of the one ``options.llm`` names (a
    program embedding scaleenv, or a test's scripted model); the run closes it when it ends.
    Holds the log's writer lock, its writer task, a sandbox pool and the LLM port until the
    block exits; cancellation closes them in that order and loses nothing acknowledged.
    A bad ``options.llm`` raises ValueError before the log is created or locked (with a
    ``backend`` given, ``options.llm`` is not looked at: a shard worker serving a shipped
    recording never checks the driver's path it names).
    """
    if backend is None:
        check_spec(options.llm, model=options.model)
    with Log.open(path, sync=options.sync) as event_log, engine_gc():
        config = adopt_config(event_log, config)
        if backend is None:
            backend = backend_from_spec(
                options.llm, model=options.model, noise=sim_noise(options.noise),
                latency=sim_latency(options.latency),
            )
        llm = Llm(backend, config.seed, limiter=trio.CapacityLimiter(options.llm_concurrency))
        try:
            async with event_log.writer(channel_size=WRITER_CHANNEL) as writer, SandboxPool(workers=options.sandbox_workers) as pool:
                yield RunContext(
                    log=event_log, writer=writer, llm=llm, sandbox=pool, config=config,
                    agents=trio.CapacityLimiter(options.concurrency), progress=Progress(enabled=options.progress),
                    checkpoint_every=options.checkpoint_every,
                )
        finally:
            await llm.aclose()


def project(event_log: Log, *, lean: bool = False) -> RunView:
    """The whole log folded into the run's view (domains, tools, graph, tasks, episode
    summaries): the newest valid projection checkpoint of the log plus the records after
    it; a writable log gets a new checkpoint (see :mod:`scaleenv._replay.checkpoint`).
    ``lean``: a planner's view, whose memory does not grow with the episodes finished
    (see :func:`scaleenv._replay.checkpoint.projected`)."""
    return checkpoint.project(event_log, lean=lean)


def domain_finished(event_log: Log, slot: int) -> bool:
    """Whether domain ``slot`` is done or failed: its stream ends with its verdict
    (``DomainSynthesized`` or ``DomainFailed``, as the projection's status says). One short
    read of the stream's last record, whatever the log holds."""
    stream = domain_stream(slot_id(slot))
    n = event_log.stream_length(stream)
    last = next(event_log.read_stream(stream, n - 1), None) if n else None
    return last is not None and isinstance(last.event, DomainSynthesized | DomainFailed)


ADMIT_YIELD = 256
"""The admission loops let the other tasks run at least once per this many units they pass
(a resume walks past every finished domain before it reaches work)."""


async def stage1(ctx: RunContext) -> None:
    """Stage 1: synthesize every domain slot the log has not finished.

    Domains are admitted in slot order, at most ``concurrency`` in flight (each a task
    that ends when its domain does), so memory does not grow with the number of domains
    in the run or already finished, and work starts at once at any size: whether a slot
    is finished is read from its own stream when the loop reaches it (no fold of the log).
    Awaits until every domain is done or failed; cancellation stops every agent at once,
    and the next run resumes them from the log."""
    n = ctx.config.domains
    ctx.progress.set_stage("synth", {"domains": n})
    ctx.progress.set("domains", 0)
    in_flight = trio.CapacityLimiter(max(1, int(ctx.agents.total_tokens)))

    async def one(slot: int, token: object) -> None:
        try:
            await ctx.guarded(synthesize_domain, ctx, slot)
        finally:
            in_flight.release_on_behalf_of(token)

    async with trio.open_nursery() as nursery:
        for slot in range(n):
            if slot % ADMIT_YIELD == 0:
                await trio.lowlevel.checkpoint()
            if ctx.mode != "verify" and domain_finished(ctx.log, slot):
                ctx.progress.add("domains")
                continue
            token = object()
            await in_flight.acquire_on_behalf_of(token)
            nursery.start_soon(one, slot, token)
    ctx.progress.finish()


def _ends_with(event_log: Log, stream: str, kinds: tuple[type, ...], n: int | None = None) -> Any:
    """The last event of ``stream`` if it is one of ``kinds``, else None (one short read)."""
    if n is None:
        n = event_log.stream_length(stream)
    last = next(event_log.read_stream(stream, n - 1), None) if n else None
    return last.event if last is not None and isinstance(last.event, kinds) else None


def domains_for_tasks(event_log: Log) -> Iterator[DomainView]:
    """Every domain that stage 1 finished with verified tools, in slot order, each folded
    from its own streams (its domain stream and its tools') when the iteration reaches
    it: the domains, tools and graph :func:`project` would give, one domain in memory at a
    time whatever the log holds."""
    for stream, n in event_log.streams(DOMAIN):
        verdict = _ends_with(event_log, stream, (DomainSynthesized,), n)
        if verdict is None or not verdict.verified:
            continue
        slot = stream[len(DOMAIN):]
        records = itertools.chain(event_log.read_stream(stream),
                                  *(event_log.read_stream(s) for s, _ in event_log.streams(tool_streams_of(slot))))
        domain = fold(records).domains.get(slot)
        if domain is not None and domain.status == "done" and domain.spec is not None and domain.verified:
            yield domain


async def stage2(ctx: RunContext) -> None:
    """Stage 2: instantiate the tasks of every synthesized domain that are not finished.

    Domains are read one at a time from their own streams (:func:`domains_for_tasks`) and
    whether a task is finished from the last record of its stream, so memory does not
    grow with what the log holds; tasks are admitted domain by domain, at most
    ``concurrency`` in flight (each a task that ends when its task is kept or discarded).
    Awaits until every task is kept or discarded; cancellation as for :func:`stage1`."""
    ctx.progress.set_stage("tasks")
    in_flight = trio.CapacityLimiter(max(1, int(ctx.agents.total_tokens)))

    def finished(tid: str) -> bool:
        return _ends_with(ctx.log, task_stream(tid), (TaskKept, TaskDiscarded)) is not None

    async def one(domain: Any, tid: str, token: object) -> None:
        try:
            await ctx.guarded(task_agent, ctx, domain, tid)
        finally:
            in_flight.release_on_behalf_of(token)

    async with trio.open_nursery() as nursery:
        for domain in domains_for_tasks(ctx.log):
            for i, tid in enumerate(tasks_left(ctx, domain, finished)):
                if i % ADMIT_YIELD == 0:
                    await trio.lowlevel.checkpoint()
                token = object()
                await in_flight.acquire_on_behalf_of(token)
                nursery.start_soon(one, domain, tid, token)
            await trio.lowlevel.checkpoint()
    ctx.progress.finish()


async def rollouts(ctx: RunContext) -> None:
    """Run ``episodes_per_task`` episodes of every kept task that the log has not finished.

    Awaits until all are scored and committed; at most ``concurrency`` run at once.
    Cancellation ends the episodes in flight without their reward; they run again on resume."""
    work = rollout_work(project(ctx.log, lean=True), ctx.config.episodes_per_task, skip_finished=ctx.mode != "verify")
    ctx.progress.set_stage("rollout", {"episodes": len(work)})
    totals = [0.0, 0]  # sum of rewards, finished episodes (a running mean: O(1) per episode)
    checkpointing = [False]

    async def checkpoint_now() -> None:
        """A projection checkpoint, folded in a worker thread (the loop keeps running; the GIL is shared)."""
        checkpointing[0] = True
        try:
            await trio.to_thread.run_sync(checkpoint.project, ctx.log)
        finally:
            checkpointing[0] = False

    async def one(domain: Any, task: Any, g: int, token: object) -> None:
        held = [True]

        def release() -> None:  # the episode only waits for its commit now: its slot may go on
            if held[0]:
                held[0] = False
                ctx.agents.release_on_behalf_of(token)

        try:
            ctx.progress.add("running")
            r = await ctx.guarded(partial(run_episode, done_working=release), ctx, domain, task, g)
            totals[0] += r or 0.0
            totals[1] += 1
            ctx.progress.add("running", -1)
            ctx.progress.add("episodes")
            ctx.progress.set("mean reward", totals[0] / totals[1])
            every = ctx.checkpoint_every
            if every and ctx.mode == "append" and totals[1] % every == 0 and not checkpointing[0]:
                await checkpoint_now()  # after its slot was released: the other episodes go on
        finally:
            release()

    with frozen_heap():  # the projection lives throughout the rollouts: keep the collector off it
        await _admit(ctx, work, one)
    ctx.progress.finish()


def rollout_work(view: RunView, episodes_per_task: int, *, skip_finished: bool = True) -> list[tuple[Any, Any, int]]:
    """``(domain, task, attempt)`` of every episode of a kept task that is left to run (all
    of them unless ``skip_finished``); an episode with its reward is finished. On a view
    read from a checkpoint, no episode is decoded, and a finished run (or one whose few
    lagging tasks are all that is left) is answered from the checkpoint's run progress
    without walking every task (:func:`scaleenv._replay.stored.left_to_run`)."""
    if skip_finished:
        items = left_to_run(view.tasks, view.episodes, episodes_per_task)
    else:
        items = [(tid, g) for tid in sorted(view.tasks) if view.tasks[tid].status == "kept"
                 for g in range(episodes_per_task)]
    return [(view.domains[view.tasks[tid].slot], view.tasks[tid], g) for tid, g in items]


async def _admit(ctx: RunContext, work: list[tuple[Any, Any, int]],
                 one: Callable[..., Awaitable[None]]) -> None:
    async with trio.open_nursery() as nursery:
        for domain, task, g in work:
            # Admit an episode before its task exists: only `concurrency` episode tasks are
            # alive at a time, however many episodes the run has (memory stays flat).
            # Free slots are filled at once (a slot freed while the loop waits is handed to
            # it, and the rest are taken without a trip through the scheduler each: when a
            # wave of episodes ends together, a thousand runnable tasks make one trip long).
            token = object()
            await trio.lowlevel.checkpoint_if_cancelled()
            try:
                ctx.agents.acquire_on_behalf_of_nowait(token)
            except trio.WouldBlock:
                await ctx.agents.acquire_on_behalf_of(token)
            nursery.start_soon(one, domain, task, g, token)


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased pass@k estimator (Chen et al. 2021): 1 - C(n-c, k) / C(n, k)."""
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


STAGES: dict[str, Callable[[RunContext], Awaitable[None]]] = {"synth": stage1, "tasks": stage2, "rollout": rollouts}
"""The pipeline's stages by name, in order."""


def run(path: str, config: RunConfig | Mapping[str, Any] | None = None, options: EngineOptions | None = None,
        stages: Sequence[str] = ("synth", "tasks", "rollout")) -> dict[str, Any]:
    """Run ``stages`` of the pipeline on the log at ``path`` (created if absent); returns the summary.

    Blocking (it runs its own trio loop). ``config`` as for :func:`open_run` (None: the log's
    run, or the defaults on a new log). Running it again resumes where the log ends;
    Ctrl-C loses nothing acknowledged.
    """
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown}; the stages are {list(STAGES)}")
    opts = options if options is not None else EngineOptions()

    async def main() -> dict[str, Any]:
        async with open_run(path, config if config is not None else {}, opts) as ctx:
            for name in stages:
                await STAGES[name](ctx)
            return summary(project(ctx.log))

    return trio.run(main)


def _requests_raised(task: Any, episode: Any) -> int:
    """How many of its task's requests the user raised in an episode (1 for a one-request task).

    A request is raised when one user message holds it (whitespace aside); the run
    index (``scaleenv ui``) counts the same way, message by message."""
    if task is None or not task.requests:
        return 1
    said = [" ".join(str(m or "").split()) for m in episode.user_messages]
    return max(1, sum(1 for r in task.requests if any(" ".join(r.split()) in m for m in said)))


def summary(view: RunView) -> dict[str, Any]:
    """The run's figures per domain (tools, tasks, episodes, pass@k, ...) and its digest.
    A checkpoint's episodes are read once each, without their database state
    (:func:`scaleenv._replay.stored.episode_summaries`), and only the finished ones are kept."""
    if view.lean:
        raise ValueError("a lean view (finished episodes stripped) has no run summary: project it without lean")
    finished_by_slot: dict[str, list[Any]] = {}
    for e in episode_summaries(view.episodes):
        if e.reward is not None:
            finished_by_slot.setdefault(e.task_id.split("/", 1)[0], []).append(e)
    domains = []
    for slot in sorted(view.domains):
        d = view.domains[slot]
        tasks = [t for t in view.tasks.values() if t.slot == slot]
        kept = [t for t in tasks if t.status == "kept"]
        discarded: dict[str, int] = {}
        for t in tasks:
            if t.status == "discarded":
                discarded[t.reason] = discarded.get(t.reason, 0) + 1
        # Local rollouts (…/g<attempt>); episodes served to outside policies (…/s<k>) are counted apart.
        finished = [e for e in finished_by_slot.get(slot, []) if e.task_id.startswith(slot + "/")]
        episodes = [e for e in finished if e.episode_id.rsplit("/", 1)[-1].startswith("g")]
        served = len(finished) - len(episodes)
        by_task: dict[str, list[float]] = {}
        for e in episodes:
            by_task.setdefault(e.task_id, []).append(e.reward.reward)  # type: ignore[union-attr]
        k = max((len(v) for v in by_task.values()), default=0)
        reasons: dict[str, int] = {}
        for e in episodes:
            if e.ended is not None:
                key = f"{e.ended.reason}/{e.ended.fault}"
                reasons[key] = reasons.get(key, 0) + 1
        def mean(values: list[float]) -> float | None:
            return round(sum(values) / len(values), 2) if values else None

        requests = [_requests_raised(view.tasks.get(e.task_id), e) for e in episodes]
        domains.append({
            "slot": slot,
            "name": d.name,
            "status": d.status,
            "tools_proposed": len(d.tools),
            "tools_verified": len(d.verified),
            "tools_rejected": len(d.rejected),
            "tables": len(d.spec.tables) if d.spec else 0,
            "repair_rounds": sum(t.rounds for t in d.tools.values()),
            "code_repairs": sum(t.code_repairs for t in d.tools.values()),
            "fixture_repairs": sum(t.fixture_repairs for t in d.tools.values()),
            "graph_edges": len(d.edges),
            "state_edges": sum(e.kind == "state" for e in d.edges),
            "edges_by_kind": {k: sum(e.kind == k for e in d.edges) for k in ("data", "state", "shared")},
            "edges_judged": d.judged,
            "edges_dropped": d.dropped,
            "llm_calls": d.llm_calls,
            "tokens": d.tokens,
            "tasks": len(kept),
            "tasks_discarded": discarded,
            "mean_chain_length": round(sum(len(t.chain) for t in kept) / len(kept), 2) if kept else 0.0,
            "distractors_per_task": round(sum(len(t.distractors) for t in kept) / len(kept), 2) if kept else 0.0,
            "mean_env_tools": mean([len(t.env_tools) for t in kept]),
            "mean_goals": mean([t.goals for t in kept]),
            "mean_golden_tool_calls": mean([len(t.golden.steps) for t in kept if t.golden]),
            "mean_background_rows": mean([t.background for t in kept]),
            "task_tokens": sum(t.tokens for t in tasks),
            "tokens_per_task": round((d.tokens + sum(t.tokens for t in tasks)) / len(kept)) if kept else None,
            "episodes": len(episodes),
            "served_episodes": served,
            "pass_at_1": round(sum(sum(v) / len(v) for v in by_task.values()) / len(by_task), 4) if by_task else None,
            f"pass_at_{k}" if k else "pass_at_k": (
                round(sum(pass_at_k(len(v), int(sum(v)), k) for v in by_task.values()) / len(by_task), 4) if by_task else None
            ),
            "mean_turns": round(sum(e.ended.turns for e in episodes if e.ended) / len(episodes), 2) if episodes else None,
            "mean_tool_calls": round(sum(e.ended.tool_calls for e in episodes if e.ended) / len(episodes), 2) if episodes else None,
            "mean_episode_tool_calls": mean([e.ended.tool_calls for e in episodes if e.ended]),
            "mean_user_requests": mean([float(r) for r in requests]),
            "end_reasons": reasons,
        })
    return {
        "domains": domains,
        "digest": run_digest(view.stream_digests()),
        "events": view.events,
        "streams": len(view.digests),
        "llm_calls": view.llm_calls,
        "llm_invalid_answers": view.llm_invalid,
    }

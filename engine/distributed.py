"""Distributed rollouts: episodes spread over shard workers (Ray tasks), merged back deterministically.

The driver (``scaleenv rollout --ray ADDRESS|local [--shards N]``):

1. opens the main log (writable: it holds the writer lock for the whole run), merges any
   shards an interrupted earlier run left on disk, folds the log and lists the episodes
   not finished yet (kept tasks x ``--episodes-per-task``);
2. assigns each episode to a shard by a stable hash of its stream id
   (:func:`scaleenv.shards.shard_of`) and submits one task per non-empty shard;
3. each worker runs its own trio engine (``trio.run`` inside the Ray task: its own writer,
   sandbox pool and LLM port) and appends to its own LMDB log ``<log>.shards/<k>``; it
   reads the stage-1/2 events it needs (its tasks' ``task/..`` streams and their domains'
   ``domain/..`` and ``tool/..`` streams) from the main log, readonly;
4. when the workers are done, the driver merges the shards into the main log in
   (stream id, n) order (:func:`scaleenv.shards.merge_shards`) and removes them.

A worker that dies (its process is killed, its node is lost) is re-run by Ray
(``max_retries``). Its shard log already holds every acknowledged event, so on the
re-run the episodes it finished are skipped (a stream with a reward is complete) and the
ones it was in the middle of are resumed: ``RunContext.stream`` replays the recorded
prefix (recorded LLM outputs are reused) and appends only past it. Nothing is repeated,
and the merged run digest equals a single-machine run with the same seed.

Ray is optional (``pip install 'scaleenv[ray]'``); :func:`distributed_rollouts` with
``executor="inprocess"`` runs the same workers concurrently in this process without it
(what the tests use to check merge determinism in CI).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import msgspec
import trio

from scaleenv.agents.rollout.episode import run_episode
from scaleenv.replay.projection import RunView, fold
from scaleenv.store.log import Log
from scaleenv.store.writer import Pending

from .errors import UsageError, WorkFailed
from scaleenv.config import RunConfig
from scaleenv.streams import domain_stream, episode_id, episode_stream, task_stream, tool_streams_of
from scaleenv.logs import get_logger
from .runner import EngineOptions, adopt_config, open_run, project, summary
from .shards import SHARD_META, MergeStats, existing_shards, merge_shards, remove_shards, shard_of, shard_path

log = get_logger("scaleenv.distributed")

Executor = Literal["ray", "inprocess"]
FAIL_EXIT_CODE = 17


class ShardWork(msgspec.Struct, frozen=True, kw_only=True):
    """What one worker does: which episodes, where to read and write, with what settings."""

    index: int
    of: int
    main_path: str
    shard_path: str
    items: list[tuple[str, int]]  # (task id, attempt)
    config: RunConfig
    options: EngineOptions
    # Test hook: on its first attempt, the worker process exits after this many episodes.
    fail_after: int | None = None


# -- the worker ---------------------------------------------------------------------

def context_streams(main: Log, task_ids: Sequence[str]) -> list[str]:
    """The stage-1/2 streams the episodes of ``task_ids`` need: their tasks, domains and tools.

    This is exactly what a node without the main log would have to be shipped.
    """
    slots = sorted({t.split("/", 1)[0] for t in task_ids})
    out = [task_stream(t) for t in sorted(set(task_ids))]
    for slot in slots:
        out.append(domain_stream(slot))
        out.extend(sid for sid, _ in main.streams(tool_streams_of(slot)))
    return out


def load_context(main: Log, task_ids: Sequence[str]) -> RunView:
    """Fold only the streams the tasks need (domain and task views do not depend on other streams)."""
    view = RunView()
    for sid in context_streams(main, task_ids):
        fold(main.read_stream(sid), view)
    return view


async def run_shard_async(work: ShardWork, main: Log | None = None) -> dict[str, Any]:
    """Run one shard's episodes into its own log; returns what it did (skipped, resumed, fresh)."""
    own = main is None
    src = Log.open(work.main_path, readonly=True) if main is None else main
    try:
        view = load_context(src, [t for t, _ in work.items])
        Path(work.shard_path).parent.mkdir(parents=True, exist_ok=True)
        options = msgspec.structs.replace(work.options, progress=False)
        async with open_run(work.shard_path, work.config, options) as ctx:
            shard = ctx.log
            info = shard.meta_get(SHARD_META)
            if info is None:
                shard.meta_set(SHARD_META, {"index": work.index, "of": work.of, "main": work.main_path})
            attempts: list[dict[str, Any]] = list(shard.meta_get("attempts", []))
            attempt_no = len(attempts)
            mine = {"pid": os.getpid(), "host": socket.gethostname(), "finished": False}
            attempts.append(mine)
            shard.meta_set("attempts", attempts)

            done = fold(shard.read(), RunView()).episodes  # the shard holds only episode streams
            todo: list[tuple[str, int]] = []
            skipped = resumed = fresh = 0
            for tid, g in work.items:
                eid = episode_id(tid, g)
                ep = done.get(eid)
                if ep is not None and ep.reward is not None:
                    skipped += 1
                    continue
                sid = episode_stream(eid)
                have, main_has = shard.stream_length(sid), src.stream_length(sid)
                if main_has > have:
                    # The main log holds a prefix (an interrupted single-machine run): carry it
                    # over so the episode resumes from it (recorded LLM outputs reused).
                    prefix = list(src.read_stream(sid, have))
                    await ctx.writer.append([Pending(r.stream, r.n, r.cause, r.actor, r.event) for r in prefix])
                    have = main_has
                resumed += have > 0
                fresh += have == 0
                todo.append((tid, g))
            mine.update(skipped=skipped, resumed=resumed, fresh=fresh)
            shard.meta_set("attempts", attempts)

            completed = 0
            rewards: list[float] = []

            async def one(tid: str, g: int) -> None:
                nonlocal completed
                async with ctx.agents:
                    task = view.tasks[tid]
                    r = await run_episode(ctx, view.domains[task.slot], task, g)
                rewards.append(r or 0.0)
                completed += 1
                if work.fail_after is not None and attempt_no == 0 and completed >= work.fail_after:
                    # Test hook: die like a lost node would (no cleanup, no flush beyond commits).
                    os._exit(FAIL_EXIT_CODE)

            async with trio.open_nursery() as nursery:
                for tid, g in todo:
                    nursery.start_soon(one, tid, g)
            mine.update(finished=True, completed=completed)
            shard.meta_set("attempts", attempts)
            return {"index": work.index, "episodes": len(work.items), "skipped": skipped, "resumed": resumed,
                    "fresh": fresh, "completed": completed, "attempt": attempt_no, "pid": os.getpid(),
                    "host": mine["host"], "events": shard.count()}
    finally:
        if own:
            src.close()


def shard_task(work: ShardWork) -> dict[str, Any]:
    """The body of a Ray task: a whole trio engine for one shard."""
    return trio.run(run_shard_async, work)


# -- the driver ---------------------------------------------------------------------

def plan(main: Log, main_path: str, config: RunConfig, options: EngineOptions, shards: int,
         fail_after: int | None = None) -> tuple[list[ShardWork], int]:
    """Shard work for every unfinished episode of every kept task; and how many were done already."""
    view = project(main)
    by_shard: dict[int, list[tuple[str, int]]] = {}
    finished = 0
    for tid in sorted(view.tasks):
        if view.tasks[tid].status != "kept":
            continue
        for g in range(config.episodes_per_task):
            sid = episode_stream(episode_id(tid, g))
            ep = view.episodes.get(sid.partition("/")[2])
            if ep is not None and ep.reward is not None:
                finished += 1
                continue
            by_shard.setdefault(shard_of(sid, shards), []).append((tid, g))
    works = [
        ShardWork(index=k, of=shards, main_path=main_path, shard_path=str(shard_path(main_path, k)),
                  items=by_shard[k], config=config, options=options, fail_after=fail_after)
        for k in sorted(by_shard)
    ]
    return works, finished


async def _run_inprocess(works: Sequence[ShardWork], main: Log) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []

    async def one(w: ShardWork) -> None:
        results.append(await run_shard_async(w, main))

    async with trio.open_nursery() as nursery:
        for w in works:
            nursery.start_soon(one, w)
    return sorted(results, key=lambda r: r["index"])


def ray_available() -> bool:
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


def _ray_init(address: str) -> bool:
    """Connect to (or start, for ``local``) a Ray cluster; True if this call started it."""
    try:
        import ray
    except ImportError:
        raise UsageError("--ray needs Ray: pip install 'scaleenv[ray]'") from None
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    kw: dict[str, Any] = {"include_dashboard": False, "logging_level": "WARNING", "log_to_driver": False}
    if address == "local":
        ray.init(**kw)
    else:
        ray.init(address=address, **kw)
    return True


def default_shards(address: str | None) -> int:
    if address is not None and ray_available():
        import ray

        if ray.is_initialized():
            return max(1, int(ray.cluster_resources().get("CPU", 1)))
    return max(1, os.cpu_count() or 1)


def _run_ray(works: Sequence[ShardWork], max_retries: int) -> tuple[list[dict[str, Any]], list[str]]:
    import ray

    remote = ray.remote(num_cpus=1, max_retries=max_retries)(shard_task)
    pending = {remote.remote(w): w for w in works}
    results: list[dict[str, Any]] = []
    failures: list[str] = []
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        for ref in ready:
            w = pending.pop(ref)
            try:
                results.append(ray.get(ref))
            except Exception as exc:  # noqa: BLE001 - a lost shard: reported, its events still merged
                failures.append(f"shard {w.index}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    return sorted(results, key=lambda r: r["index"]), failures


def distributed_rollouts(main_path: str, config: RunConfig | Mapping[str, Any], options: EngineOptions, *,
                         shards: int | None = None, executor: Executor = "ray", ray_address: str = "local",
                         max_retries: int = 3, fail_after: int | None = None,
                         keep_shards: bool = False) -> dict[str, Any]:
    """Run every unfinished episode over shard workers, merge them; returns the run summary.

    The summary is :func:`scaleenv.runner.summary` of the merged log plus a
    ``"distributed"`` object (shards, per-shard work, merge figures). Raises
    :class:`WorkFailed` if a shard could not finish (what it did is merged anyway;
    running the command again resumes).
    """
    main_path = str(Path(main_path).resolve())
    started_ray = False
    if executor == "ray":
        started_ray = _ray_init(ray_address)
    try:
        n = shards if shards is not None else default_shards(ray_address if executor == "ray" else None)
        if n < 1:
            raise UsageError("--shards must be at least 1")
        t0 = time.perf_counter()
        with Log.open(main_path, sync=options.sync) as main:
            config = adopt_config(main, config)
            leftovers = existing_shards(main_path)
            recovered = MergeStats()
            if leftovers:
                # An interrupted earlier run: keep every event it acknowledged, then start clean.
                recovered = trio.run(merge_shards, main, leftovers)
                remove_shards(main_path)
            works, finished = plan(main, main_path, config, options, n, fail_after)
            log.info("distributed rollouts", shards=n, episodes=sum(len(w.items) for w in works), finished=finished)
            t1 = time.perf_counter()
            failures: list[str] = []
            if executor == "ray":
                results, failures = _run_ray(works, max_retries)
            else:
                results = trio.run(_run_inprocess, works, main)
            t2 = time.perf_counter()
            paths = existing_shards(main_path)
            merged = trio.run(merge_shards, main, paths)
            if not keep_shards and not failures:
                remove_shards(main_path)
            result = summary(project(main))
        result["distributed"] = {
            "executor": executor,
            "shards": n,
            "episodes_assigned": sum(len(w.items) for w in works),
            "episodes_already_done": finished,
            "workers": results,
            "failures": failures,
            "recovered_from_earlier_run": recovered.as_dict() if leftovers else None,
            "merge": merged.as_dict(),
            "seconds": {"plan": round(t1 - t0, 3), "workers": round(t2 - t1, 3),
                        "merge": round(merged.seconds, 3)},
        }
        if failures:
            raise WorkFailed(
                f"{len(failures)} shard(s) did not finish ({'; '.join(failures)}); what they did is in "
                f"{main_path}; run the same command again to resume"
            )
        return result
    finally:
        if started_ray:
            import ray

            ray.shutdown()


__all__ = [
    "ShardWork", "context_streams", "default_shards", "distributed_rollouts", "load_context", "plan",
    "ray_available", "run_shard_async", "shard_task",
]

"""Distributed stages: domains, tasks or episodes spread over shard workers (Ray actors), merged back deterministically.

Ship, don't share: no worker opens a path of the driver's filesystem. The driver
(``scaleenv rollout --ray ADDRESS|local [--shards N]``):

1. opens the main log (writable: it holds the writer lock for the whole run), merges any
   shards an interrupted earlier run left on disk, folds the log and lists the items of
   the stage not finished yet: stage 1's domain slots (``--domains``), stage 2's tasks
   (synthesized domains x ``--tasks-per-domain``) or the rollouts' episodes (kept tasks x
   ``--episodes-per-task``; from the lean view's run progress, so a finished or nearly
   finished log costs what is left, not one look per episode: ``left_to_run``);
2. assigns each item to a shard by a stable hash of its stream id
   (:func:`scaleenv._shards.shard_of`); per shard it keeps a *receiving log* on its own
   disk, ``<log>.shards/<k>``, holding what that shard has shipped back (plus any prefix
   of its items an interrupted single-machine run left in the main log);
3. ships each shard what it needs through Ray's object store, in bounded chunks of
   encoded records (:mod:`scaleenv._shipping`): for episodes their tasks' ``task/..``
   streams and their domains' ``domain/..`` and ``tool/..`` streams, for tasks their
   domains' and tools' streams, for domains nothing (a domain is built from its brief,
   which the run's config determines); and the receiving log's records (what earlier
   attempts finished); for a ``recorded:LOG`` backend, the recording's model calls of the
   shard's own items' streams (:func:`recordings`: only the driver opens LOG); each shard
   may have its own ``--llm`` (``shard_llms``, :func:`shard_options`); one Ray actor per shard
   (:class:`scaleenv._shard_worker.ShardWorker`) writes a shard log in a temporary
   directory of its own on its node, runs its items there on its own trio engine, and
   is pulled for its new records, one bounded chunk per call; the driver appends each
   chunk to the receiving log and acknowledges it with the next pull;
4. when every shard is done, merges the receiving logs into the main log in
   (stream id, n) order (:func:`scaleenv._shards.merge_shards`) and removes them.

A worker that dies (its process is killed, its node is lost) is started again by the
driver (``max_retries`` times), on any node, and shipped what the dead one had shipped
back: the items it finished are skipped (an episode with a reward, a kept or discarded
task, a done or failed domain) and the ones it was in the middle of resume from their
shipped prefix (``RunContext.stream``
replays it; recorded LLM outputs are reused). Nothing is repeated, and the merged run
digest equals a single-machine run's with the same seed: a domain's, a task's or an
episode's streams depend only on the run's config, its seed and (for tasks and episodes)
the streams shipped to it, never on which worker ran it or what ran beside it.

Ctrl-C: SIGINT or SIGTERM while the workers run cancels the driver's trio run and kills
the workers (Ray actors: ``ray.kill``; threads: their engines cancelled), without waiting
for them to finish what they do; :func:`distributed_stage` then raises
:class:`KeyboardInterrupt` (the CLI exits 130 with one line). What the driver committed
to the receiving logs stays; the next run merges it first and resumes from it, to the
same digest. SIGTERM raises :class:`KeyboardInterrupt` like SIGINT for the whole call.

Ray is optional (``pip install 'scaleenv[ray]'``); :func:`distributed_rollouts` with
``executor="inprocess"`` runs the same workers on threads of this process, through the
same ship-and-pull protocol (what the tests use to check merge determinism without Ray).
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from functools import partial
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, Protocol

import msgspec
import trio

from scaleenv._replay.projection import RunView, fold
from scaleenv._replay.stored import left_to_run
from scaleenv._store.events.llm import LlmCalled
from scaleenv._store.log import Log
from scaleenv._store.record import default_codec

from ._errors import UsageError, WorkFailed
from scaleenv._config import RunConfig
from scaleenv._streams import domain_stream, slot_id, slot_index, slot_of, task_id, task_stream, tool_streams_of
from scaleenv._logs import get_logger
from ._runner import EngineOptions, adopt_config, project, summary
from ._shard_worker import (FAIL_EXIT_CODE, Kind, ShardJob, ShardWorker, Shipment, check_shard_llm, recorded_path,
                            unit_finished, unit_stream, unit_streams)
from ._shards import SHARD_META, MergeStats, existing_shards, merge_shards, remove_shards, shard_of, shard_path
from ._shipping import CHUNK_RECORDS, Chunk, as_pending, chunked, decode_chunk, encoded_log, encoded_streams

log = get_logger("scaleenv._distributed")

Executor = Literal["ray", "inprocess"]


class ShardWork(msgspec.Struct, frozen=True, kw_only=True):
    """The driver's plan for one shard: its items, and where the driver keeps what it ships back."""

    index: int
    of: int
    main_path: str
    shard_path: str  # the driver's receiving log (never shipped to a worker)
    items: list[tuple[str, int]]  # (task id, attempt); for tasks (task id, 0); for domains (slot id, 0)
    config: RunConfig
    options: EngineOptions
    # Test hook: on its first attempt, the worker process exits after this many shipped episodes.
    fail_after: int | None = None
    chunk_records: int = CHUNK_RECORDS  # the bound on records per shipped chunk, both ways
    kind: Kind = "episodes"


class WorkerLost(Exception):
    """The worker process or its node is gone (the shard is started again elsewhere)."""


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
KILL_GRACE_S = 0.5
"""How long an interrupted driver waits for an in-process worker's engine to unwind before leaving it."""


# -- Ctrl-C ----------------------------------------------------------------------------

def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """For the block, SIGTERM raises :class:`KeyboardInterrupt` like SIGINT (it replaces
    the handler ``ray.init`` installs, which exits with status 15 wherever the driver is).
    Only in the main thread; elsewhere (signals never reach other threads) a no-op."""
    if not _in_main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


async def interruptible(fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
    """``await fn(*args)``; SIGINT or SIGTERM cancels it and, once it has unwound (its
    ``finally`` blocks and shielded cleanups done), raises :class:`KeyboardInterrupt`.

    Signals are received only in the main thread; elsewhere this is ``await fn(*args)``.
    """
    got: list[int] = []

    async with trio.open_nursery() as nursery:
        async def watch(task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
            with trio.open_signal_receiver(*STOP_SIGNALS) as signals:
                task_status.started()
                async for signum in signals:
                    got.append(signum)
                    nursery.cancel_scope.cancel()
                    return

        if _in_main_thread():
            await nursery.start(watch)
        out = await fn(*args)
        nursery.cancel_scope.cancel()
    if got:
        raise KeyboardInterrupt(signal.Signals(got[0]).name)
    return out


# -- what a shard needs -------------------------------------------------------------

def context_streams(main: Log, task_ids: Sequence[str]) -> list[str]:
    """The stage-1/2 streams the episodes of ``task_ids`` need: their tasks, domains and tools.

    This is exactly what the driver ships to a shard's worker.
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


def domain_streams(main: Log, task_ids: Sequence[str]) -> list[str]:
    """The stage-1 streams the task agents of ``task_ids`` need: their domains and tools."""
    out: list[str] = []
    for slot in sorted({slot_of(t) for t in task_ids}):
        out.append(domain_stream(slot))
        out.extend(sid for sid, _ in main.streams(tool_streams_of(slot)))
    return out


def recording_streams(recording: Log, work: ShardWork) -> list[str]:
    """The streams of ``recording`` whose model calls the shard's items make again: each
    item's own (an episode's, a task's, a domain's and its tools')."""
    return [sid for item in work.items for sid in unit_streams(work.kind, item, recording)]


def recording_chunks(recording: Log, work: ShardWork) -> Iterator[Chunk]:
    """The ``llm.called`` records of the shard's streams in ``recording``, encoded, in
    bounded chunks, stream after stream in order (a stored call may refer to an earlier
    call of its stream: the worker resolves them as it reads them)."""
    enc = default_codec().encode

    def calls() -> Iterator[bytes]:
        for sid in recording_streams(recording, work):
            for r in recording.read_stream(sid):
                if isinstance(r.event, LlmCalled):
                    yield enc(r)

    return chunked(calls(), max_records=work.chunk_records)


@contextmanager
def recordings(main: Log, main_path: str, works: Sequence[ShardWork]) -> Iterator[Callable[[ShardWork], Iterator[Chunk]]]:
    """For the block, what to ship each shard of a ``recorded:LOG`` backend: the recorded
    calls of its own streams, read lazily by the driver (which alone opens LOG; each
    recording is opened once, read-only; the main log itself is read through ``main``).
    Shards of any other backend are shipped nothing."""
    opened: dict[str, Log] = {}
    try:
        for w in works:
            path = recorded_path(w.options.llm)
            if path is None:
                continue
            real = str(Path(path).resolve())
            if real not in opened:
                opened[real] = main if real == main_path else Log.open(real, readonly=True)

        def for_work(work: ShardWork) -> Iterator[Chunk]:
            path = recorded_path(work.options.llm)
            if path is None:
                return iter(())
            return recording_chunks(opened[str(Path(path).resolve())], work)

        yield for_work
    finally:
        for log_ in opened.values():
            if log_ is not main:
                log_.close()


def context_chunks(main: Log, work: ShardWork) -> Iterable[Chunk]:
    """The records the shard's items need, encoded, in bounded chunks (read lazily from the main log):
    for episodes their tasks', domains' and tools' streams; for tasks their domains' and tools';
    for domains none."""
    if work.kind == "domains":
        return iter(())
    tids = [t for t, _ in work.items]
    streams = context_streams(main, tids) if work.kind == "episodes" else domain_streams(main, tids)
    return chunked(encoded_streams(main, streams), max_records=work.chunk_records)


async def carry_main_prefixes(main: Log, shard: Log, kind: Kind, items: Sequence[tuple[str, int]]) -> int:
    """Copy into the receiving log the prefix of each item's streams (a domain's: its own and
    its tools') an interrupted single-machine run left in the main log (past what the
    receiving log has); returns how many records."""
    carried = 0
    async with shard.writer() as w:
        for item in items:
            for sid in unit_streams(kind, item, main):
                have = shard.stream_length(sid)
                if main.stream_length(sid) > have:
                    recs = list(main.read_stream(sid, have))
                    await w.append(as_pending(recs))
                    carried += len(recs)
    return carried


# -- the workers, as the driver sees them ----------------------------------------------

class Worker(Protocol):
    """A started shard worker somewhere: in this process or in a Ray actor."""

    async def start(self, job: ShardJob, context: Any, prefix: Iterable[Chunk],
                    recording: Iterable[Chunk] = ()) -> dict[str, Any]: ...
    async def pull(self, acked: int) -> Shipment: ...
    async def close(self) -> None: ...
    async def kill(self) -> None:
        """Stop the worker now, without waiting for it (the driver was interrupted)."""


Spawn = Callable[[int], Awaitable[Worker]]


class ThreadWorker:
    """A :class:`ShardWorker` on threads of this process (no Ray); ``context`` is a list of chunks."""

    def __init__(self) -> None:
        self._w = ShardWorker()
        self._limiter = trio.CapacityLimiter(1)  # its own thread: shards never wait for each other's

    async def start(self, job: ShardJob, context: Any, prefix: Iterable[Chunk],
                    recording: Iterable[Chunk] = ()) -> dict[str, Any]:
        try:
            return await trio.to_thread.run_sync(self._w.start, job, iter(context), iter(list(prefix)),
                                                 iter(list(recording)), limiter=self._limiter, abandon_on_cancel=True)
        except (ValueError, RuntimeError) as exc:  # as a Ray actor's would be: this shard failed
            raise WorkFailed(f"shard {job.index}: {exc}") from None

    async def pull(self, acked: int) -> Shipment:
        # Abandoned on cancellation: the records it would return are not acknowledged, so
        # they are still the worker's (and redone by the next run if the worker is gone).
        return await trio.to_thread.run_sync(self._w.pull, acked, limiter=self._limiter, abandon_on_cancel=True)

    async def close(self) -> None:
        await trio.to_thread.run_sync(self._w.close)

    async def kill(self) -> None:
        # Cancel the engine and wait for it a little; a thread cannot be killed, so one that
        # takes longer is left to finish (a daemon: it does not hold the process at exit).
        with trio.move_on_after(KILL_GRACE_S):
            await trio.to_thread.run_sync(self._w.close, abandon_on_cancel=True)


async def spawn_thread_worker(index: int) -> Worker:
    return ThreadWorker()


# -- one shard, driven to the end ----------------------------------------------------

async def drive_shard(work: ShardWork, main: Log, spawn: Spawn, context: Any, *, max_retries: int = 0,
                      recording: Callable[[], Iterable[Chunk]] = lambda: ()) -> dict[str, Any]:
    """Run one shard's episodes on a worker, storing what it ships back in the receiving log.

    ``context`` is what :meth:`Worker.start` is handed as the shard's stage-1/2 records;
    ``recording()`` the recorded model calls a ``recorded:LOG`` shard is served (read
    again for each attempt: :func:`recording_chunks`).
    A lost worker is replaced (``max_retries`` times) and shipped what the receiving log
    holds. Returns the worker's result; raises :class:`WorkerLost` past the retries, or
    :class:`WorkFailed` if the worker's engine failed.
    """
    Path(work.shard_path).parent.mkdir(parents=True, exist_ok=True)
    with Log.open(work.shard_path, sync=work.options.sync) as shard:
        if shard.meta_get(SHARD_META) is None:
            shard.meta_set(SHARD_META, {"index": work.index, "of": work.of, "main": work.main_path})
        await carry_main_prefixes(main, shard, work.kind, work.items)
        lost = 0
        while True:
            attempts: list[dict[str, Any]] = list(shard.meta_get("attempts", []))
            job = ShardJob(index=work.index, of=work.of, attempt=len(attempts), items=work.items, kind=work.kind,
                           config=work.config, options=work.options, fail_after=work.fail_after,
                           max_records=work.chunk_records)
            worker = await spawn(work.index)
            try:
                info = await worker.start(job, context, chunked(encoded_log(shard), max_records=work.chunk_records),
                                          recording())
                mine = {k: info[k] for k in ("pid", "host", "skipped", "resumed", "fresh")}
                mine.update(node=info.get("node"), finished=False)
                attempts.append(mine)
                shard.meta_set("attempts", attempts)
                acked = info["from_seq"]
                back = {"chunks": 0, "records": 0, "bytes": 0, "largest": 0}
                gone: WorkerLost | None = None
                async with shard.writer() as w:
                    while True:
                        try:
                            got = await worker.pull(acked)
                        except WorkerLost as exc:
                            gone = exc  # raised past the writer: what it committed stays
                            break
                        if not got.records:
                            break
                        recs = decode_chunk(got.records)
                        await w.append(as_pending(recs))
                        acked = recs[-1].seq
                        back["chunks"] += 1
                        back["records"] += len(recs)
                        back["bytes"] += sum(map(len, got.records))
                        back["largest"] = max(back["largest"], len(recs))
                if gone is not None:
                    raise gone
                if got.error is not None or got.result is None:
                    raise WorkFailed(f"shard {work.index}: {got.error or 'the worker returned no result'}")
                mine.update(finished=True, completed=got.result["completed"])
                shard.meta_set("attempts", attempts)
                return {**got.result, "node": info.get("node"), "shipped_back": back,
                        "shipped_out_chunks": len(context) if isinstance(context, list) else None}
            except WorkerLost as exc:
                lost += 1
                log.warning("shard worker lost", shard=work.index, attempt=job.attempt, error=str(exc))
                if lost > max_retries:
                    raise
            finally:
                # Being cancelled (Ctrl-C): kill the worker, do not wait for it to wind down.
                interrupted = trio.current_effective_deadline() == -math.inf
                with trio.CancelScope(shield=True):
                    await (worker.kill() if interrupted else worker.close())


async def run_shard_async(work: ShardWork, main: Log | None = None) -> dict[str, Any]:
    """One shard run in this process (a thread worker), through the same ship-and-pull protocol."""
    src = Log.open(work.main_path, readonly=True) if main is None else main
    try:
        with recordings(src, str(Path(work.main_path).resolve()), [work]) as recording_for:
            return await drive_shard(work, src, spawn_thread_worker, list(context_chunks(src, work)),
                                     recording=partial(recording_for, work))
    finally:
        if main is None:
            src.close()


# -- the driver ---------------------------------------------------------------------

def plan_items(view: RunView, config: RunConfig, kind: Kind) -> list[tuple[str, int]]:
    """Every item of a stage, in order: the kept tasks' episodes, the synthesized domains'
    tasks, or the run's domain slots."""
    if kind == "domains":
        return [(slot_id(s), 0) for s in range(config.domains)]
    if kind == "episodes":
        return [(tid, g) for tid in sorted(view.tasks) if view.tasks[tid].status == "kept"
                for g in range(config.episodes_per_task)]
    return [(task_id(slot, k), 0) for slot in sorted(view.domains)
            if (d := view.domains[slot]).status == "done" and d.spec is not None and d.verified
            for k in range(config.tasks_for(slot_index(slot)))]


def shard_options(options: EngineOptions, k: int, shard_llms: Sequence[str] = ()) -> EngineOptions:
    """Shard ``k``'s engine options: ``--llm`` is ``shard_llms[k % len]`` when any are given."""
    if not shard_llms:
        return options
    return msgspec.structs.replace(options, llm=shard_llms[k % len(shard_llms)])


def plan(main: Log, main_path: str, config: RunConfig, options: EngineOptions, shards: int,
         fail_after: int | None = None, chunk_records: int = CHUNK_RECORDS,
         kind: Kind = "episodes", *, shard_llms: Sequence[str] = ()) -> tuple[list[ShardWork], int]:
    """Shard work for every unfinished item of the stage; and how many were done already."""
    view = project(main, lean=True)  # memory that does not grow with the episodes finished
    by_shard: dict[int, list[tuple[str, int]]] = {}
    if kind == "episodes":
        # O(what is left): a checkpoint's run progress answers for the tasks all of whose
        # attempts are finished, without a look at their episodes (left_to_run).
        left = left_to_run(view.tasks, view.episodes, config.episodes_per_task)
        kept = sum(1 for t in view.tasks.values() if t.status == "kept")
        finished = kept * config.episodes_per_task - len(left)
    else:
        left, finished = [], 0
        for item in plan_items(view, config, kind):
            if unit_finished(kind, view, item):
                finished += 1
            else:
                left.append(item)
    for item in left:
        by_shard.setdefault(shard_of(unit_stream(kind, item), shards), []).append(item)
    works = [
        ShardWork(index=k, of=shards, main_path=main_path, shard_path=str(shard_path(main_path, k)),
                  items=by_shard[k], config=config, options=shard_options(options, k, shard_llms),
                  fail_after=fail_after, chunk_records=chunk_records, kind=kind)
        for k in sorted(by_shard)
    ]
    return works, finished


async def drive_all(works: Sequence[ShardWork], main: Log, spawn: Spawn,
                    context_for: Callable[[ShardWork], Any], *, max_retries: int = 0,
                    recording_for: Callable[[ShardWork], Iterable[Chunk]] = lambda w: (),
                    ) -> tuple[list[dict[str, Any]], list[str]]:
    """Every shard driven concurrently; (results by shard index, failures as one-line strings).

    A shard that fails does not stop the others: what it shipped back is in its receiving
    log and is merged anyway."""
    results: list[dict[str, Any]] = []
    failures: list[str] = []

    async def one(w: ShardWork) -> None:
        try:
            results.append(await drive_shard(w, main, spawn, context_for(w), max_retries=max_retries,
                                             recording=partial(recording_for, w)))
        except (WorkerLost, WorkFailed) as exc:
            failures.append(f"shard {w.index}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")

    async with trio.open_nursery() as nursery:
        for w in works:
            nursery.start_soon(one, w)
    return sorted(results, key=lambda r: r["index"]), sorted(failures)


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


@contextmanager
def ray_session(address: str) -> Iterator[None]:
    """Connected to a Ray cluster for the block (``local``: one started on this machine and
    shut down after); several distributed stages can share one connection."""
    started = _ray_init(address)
    try:
        with sigterm_interrupts():  # not ray.init's handler: SIGTERM is a Ctrl-C here (exit 130)
            yield
    finally:
        if started:
            import ray

            ray.shutdown()


def default_shards(address: str | None) -> int:
    if address is not None and ray_available():
        import ray

        if ray.is_initialized():
            return max(1, int(ray.cluster_resources().get("CPU", 1)))
    return max(1, os.cpu_count() or 1)


class RayShardActor:
    """The body of a shard's Ray actor: a :class:`ShardWorker` working in a temporary
    directory of its own on the actor's node (also its working directory)."""

    def __init__(self) -> None:
        self.worker = ShardWorker()
        os.chdir(self.worker.workdir)

    def start(self, job: ShardJob, context_refs: list[Any], prefix_refs: list[Any],
              recording_refs: list[Any] | None = None) -> dict[str, Any]:
        import ray

        # Chunks are fetched from the object store one at a time, as the worker reads them.
        info = self.worker.start(job, (ray.get(r) for r in context_refs), (ray.get(r) for r in prefix_refs),
                                 (ray.get(r) for r in recording_refs or ()))
        return {**info, "node": ray.get_runtime_context().get_node_id()}

    def pull(self, acked: int) -> Shipment:
        return self.worker.pull(acked)

    def close(self) -> None:
        self.worker.close()


class RayWorker:
    """A shard worker in a Ray actor (one CPU), seen from the driver; ``context`` is a list of ObjectRefs."""

    def __init__(self, actor_class: Any) -> None:
        self._actor = actor_class.remote()
        self._limiter = trio.CapacityLimiter(1)

    async def _get(self, ref: Any) -> Any:
        import ray

        def get() -> Any:
            try:
                return ray.get(ref)
            except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError,
                    ray.exceptions.NodeDiedError) as exc:
                raise WorkerLost(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
            except ray.exceptions.RayTaskError as exc:
                raise WorkFailed(str(exc).splitlines()[0]) from None

        # Abandoned on cancellation (Ctrl-C): the actor is killed right after.
        return await trio.to_thread.run_sync(get, limiter=self._limiter, abandon_on_cancel=True)

    async def start(self, job: ShardJob, context: Any, prefix: Iterable[Chunk],
                    recording: Iterable[Chunk] = ()) -> dict[str, Any]:
        import ray

        prefix_refs = [ray.put(c) for c in prefix]
        recording_refs = [ray.put(c) for c in recording]
        try:
            return await self._get(self._actor.start.remote(job, context, prefix_refs, recording_refs))
        finally:
            del prefix_refs, recording_refs  # the worker has read them: the object store may drop them

    async def pull(self, acked: int) -> Shipment:
        return await self._get(self._actor.pull.remote(acked))

    async def close(self) -> None:
        import ray

        try:
            await self._get(self._actor.close.remote())
        except (WorkerLost, WorkFailed):
            pass  # already gone or failed: killing it below is all that is left
        ray.kill(self._actor, no_restart=True)

    async def kill(self) -> None:
        import ray

        ray.kill(self._actor, no_restart=True)  # a request to Ray: it does not wait for the process to end


def _ray_executor(main: Log) -> tuple[Spawn, Callable[[ShardWork], Any]]:
    """How the driver starts workers on Ray and ships each shard's context into the object store."""
    import ray

    # max_concurrency=2: close() can run while a pull waits for records (it ends the wait).
    actor_class = ray.remote(num_cpus=1, max_restarts=0, max_task_retries=0, max_concurrency=2)(RayShardActor)

    async def spawn(index: int) -> Worker:
        return RayWorker(actor_class)

    def context_for(work: ShardWork) -> list[Any]:
        return [ray.put(c) for c in context_chunks(main, work)]

    return spawn, context_for


def distributed_rollouts(main_path: str, config: RunConfig | Mapping[str, Any], options: EngineOptions,
                         **kw: Any) -> dict[str, Any]:
    """Stage 3 over shard workers: every unfinished episode (see :func:`distributed_stage`)."""
    return distributed_stage(main_path, config, options, kind="episodes", **kw)


def distributed_domains(main_path: str, config: RunConfig | Mapping[str, Any], options: EngineOptions,
                        **kw: Any) -> dict[str, Any]:
    """Stage 1 over shard workers: every domain slot not done or failed yet, each synthesized
    whole (design, tools, graph) on one worker (see :func:`distributed_stage`)."""
    return distributed_stage(main_path, config, options, kind="domains", **kw)


def distributed_tasks(main_path: str, config: RunConfig | Mapping[str, Any], options: EngineOptions,
                      **kw: Any) -> dict[str, Any]:
    """Stage 2 over shard workers: every unfinished task of every synthesized domain (see :func:`distributed_stage`)."""
    return distributed_stage(main_path, config, options, kind="tasks", **kw)


def distributed_stage(main_path: str, config: RunConfig | Mapping[str, Any], options: EngineOptions, *,
                      kind: Kind = "episodes", shards: int | None = None, executor: Executor = "ray",
                      ray_address: str = "local", max_retries: int = 3, fail_after: int | None = None,
                      keep_shards: bool = False, chunk_records: int = CHUNK_RECORDS,
                      shard_llms: Sequence[str] = ()) -> dict[str, Any]:
    """Run every unfinished item of a stage (``kind``) over shard workers, merge them; returns the run summary.

    ``shard_llms``: per-shard ``--llm`` values, shard ``k`` using ``shard_llms[k % len]``
    (each worker may point at its own model server; empty: every shard uses
    ``options.llm``). Which backend answered is never part of a digest, so the merged
    digest is the single-machine run's when the servers serve the same model.

    The summary is :func:`scaleenv._runner.summary` of the merged log plus a
    ``"distributed"`` object (shards, per-shard work, merge figures). Raises
    :class:`WorkFailed` if a shard could not finish (what it did is merged anyway;
    running the command again resumes), and :class:`KeyboardInterrupt` on SIGINT or
    SIGTERM (received in the main thread only): the workers are killed at once, what the
    driver committed stays, and the same call again resumes from it.
    """
    with sigterm_interrupts():
        return _distributed_stage(main_path, config, options, kind=kind, shards=shards, executor=executor,
                                  ray_address=ray_address, max_retries=max_retries, fail_after=fail_after,
                                  keep_shards=keep_shards, chunk_records=chunk_records, shard_llms=list(shard_llms))


def _distributed_stage(main_path: str, config: RunConfig | Mapping[str, Any], options: EngineOptions, *,
                       kind: Kind, shards: int | None, executor: Executor, ray_address: str, max_retries: int,
                       fail_after: int | None, keep_shards: bool, chunk_records: int,
                       shard_llms: list[str]) -> dict[str, Any]:
    main_path = str(Path(main_path).resolve())
    # A bad --llm (or --shard-llm) is the command's fault: say so before anything is created
    # or started. A model directory is the workers' to open, not the driver's; a recording
    # is the driver's (it ships each shard the calls it needs); env:NAME is the node's.
    for spec in shard_llms or [options.llm]:
        check_shard_llm(spec, options.model)
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
                recovered = trio.run(interruptible, merge_shards, main, leftovers)
                remove_shards(main_path)
            works, finished = plan(main, main_path, config, options, n, fail_after, chunk_records, kind,
                                   shard_llms=shard_llms)
            log.info("distributed stage", kind=kind, shards=n, items=sum(len(w.items) for w in works),
                     finished=finished)
            t1 = time.perf_counter()
            failures: list[str] = []
            with recordings(main, main_path, works) as recording_for:
                if executor == "ray":
                    spawn, context_for = _ray_executor(main)
                else:
                    spawn, context_for = spawn_thread_worker, lambda w: list(context_chunks(main, w))
                results, failures = trio.run(
                    interruptible, partial(drive_all, max_retries=max_retries, recording_for=recording_for),
                    works, main, spawn, context_for)
            t2 = time.perf_counter()
            paths = existing_shards(main_path)
            merged = trio.run(interruptible, merge_shards, main, paths)
            if not keep_shards and not failures:
                remove_shards(main_path)
            result = summary(project(main))
        result["distributed"] = {
            "executor": executor,
            "kind": kind,
            "llm": {str(w.index): w.options.llm for w in works},
            "shards": n,
            f"{kind}_assigned": sum(len(w.items) for w in works),
            f"{kind}_already_done": finished,
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
    "FAIL_EXIT_CODE", "KILL_GRACE_S", "RayShardActor", "STOP_SIGNALS", "ShardWork", "ThreadWorker", "Worker", "WorkerLost", "context_chunks",
    "context_streams", "default_shards", "recording_chunks", "recording_streams", "recordings", "shard_options", "distributed_domains", "distributed_rollouts", "distributed_stage", "distributed_tasks", "drive_all", "drive_shard", "interruptible", "load_context", "plan", "plan_items", "ray_session",
    "ray_available", "run_shard_async", "sigterm_interrupts",
]

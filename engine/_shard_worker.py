"""One shard's episodes (or stage-2 tasks, or stage-1 domains) on a worker node, in a node-local log, handed back in bounded chunks.

A :class:`ShardWorker` never opens a path it was given by the driver: it is *shipped*
everything it needs and *pulled* for what it made.

- :meth:`ShardWorker.start` takes the job (which episodes, the run's config and engine
  options), the stage-1/2 records the episodes need (their tasks', domains' and tools'
  streams, as encoded chunks; a stage-1 shard needs none: a domain is built from its
  brief, which the config determines) and the shard's prefix (what earlier attempts already
  shipped back, likewise). It creates a temporary directory of its own on this node,
  opens a shard log there, appends the prefix, and starts the episodes on a trio engine
  of their own (``trio.run`` on a thread: its own writer, sandbox pool and LLM port).
  It returns once the episodes are running: the attempt's facts (pid, host, how many
  episodes it skips, resumes and runs fresh, and the local seq the new records start after).
- :meth:`ShardWorker.pull` ``(acked)`` returns the next chunk of records past local seq
  ``acked`` (the driver has committed everything up to it), waiting until there is one;
  after the last chunk, a final :class:`Shipment` with ``done`` and the result (or the
  error). Chunks are bounded (:mod:`scaleenv._shipping`), so no single object grows with
  the shard; the engine keeps running while the driver stores a chunk.
- :meth:`ShardWorker.close` stops the engine if it still runs (cancellation: what was
  committed stays in the local log) and removes the temporary directory. It may be
  called while :meth:`~ShardWorker.start` is still loading (the driver was interrupted):
  that start then raises instead of starting an engine in the removed directory.

The same class runs inside a Ray actor (:mod:`scaleenv._distributed`) and, for tests and
machines without Ray, on a thread of the driver's process.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterable
from typing import Any, Literal

import msgspec
import trio

from scaleenv._agents.llm.port import Backend
from scaleenv._agents.llm.recorded import RecordedBackend, whole_calls
from scaleenv._agents.rollout.episode import run_episode
from scaleenv._agents.synth.stage1 import synthesize_domain
from scaleenv._agents.synth.stage2 import instantiate_task
from scaleenv._backend_spec import BackendSpecError, check_spec
from scaleenv._config import RunConfig
from scaleenv._replay.projection import RunView, fold
from scaleenv._replay.stored import episode_finished
from scaleenv._store.log import Log
from scaleenv._streams import domain_stream, episode_id, episode_stream, slot_index, slot_of, task_stream, tool_streams_of

from scaleenv._run_context import RunContext

from ._errors import leaf_exceptions
from ._runner import EngineOptions, open_run
from ._shipping import CHUNK_BYTES, CHUNK_RECORDS, Chunk, as_pending, decode_chunk, take

FAIL_EXIT_CODE = 17
PULL_POLL_S = 0.25
"""How often a waiting :meth:`ShardWorker.pull` looks for new records when no item has
finished: a domain runs for minutes, and what it committed so far should reach the
driver (and survive a Ctrl-C there) before it ends."""
LOCAL_PREFIX = "scaleenv-shard-"

Kind = Literal["episodes", "tasks", "domains"]
"""What a shard runs: rollout episodes (items: task id, attempt), stage-2 task agents
(task id, 0) or stage-1 domains (slot id, 0: the domain's design and all its tools)."""


def unit_stream(kind: Kind, item: tuple[str, int]) -> str:
    """The stream that names one item of a shard: its episode's, its task's or its domain's."""
    uid, g = item
    if kind == "episodes":
        return episode_stream(episode_id(uid, g))
    return task_stream(uid) if kind == "tasks" else domain_stream(uid)


def unit_streams(kind: Kind, item: tuple[str, int], log: Log) -> list[str]:
    """Every stream of ``log`` one item writes: its unit stream, and for a domain its tools' streams."""
    sid = unit_stream(kind, item)
    if kind != "domains":
        return [sid]
    return [sid, *(tool for tool, _ in log.streams(tool_streams_of(item[0])))]


def unit_finished(kind: Kind, view: RunView, item: tuple[str, int]) -> bool:
    """Whether the item in ``view`` is complete: an episode with its reward, a task kept or
    discarded, a domain done or failed (its tools' streams end before its own does)."""
    uid, g = item
    if kind == "episodes":
        return episode_finished(view.episodes, episode_id(uid, g))
    if kind == "domains":
        domain = view.domains.get(uid)
        return domain is not None and domain.status in ("done", "failed")
    task = view.tasks.get(uid)
    return task is not None and task.finished


class ShardJob(msgspec.Struct, frozen=True, kw_only=True):
    """What a worker is asked to do: no path of the driver's in it."""

    index: int
    of: int
    attempt: int
    items: list[tuple[str, int]]  # (task id, attempt); for tasks, (task id, 0)
    kind: Kind = "episodes"
    config: RunConfig
    options: EngineOptions
    # Test hook (worker processes only): on attempt 0, the process exits (os._exit, like a
    # lost node) once the driver has acknowledged this many finished episodes.
    fail_after: int | None = None
    max_records: int = CHUNK_RECORDS
    max_bytes: int = CHUNK_BYTES


class Shipment(msgspec.Struct, frozen=True, kw_only=True):
    """One answer to :meth:`ShardWorker.pull`: records, or the end (``done``, with result or error)."""

    records: Chunk = []
    done: bool = False
    result: dict[str, Any] | None = None
    error: str | None = None


def describe(exc: BaseException) -> str:
    """One line for the driver: the first leaf of an exception group (how many more, if
    any), as ``Type: message``."""
    leaves = leaf_exceptions(exc)
    first = leaves[0]
    text = str(first).splitlines()[0] if str(first) else ""
    more = f" (and {len(leaves) - 1} more)" if len(leaves) > 1 else ""
    return f"{type(first).__name__}: {text}{more}"


ENV_SPEC = "env:"
"""``--llm env:NAME``: the ``--llm`` value is in the environment variable NAME where the
engine runs; on a cluster, each worker reads its own node's (node-local model servers)."""


def env_name(llm: str) -> str | None:
    """NAME of an ``env:NAME`` spec (None for any other)."""
    spec = (llm or "").strip()
    return spec[len(ENV_SPEC):] if spec.startswith(ENV_SPEC) else None


def check_env_name(llm: str) -> None:
    """Raise :class:`BackendSpecError` unless ``env:NAME`` names a variable (letters, digits, ``_``)."""
    name = env_name(llm)
    if name is not None and not (name and (name[0].isalpha() or name[0] == "_")
                                 and all(c.isalnum() or c == "_" for c in name)):
        raise BackendSpecError(f"bad --llm value {llm!r}: 'env:' needs an environment variable name, "
                               "such as env:SCALEENV_LLM")


def from_env(llm: str, where: str = "") -> str:
    """The ``--llm`` value an ``env:NAME`` spec stands for here (any other spec, itself).
    Raises ValueError naming the variable (and ``where``) if it is unset, empty or itself ``env:``."""
    name = env_name(llm)
    if name is None:
        return llm
    check_env_name(llm)
    value = os.environ.get(name, "").strip()
    if not value or value.startswith(ENV_SPEC):
        state = "is not set" if not value else f"is {value!r}, itself an env: value"
        raise ValueError(f"--llm {llm}: the environment variable {name} {state}{where}; "
                         f"set it to an --llm value (e.g. {name}=openai:http://127.0.0.1:8000/v1)")
    return value


def check_shard_llm(llm: str, model: str | None) -> None:
    """Check a shard's ``--llm`` on the driver, before anything starts: ``env:NAME`` only
    for its form (the value is the node's); ``recorded:LOG`` with its log there (the driver
    reads it); any other as :func:`check_spec` does, its paths left to the workers.
    Raises :class:`BackendSpecError`."""
    if env_name(llm) is not None:
        check_env_name(llm)
        return
    check_spec(llm, model=model, paths=recorded_path(llm) is not None)


def recorded_path(llm: str) -> str | None:
    """The log a ``recorded:LOG`` spec names (None for any other backend)."""
    kind, _, arg = (llm or "sim").strip().partition(":")
    return arg if kind == "recorded" else None


def load_recording(job: ShardJob, recording: Iterable[Chunk]) -> RecordedBackend | None:
    """For a ``recorded:LOG`` job, the backend serving the calls the driver shipped (the
    recording's ``llm.called`` records of the shard's streams); None for any other backend.
    LOG is the driver's path: it is only named, never opened here."""
    path = recorded_path(job.options.llm)
    if path is None:
        return None
    return RecordedBackend(whole_calls(r for chunk in recording for r in decode_chunk(chunk)),
                           source=f"{path} (shipped by the driver)")


def load_view(context: Iterable[Chunk]) -> RunView:
    """The domains and tasks the episodes need, folded from the shipped stage-1/2 records."""
    view = RunView()
    for chunk in context:
        fold(decode_chunk(chunk), view)
    return view


class ShardWorker:
    """Runs one shard job in a log of its own under ``tempfile.gettempdir()`` (or ``root``)."""

    def __init__(self, root: str | None = None) -> None:
        self.workdir = tempfile.mkdtemp(prefix=LOCAL_PREFIX, dir=root)
        self.log_path = os.path.join(self.workdir, "shard")
        self._log: Log | None = None
        self._job: ShardJob | None = None
        self._info: dict[str, Any] = {}
        self._completions: list[int] = []  # local last_seq when each episode finished
        self._progress = threading.Event()
        self._started = threading.Event()
        self._release = threading.Event()
        self._engine_done = False  # the episodes ended (the log stays open for pulls)
        self._finished = False  # the engine's thread ended
        self._result: dict[str, Any] | None = None
        self._error: str | None = None
        self._thread: threading.Thread | None = None
        self._cancel: trio.CancelScope | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._closed = False  # close() was called: start no more, cancel what started
        self._recorded_calls: int | None = None  # model calls shipped to serve a recorded:LOG job
        self._lock = threading.Lock()  # orders close() against start() and the engine's start

    # -- the driver's calls ------------------------------------------------------
    def start(self, job: ShardJob, context: Iterable[Chunk], prefix: Iterable[Chunk],
              recording: Iterable[Chunk] = ()) -> dict[str, Any]:
        """Load what was shipped, start the episodes; returns the attempt's facts once they run.

        ``recording``: for a ``recorded:LOG`` job, the recorded model calls of the shard's
        streams (:func:`load_recording`); the engine is served from them.

        Raises what loading raised (a damaged chunk, a task the context lacks), and
        RuntimeError if :meth:`close` was called before the engine started (loading the
        context can take a while; the driver may have been interrupted meanwhile)."""
        if self._thread is not None:
            raise RuntimeError("a ShardWorker runs one job")
        self._job = job
        view = load_view(context)
        if job.kind == "episodes":
            missing = sorted({t for t, _ in job.items if t not in view.tasks or view.tasks[t].slot not in view.domains})
        elif job.kind == "tasks":
            missing = sorted({t for t, _ in job.items if slot_of(t) not in view.domains})
        else:
            missing = []  # a domain is built from its brief: nothing to ship
        if missing:
            raise ValueError(f"shard {job.index}: the shipped context lacks task(s) {missing[:3]}")
        backend: Backend | None = None
        if env_name(job.options.llm) is not None:
            # The node's own --llm, built here as it names it (a recorded: log of this node's is opened here).
            spec = from_env(job.options.llm, f" on node {socket.gethostname()}")
            check_spec(spec, model=job.options.model)  # a bad value there fails this shard at once, naming it
            job = msgspec.structs.replace(job, options=msgspec.structs.replace(job.options, llm=spec))
            self._job = job
        else:
            backend = load_recording(job, recording)
        self._recorded_calls = len(backend.calls) if isinstance(backend, RecordedBackend) else None
        with self._lock:
            if self._closed:
                raise RuntimeError(f"shard {job.index}: the worker was closed while it loaded its context")
            self._thread = threading.Thread(target=self._main, args=(job, view, prefix, backend), daemon=True,
                                            name=f"shard-{job.index}")
            self._thread.start()
        self._started.wait()
        if not self._info:  # the engine ended before its items started: it failed, or was closed
            raise RuntimeError(self._error or f"shard {job.index}: the worker was closed before its engine started")
        return dict(self._info)

    def pull(self, acked: int) -> Shipment:
        """The next chunk past local seq ``acked``; waits for one (at most :data:`PULL_POLL_S`
        after its records are committed), or for the end of the run."""
        job = self._job
        if job is None:
            raise RuntimeError("pull before start")
        if (job.fail_after is not None and job.attempt == 0
                and sum(1 for s in self._completions if s <= acked) >= job.fail_after):
            os._exit(FAIL_EXIT_CODE)  # the test hook: a node lost after shipping some episodes
        while True:
            self._progress.clear()
            # Read the flags before the log: whatever was committed before the end is then seen.
            ended, log = self._engine_done or self._finished, self._log
            chunk = take(log, acked, max_records=job.max_records, max_bytes=job.max_bytes) if log else []
            if chunk:
                return Shipment(records=chunk)
            if ended:
                return Shipment(done=True, result=self._result, error=self._error)
            # Woken when an item finishes or the engine ends; between, records committed
            # inside a long item (a domain's design and tools) are looked for every poll.
            self._progress.wait(PULL_POLL_S)

    def close(self) -> None:
        """Stop the engine if it runs (what it committed stays), close the log, remove the directory.

        Safe from another thread while :meth:`start` runs: a start that has not started the
        engine yet never will; an engine that has not reached its cancel scope yet is
        cancelled as it does."""
        with self._lock:
            self._closed = True
            token, cancel, thread = self._token, self._cancel, self._thread
        if token is not None and cancel is not None and not self._engine_done:
            try:
                token.run_sync_soon(cancel.cancel)
            except trio.RunFinishedError:
                pass  # the engine finished on its own meanwhile: nothing to cancel
        self._release.set()
        if thread is not None:
            thread.join()
        shutil.rmtree(self.workdir, ignore_errors=True)

    # -- the engine's thread -----------------------------------------------------
    def _main(self, job: ShardJob, view: RunView, prefix: Iterable[Chunk], backend: Backend | None) -> None:
        try:
            trio.run(self._run, job, view, prefix, backend)
        except BaseException as exc:  # noqa: BLE001 - reported to the driver through pull/start
            self._error = describe(exc)
        finally:
            self._finished = True
            self._started.set()
            self._progress.set()

    async def _run(self, job: ShardJob, view: RunView, prefix: Iterable[Chunk], backend: Backend | None) -> None:
        # The local log is a scratch copy: the driver's commit of each chunk is what is durable.
        options = msgspec.structs.replace(job.options, progress=False, sync=False)
        with trio.CancelScope() as scope:
            with self._lock:
                self._token, self._cancel = trio.lowlevel.current_trio_token(), scope
                if self._closed:  # closed between start() and here: close() saw no scope to cancel
                    scope.cancel()
            async with open_run(self.log_path, job.config, options, backend=backend) as ctx:
                self._log = ctx.log
                try:
                    await self._episodes(ctx, job, view, prefix)
                except Exception as exc:  # noqa: BLE001 - shipped to the driver after the records before it
                    self._error = describe(exc)
                self._engine_done = True
                self._started.set()
                self._progress.set()
                # Keep the log open until the driver has pulled everything (pull reads it).
                await trio.to_thread.run_sync(self._release.wait, abandon_on_cancel=True)
            self._log = None

    async def _episodes(self, ctx: RunContext, job: ShardJob, view: RunView, prefix: Iterable[Chunk]) -> None:
        for chunk in prefix:
            await ctx.writer.append(as_pending(decode_chunk(chunk)))
        from_seq = ctx.log.last_seq()
        done = fold(ctx.log.read(), RunView())  # the shard holds only its items' streams
        todo: list[tuple[str, int]] = []
        skipped = resumed = fresh = 0
        for item in job.items:
            if unit_finished(job.kind, done, item):
                skipped += 1
                continue
            have = ctx.log.stream_length(unit_stream(job.kind, item))
            resumed += have > 0
            fresh += have == 0
            todo.append(item)
        self._info = {"pid": os.getpid(), "host": socket.gethostname(), "attempt": job.attempt,
                      "skipped": skipped, "resumed": resumed, "fresh": fresh, "from_seq": from_seq}
        self._started.set()
        completed = 0

        async def one(tid: str, g: int) -> None:
            nonlocal completed
            if job.kind == "domains":
                # As stage 1 on one machine: the domain holds no agent slot, its tools each take one.
                await synthesize_domain(ctx, slot_index(tid))
            else:
                async with ctx.agents:
                    if job.kind == "episodes":
                        task = view.tasks[tid]
                        await run_episode(ctx, view.domains[task.slot], task, g)
                    else:
                        await instantiate_task(ctx, view.domains[slot_of(tid)], tid)
            completed += 1
            self._completions.append(ctx.log.last_seq())
            self._progress.set()

        async with trio.open_nursery() as nursery:
            for tid, g in todo:
                nursery.start_soon(one, tid, g)
        self._result = {"index": job.index, "kind": job.kind, job.kind: len(job.items), "skipped": skipped,
                        "resumed": resumed, "fresh": fresh, "completed": completed,
                        "attempt": job.attempt, "pid": os.getpid(), "host": socket.gethostname(),
                        "events": ctx.log.count(), "llm": job.options.llm, "recorded_calls": self._recorded_calls}


__all__ = ["FAIL_EXIT_CODE", "Kind", "ShardJob", "ShardWorker", "Shipment", "load_recording", "load_view",
           "ENV_SPEC", "check_env_name", "check_shard_llm", "env_name", "from_env", "recorded_path", "unit_finished",
           "unit_stream", "unit_streams"]

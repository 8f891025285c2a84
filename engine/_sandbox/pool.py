"""SandboxPool: long-lived, process-isolated workers with resident sessions.

Sessions are sticky to a worker slot (least-loaded at open). The parent keeps a
shadow copy of every session's tools and state, updated from each successful
call's delta as the reply is read, so when a worker dies (timeout kill, memory,
crash, external SIGKILL) its slot starts a new process and re-opens every
session it hosted from the shadows; requests that were queued behind the fatal
one are retried transparently. Only the call that was running fails.
"""

from __future__ import annotations

import hashlib
import itertools
import sys
import tempfile
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any

import attrs
import msgspec
import trio

from scaleenv._model.integrity import Constraints
from scaleenv._sandbox.clock import SessionClock
from scaleenv._sandbox.jsonval import InvalidValue, check_json, check_state
from scaleenv._sandbox.process import WorkerLost, WorkerProcess, WorkerStartFailed
from scaleenv._sandbox.protocol import UNKNOWN_CODE, CallReq, CloseReq, OpenReq, Reply, StateReq
from scaleenv._sandbox.state import apply_delta, copy_state, copy_state_encoded
from scaleenv._sandbox.types import CallOutcome, DbState, Limits, failure


SPAWN_OWN_FAILURES = 3
"""Starts a worker may fail on its own (exit, hang) before the pool gives up."""
SPAWN_KILLED_BUDGET_S = 120.0
"""How long the pool keeps replacing workers that are killed from outside while starting."""


CONSTRAINT_DIGESTS_KEPT = 256
"""Constraints whose digests the pool keeps (each kept alive with it): past that many, all
are dropped, so a run of many domains holds those of its recent domains, not every one."""
CLOSE_GRACE_S = 10.0
"""How long closing the pool waits, beyond a call's own hard limit, for workers to exit
on end of input before they are killed (closing never waits on a worker forever)."""


OPEN_ATTEMPTS = 2
"""Opens of one session that may kill a worker before the session is refused (the first
death may come from outside: a worker killed by the OOM killer or an operator)."""


class SandboxError(RuntimeError):
    """A pool-level error (unknown session, rejected state, pool not running)."""


@attrs.define
class _Shadow:
    tools: dict[str, str]
    state: DbState
    slot: _Slot
    code_id: str
    constraints: Constraints | None = None
    clock: SessionClock = SessionClock()
    calls: int = 0
    """Calls made on the session so far: the next one reads ``clock.reading_us(calls)``."""
    encoded: bytes | None = None
    """``state`` as msgpack while no call has changed it since the open (a worker loading
    the session is sent these bytes instead of the state encoded again)."""
    start_us: int = attrs.field(init=False)
    step_us: int = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.start_us = self.clock.reading_us(0)
        self.step_us = self.clock.reading_us(1) - self.start_us

    def tick(self) -> int:
        """The reading of the session's next call (and count it)."""
        now_us = self.start_us + self.calls * self.step_us
        self.calls += 1
        return now_us


@attrs.define(eq=False)
class _Slot:
    """One worker position: the current process and the sessions it hosts."""

    index: int
    sessions: set[str] = attrs.field(factory=set)
    proc: WorkerProcess | None = None
    ready: trio.Event = attrs.field(factory=trio.Event)
    restarts: int = 0
    stopped: bool = False
    """The slot's task has ended (pool closing, or no worker could be started)."""

    async def current(self) -> WorkerProcess:
        """The live process, waiting while it is being replaced; SandboxError once the slot stopped."""
        while True:
            await self.ready.wait()
            if self.proc is not None and not self.proc.dead:
                return self.proc
            if self.stopped:
                raise SandboxError(f"sandbox worker slot {self.index} has stopped")
            await trio.lowlevel.checkpoint()


class SandboxPool:
    """A trio-native pool of sandbox worker processes (use as an async context manager)."""

    def __init__(self, workers: int = 2, limits: Limits = Limits(), python: str = sys.executable) -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self.limits = limits
        self._python = python
        self._slots = [_Slot(i) for i in range(workers)]
        self._shadows: dict[str, _Shadow] = {}
        self._code_ids: dict[tuple[tuple[tuple[str, str], ...], str], str] = {}
        # id(constraints) -> (the constraints, kept alive so the id is not reused; their digest)
        self._constraint_digests: dict[int, tuple[Constraints, str]] = {}
        self._stack = AsyncExitStack()
        self._nursery: trio.Nursery | None = None
        self._closing = False
        self._once_ids = itertools.count()
        self._scratch = ""

    async def __aenter__(self) -> SandboxPool:
        scratch = self._stack.enter_context(tempfile.TemporaryDirectory(prefix="scaleenv-sandbox-"))
        self._scratch = scratch
        self._nursery = await self._stack.enter_async_context(trio.open_nursery())
        try:
            for slot in self._slots:
                await self._nursery.start(self._run_slot, slot)
        except BaseException:
            await self._shutdown()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        return await self._shutdown(exc_type, exc, tb)

    async def _shutdown(self, *exc_info: Any) -> bool | None:
        self._closing = True
        for slot in self._slots:
            if slot.proc is not None:
                await slot.proc.close()
        if self._nursery is not None:
            # A worker exits at end of input once its current call is done; one that does not
            # is killed (the slots' tasks are cancelled, and a cancelled worker is killed).
            grace = self.limits.timeout_s + self.limits.kill_grace_s + CLOSE_GRACE_S
            self._nursery.cancel_scope.deadline = min(self._nursery.cancel_scope.deadline,
                                                      trio.current_time() + grace)
        if not exc_info:
            exc_info = (None, None, None)
        return await self._stack.__aexit__(*exc_info)

    # ---- worker slots -------------------------------------------------

    async def _run_slot(self, slot: _Slot, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            await self._serve_slot(slot, task_status)
        finally:
            # Wake every caller waiting for this slot: they get a SandboxError, not a hang.
            slot.stopped = True
            slot.ready.set()

    async def _serve_slot(self, slot: _Slot, task_status: trio.TaskStatus[None]) -> None:
        started = False
        while not self._closing:
            proc = await self._spawn()

            def on_death(slot: _Slot = slot) -> None:
                slot.ready = trio.Event()
                if not self._closing:
                    slot.restarts += 1

            proc.on_death = on_death
            async with trio.open_nursery() as nursery:
                nursery.start_soon(proc.serve)
                # A replacement serves at once: each session is loaded into it from its
                # shadow when it is next used (see _ensure_open), so a restart costs what
                # is used afterwards, not a restore of everything the slot hosts.
                slot.proc = proc
                slot.ready.set()
                if not started:
                    started = True
                    task_status.started()
                if self._closing:
                    # The pool began closing while this worker was being started (a replacement
                    # for one that died): _shutdown closed only the dead one, so close this one.
                    await proc.close()
                await proc.died.wait()

    async def _spawn(self) -> WorkerProcess:
        """Start a worker; retries are decided by why the last one died.

        A worker killed by SIGKILL during startup (someone else's kill, the OOM killer)
        is started again, with backoff, for as long as that keeps happening, up to
        ``SPAWN_KILLED_BUDGET_S`` seconds. A worker that fails on its own (exits, hangs,
        cannot be executed) is tried ``SPAWN_OWN_FAILURES`` times in all: it would fail
        the same way again. Awaits the handshake; cancellation kills a half-started worker.
        """
        own_failures = 0
        deadline = trio.current_time() + SPAWN_KILLED_BUDGET_S
        attempt = 0
        while True:
            try:
                return await WorkerProcess.spawn(self.limits, self._scratch, self._python)
            except (OSError, WorkerStartFailed) as exc:  # OSError: could not be executed (or forked)
                if not getattr(exc, "killed", False):
                    own_failures += 1
                    if own_failures >= SPAWN_OWN_FAILURES:
                        raise SandboxError(f"cannot start a sandbox worker ({own_failures} failed starts): {exc}") from exc
                elif trio.current_time() > deadline:
                    raise SandboxError(
                        f"cannot start a sandbox worker: every start for {SPAWN_KILLED_BUDGET_S:.0f} s was killed from outside ({exc})"
                    ) from exc
            await trio.sleep(min(0.01 * 2**attempt, 0.5))
            attempt += 1

    def _pick_slot(self) -> _Slot:
        return min(self._slots, key=lambda s: (len(s.sessions), s.index))

    def worker_pids(self) -> list[int]:
        """Current pid of each worker slot (for tests and monitoring)."""
        return [slot.proc.pid if slot.proc is not None else -1 for slot in self._slots]

    def has_session(self, session_id: str) -> bool:
        """Whether the pool holds the session (opened, or being opened, and not closed)."""
        return session_id in self._shadows

    def session_worker(self, session_id: str) -> int:
        """Index of the worker slot hosting `session_id`."""
        return self._shadow(session_id).slot.index

    def restarts(self) -> int:
        """How many worker processes have been replaced so far."""
        return sum(slot.restarts for slot in self._slots)

    def _shadow(self, session_id: str) -> _Shadow:
        shadow = self._shadows.get(session_id)
        if shadow is None:
            raise SandboxError(f"unknown session {session_id!r}")
        return shadow

    # ---- sessions -------------------------------------------------------

    async def open_session(self, session_id: str, tools: dict[str, str], state: DbState, *,
                           constraints: Constraints | None = None, clock: SessionClock | None = None) -> None:
        """Load `tools` and a copy of `state` into one worker, resident under `session_id`.

        With ``constraints`` (``scaleenv._model.integrity.constraints_of(spec)``) every call
        that succeeds is checked against them; one that breaks any is rolled back and fails
        with kind ``integrity``, naming each violation. ``clock`` is what the tools read as
        the time (default: a clock starting at ``clock.DEFAULT_START``), one step per call.
        Awaits the worker's answer; SandboxError if the state is refused.
        """
        if self._nursery is None or self._closing:
            raise SandboxError("pool is not running")
        if session_id in self._shadows:
            raise SandboxError(f"session {session_id!r} is already open")
        try:
            check_state(state)
        except InvalidValue as exc:
            raise SandboxError(f"cannot open session {session_id!r}: {exc}") from None
        slot = self._pick_slot()
        copied, encoded = copy_state_encoded(state)
        shadow = _Shadow(dict(tools), copied, slot, self._code_id(tools, constraints), constraints,
                         clock if clock is not None else SessionClock(), encoded=encoded)
        self._shadows[session_id] = shadow
        slot.sessions.add(session_id)

        losses = 0
        outside_deadline = trio.current_time() + SPAWN_KILLED_BUDGET_S
        while True:
            proc = await slot.current()
            if session_id not in self._shadows:
                # Retrying after the worker died mid-open: host the session again.
                self._shadows[session_id] = shadow
                slot.sessions.add(session_id)
            try:
                await self._ensure_open(proc, session_id, shadow)
            except WorkerLost as lost:
                if lost.executing:
                    # Do not let the replacement worker load it: the open itself may be what kills.
                    self._forget(session_id)
                    if await proc.killed_from_outside() and trio.current_time() < outside_deadline:
                        continue  # someone else's SIGKILL says nothing about this session: open it again
                    losses += 1
                    if losses >= OPEN_ATTEMPTS:
                        raise SandboxError(f"opening session {session_id!r} killed the worker "
                                           f"{losses} times ({lost.reason})") from None
                    continue  # perhaps killed from outside: try once more on the replacement
                if session_id not in self._shadows:
                    raise SandboxError(f"session {session_id!r} was lost") from None
                continue
            except SandboxError:
                self._forget(session_id)
                raise
            return

    async def _ensure_open(self, proc: WorkerProcess, session_id: str, shadow: _Shadow) -> None:
        """Load the session into ``proc`` from its shadow unless it holds it already.

        Awaits the worker's answer; raises WorkerLost if ``proc`` dies first and
        SandboxError if the worker refuses the state. Concurrent callers share one open.
        """
        while session_id not in proc.sessions:
            pending = proc.opening.get(session_id)
            if pending is not None:
                await pending.wait()
                if proc.dead:
                    raise WorkerLost(proc.kill_reason, executing=False)
                continue
            done = proc.opening[session_id] = trio.Event()
            try:
                known = shadow.code_id in proc.code_ids
                reply = await proc.request(
                    lambda i: OpenReq(i, session_id, None if known else shadow.tools,
                                      shadow.state if shadow.encoded is None else msgspec.Raw(shadow.encoded),
                                      shadow.code_id,
                                      None if known else shadow.constraints))
                if reply.error is not None and known and reply.error.startswith(UNKNOWN_CODE):
                    proc.code_ids.discard(shadow.code_id)  # the worker let it go: send it in full
                    continue
                if reply.error is not None:
                    raise SandboxError(f"cannot open session {session_id!r}: {reply.error}")
                proc.code_ids.add(shadow.code_id)
                proc.sessions.add(session_id)
            finally:
                del proc.opening[session_id]
                done.set()

    def _code_id(self, tools: dict[str, str], constraints: Constraints | None) -> str:
        """A digest naming a tool set and its constraints (memoised: every episode of a
        domain sends the same)."""
        key = (tuple(tools.items()), self._constraints_digest(constraints))
        code_id = self._code_ids.get(key)
        if code_id is None:
            if len(self._code_ids) >= 1024:
                self._code_ids.clear()
            h = hashlib.blake2b(digest_size=16)
            for name, code in sorted(tools.items()):
                h.update(f"{len(name)}:{name}{len(code)}:".encode())
                h.update(code.encode())
            if key[1]:
                h.update(b"\x00constraints:" + key[1].encode())
            code_id = self._code_ids[key] = h.hexdigest()
        return code_id

    def _constraints_digest(self, constraints: Constraints | None) -> str:
        if constraints is None:
            return ""
        hit = self._constraint_digests.get(id(constraints))
        if hit is not None and hit[0] is constraints:
            return hit[1]
        if len(self._constraint_digests) >= CONSTRAINT_DIGESTS_KEPT:
            self._constraint_digests.clear()
        digest = hashlib.blake2b(msgspec.msgpack.encode(constraints, order="deterministic"), digest_size=16).hexdigest()
        self._constraint_digests[id(constraints)] = (constraints, digest)
        return digest

    def _forget(self, session_id: str) -> None:
        shadow = self._shadows.pop(session_id, None)
        if shadow is not None:
            shadow.slot.sessions.discard(session_id)

    async def call(self, session_id: str, tool_name: str, args: dict[str, Any]) -> CallOutcome:
        """Run `tool_name(db, **args)` in the session; never raises for tool misbehaviour.

        Every call advances the session's clock by one step, whatever its outcome; the
        outcome's ``clock`` is the reading when the tool read the time.
        """
        shadow = self._shadow(session_id)
        now_us = shadow.tick()
        try:
            check_json(args, "args")
        except InvalidValue as exc:
            return failure("bad_args", str(exc))
        if type(args) is not dict:
            return failure("bad_args", "args must be a dict of keyword arguments")

        def on_reply(reply: Reply) -> None:
            if reply.outcome is not None and reply.outcome.ok and session_id in self._shadows:
                if reply.outcome.delta:
                    shadow.encoded = None
                apply_delta(shadow.state, reply.outcome.delta)

        reloads = 0
        outside_deadline = trio.current_time() + SPAWN_KILLED_BUDGET_S
        while True:
            proc = await shadow.slot.current()
            try:
                if session_id not in proc.sessions:
                    try:
                        await self._ensure_open(proc, session_id, shadow)
                    except WorkerLost as lost:
                        if lost.executing and not (await proc.killed_from_outside()
                                                   and trio.current_time() < outside_deadline):
                            reloads += 1
                        if reloads >= OPEN_ATTEMPTS:
                            return failure("crashed", f"reloading the session for {tool_name} killed the worker {reloads} times")
                        continue
                reply = await proc.request(lambda i: CallReq(i, session_id, tool_name, args, now_us), on_reply=on_reply)
            except WorkerLost as lost:
                if not lost.executing:
                    continue
                if lost.reason == "timeout":
                    return failure(
                        "timeout",
                        f"{tool_name} did not finish within {self.limits.timeout_s:g} s; the worker was killed",
                    )
                return failure("crashed", f"the worker died while running {tool_name}")
            if reply.outcome is None:
                raise SandboxError(reply.error or "worker returned no outcome")
            return reply.outcome

    async def get_state(self, session_id: str) -> DbState:
        """The session's current (committed) state, as held by its worker."""
        shadow = self._shadow(session_id)
        while True:
            proc = await shadow.slot.current()
            if session_id not in proc.sessions and session_id not in proc.opening:
                return copy_state(shadow.state)  # exactly what loading it would give
            try:
                reply = await proc.request(lambda i: StateReq(i, session_id))
            except WorkerLost:
                continue
            if reply.error is not None:
                raise SandboxError(reply.error)
            state: DbState = reply.state
            return state

    def shadow_state(self, session_id: str) -> DbState:
        """A copy of the parent's shadow of the session state (what a restore would load)."""
        return copy_state(self._shadow(session_id).state)

    async def close_session(self, session_id: str) -> None:
        """Forget the session (in the worker and in the parent).

        Does not wait for the worker's answer (nothing depends on it, and a finished
        episode should not hold its place while the worker works through its queue): the
        close is queued behind the session's earlier requests and answered in order.
        """
        shadow = self._shadow(session_id)
        self._forget(session_id)
        try:
            proc = await shadow.slot.current()
            if session_id in proc.sessions or session_id in proc.opening:
                proc.sessions.discard(session_id)
                proc.post(lambda i: CloseReq(i, session_id))  # answered after the open, in order
        except (WorkerLost, SandboxError):
            pass  # the replacement worker (if any) never loads a forgotten session

    async def run_once(
        self, tools: dict[str, str], state: DbState, tool_name: str, args: dict[str, Any], *,
        constraints: Constraints | None = None, clock: SessionClock | None = None,
    ) -> CallOutcome:
        """Open a throwaway session (see :meth:`open_session`), run one call, close it.

        The call reads the clock's first reading."""
        session_id = f"\x00once-{next(self._once_ids)}"
        await self.open_session(session_id, tools, state, constraints=constraints, clock=clock)
        try:
            return await self.call(session_id, tool_name, args)
        finally:
            with trio.CancelScope(shield=True):
                await self.close_session(session_id)

"""Parent-side handle of one worker process: pipelined requests, reader,
writer and watchdog tasks.

Requests are written as soon as they are made (several may be in flight); the
worker answers in order, so the oldest unanswered request is the one running.
The watchdog SIGKILLs the worker if that request runs past the hard deadline
(`timeout_s + kill_grace_s`). When the worker dies, the request that was
running fails with `WorkerLost(executing=True)`; the queued ones with
`executing=False` (they never started and may be retried).
"""

from __future__ import annotations

import collections
import itertools
import math
import signal
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Literal

import attrs
import trio

from scaleenv._sandbox.protocol import (
    FrameBuffer,
    Hello,
    Reply,
    Request,
    frame,
    reply_decoder,
    request_encoder,
)
from scaleenv._sandbox.types import Limits

WORKER_ENV = {"PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1", "LC_ALL": "C.UTF-8", "TZ": "UTC"}
"""The whole environment of a worker. PYTHONHASHSEED=0 makes str hashing (and so
set iteration order) identical in every worker, which `-I` would prevent (it
ignores PYTHON* variables); `-s -P` give the rest of `-I`'s isolation."""


HANDSHAKE_TIMEOUT_S = 30.0
"""How long a new worker may take to lock itself down and answer the handshake."""


class WorkerStartFailed(RuntimeError):
    """A worker did not complete its handshake.

    ``killed`` is True when the process died of SIGKILL, which only someone else sends (a
    kill from outside, the OOM killer): not the worker's own failure, so worth another
    start. False means the worker exited on its own, crashed on a signal of its own
    (SIGSEGV, SIGABRT), hung past the handshake deadline or could not be executed:
    starting it again would fail the same way.
    """

    def __init__(self, message: str, killed: bool) -> None:
        super().__init__(message)
        self.killed = killed


class WorkerLost(Exception):
    """The worker died before answering a request."""

    def __init__(self, reason: Literal["timeout", "crashed"], executing: bool) -> None:
        super().__init__(f"worker {reason} ({'while running' if executing else 'before running'} this request)")
        self.reason = reason
        self.executing = executing


@attrs.define
class _Pending:
    id: int
    event: trio.Event = attrs.field(factory=trio.Event)
    reply: Reply | None = None
    lost: WorkerLost | None = None
    on_reply: Callable[[Reply], None] | None = None
    on_lost: Callable[[WorkerLost], None] | None = None


def worker_command(python: str = sys.executable) -> list[str]:
    """The argv of a worker process."""
    return [python, "-s", "-P", "-m", "scaleenv._sandbox.worker"]


class WorkerProcess:
    """One live worker child process."""

    def __init__(self, process: trio.Process, limits: Limits) -> None:
        self.process = process
        self.limits = limits
        self.dead = False
        self.kill_reason: Literal["timeout", "crashed"] = "crashed"
        self.killed_by_us = False
        self._ids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._fifo: collections.deque[int] = collections.deque()
        self._send, self._outbox = trio.open_memory_channel[bytes](math.inf)
        self._buffer = FrameBuffer()
        self._head_since = 0.0
        self._busy = trio.Event()
        self.on_death: Callable[[], None] | None = None
        self.died = trio.Event()
        self._closed = False
        self._writer_busy = False
        assert process.stdin is not None
        self._stdin_fd = process.stdin.fileno()
        self.code_ids: set[str] = set()
        """Tool sets this process was sent (see OpenReq.code_id); a new process knows none."""
        self.sessions: set[str] = set()
        """Sessions this process holds; a replacement process holds none until each is used."""
        self.opening: dict[str, trio.Event] = {}
        """Sessions whose open was sent to this process and not yet answered."""

    @property
    def pid(self) -> int:
        """OS process id."""
        return self.process.pid

    @classmethod
    async def spawn(cls, limits: Limits, scratch: str, python: str = sys.executable) -> WorkerProcess:
        """Start a worker and complete the handshake (it is locked down on return)."""
        process = await trio.lowlevel.open_process(
            worker_command(python),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=scratch,
            env=WORKER_ENV,
            start_new_session=True,
        )
        worker = cls(process, limits)
        assert process.stdin is not None and process.stdout is not None
        try:
            try:
                await process.stdin.send_all(frame(request_encoder.encode(Hello(limits))))
                with trio.fail_after(HANDSHAKE_TIMEOUT_S):
                    while True:
                        data = await process.stdout.receive_some(65536)
                        if not data:
                            break
                        if worker._buffer.feed(data):
                            return worker
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                pass  # the pipe broke: the process is gone; its exit status says why
            except trio.TooSlowError:
                raise WorkerStartFailed(f"sandbox worker gave no handshake within {HANDSHAKE_TIMEOUT_S} s", killed=False) from None
            with trio.move_on_after(5):
                await process.wait()
            code = process.returncode
            if code == -signal.SIGKILL:  # what someone else's kill and the OOM killer send
                raise WorkerStartFailed(f"sandbox worker was killed by signal {-code} during startup", killed=True)
            if code is not None and code < 0:  # SIGSEGV, SIGABRT, ...: the worker's own crash
                raise WorkerStartFailed(f"sandbox worker died of signal {-code} during startup", killed=False)
            raise WorkerStartFailed(f"sandbox worker exited during startup (status {code})", killed=False)
        except BaseException:
            # Never leave a half-started worker behind (killed from outside, hung, cancelled).
            with trio.CancelScope(shield=True):
                if process.returncode is None:
                    process.kill()
                await process.wait()
            raise

    async def request(
        self,
        build: Callable[[int], Request],
        on_reply: Callable[[Reply], None] | None = None,
        on_lost: Callable[[WorkerLost], None] | None = None,
    ) -> Reply:
        """Send a request and wait for its reply; raises WorkerLost if the worker dies."""
        pending = self.post(build, on_reply=on_reply, on_lost=on_lost)
        await pending.event.wait()
        if pending.lost is not None:
            raise pending.lost
        assert pending.reply is not None
        return pending.reply

    def post(
        self,
        build: Callable[[int], Request],
        on_reply: Callable[[Reply], None] | None = None,
        on_lost: Callable[[WorkerLost], None] | None = None,
    ) -> _Pending:
        """Send a request without waiting: its reply (or loss) sets the returned handle's
        ``event``. It is answered in order and timed by the watchdog like any other."""
        if self.dead:
            raise WorkerLost("crashed", executing=False)
        pending = _Pending(next(self._ids), on_reply=on_reply, on_lost=on_lost)
        self._pending[pending.id] = pending
        self._fifo.append(pending.id)
        if len(self._fifo) == 1:
            self._head_since = trio.current_time()
            self._busy.set()
        self._write(frame(request_encoder.encode(build(pending.id))))
        return pending

    def _write(self, data: bytes) -> None:
        """Write a frame to the worker now if nothing is queued before it, else queue it.

        Under load the writer task may wait a whole scheduler round before it runs; the
        pipe is non-blocking, so a frame that fits goes out at once, and only a remainder
        (a full pipe) or a frame behind one still queued waits for the writer task.
        """
        if not self._closed and not self._writer_busy:
            try:
                written = os.write(self._stdin_fd, data)
            except BlockingIOError:
                written = 0
            except OSError:
                written = 0  # a dead worker: the writer task meets the same error and stops
            if written == len(data):
                return
            data = data[written:]
        # From here until the writer task has written all it was handed, every frame queues
        # behind this one (a frame handed to the waiting writer task is in no buffer yet).
        self._writer_busy = True
        self._send.send_nowait(data)

    @property
    def in_flight(self) -> int:
        """Requests sent and not yet answered."""
        return len(self._fifo)

    def kill(self, reason: Literal["timeout", "crashed"] = "crashed") -> None:
        """SIGKILL the worker (its reader then fails the pending requests)."""
        if self.process.returncode is None:
            self.kill_reason = reason
            self.killed_by_us = True
            self.process.kill()

    async def killed_from_outside(self) -> bool:
        """Once dead: whether a signal someone else sent ended it (SIGKILL from outside, the
        OOM killer), not its own failure nor our kill. Awaits the process's exit status."""
        with trio.CancelScope(shield=True):
            await self.process.wait()
        return not self.killed_by_us and self.process.returncode == -signal.SIGKILL

    async def serve(self) -> None:
        """Run reader, writer and watchdog until the worker dies or is closed."""
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._writer)
                nursery.start_soon(self._watchdog)
                await self._reader()
                nursery.cancel_scope.cancel()
        finally:
            self._fail_all()
            with trio.CancelScope(shield=True):
                if self.process.returncode is None:
                    # Reap it: a worker whose output ended may not be reaped yet (someone
                    # else's SIGKILL is still taking effect), or we are shutting down. Not a
                    # kill of ours (killed_by_us stays as it was: see killed_from_outside).
                    self.process.kill()
                await self.process.wait()

    async def close(self) -> None:
        """Ask the worker to exit (end of input)."""
        self._closed = True
        self._send.close()

    def _fail_all(self) -> None:
        if self.dead:
            return
        self.dead = True
        if self.on_death is not None:
            self.on_death()
        first = True
        for request_id in self._fifo:
            pending = self._pending.pop(request_id)
            pending.lost = WorkerLost(self.kill_reason, executing=first)
            if pending.on_lost is not None:
                pending.on_lost(pending.lost)
            pending.event.set()
            first = False
        self._fifo.clear()
        self.died.set()

    async def _writer(self) -> None:
        assert self.process.stdin is not None
        try:
            async for data in self._outbox:
                chunks = [data]
                while True:
                    try:
                        chunks.append(self._outbox.receive_nowait())
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                await self.process.stdin.send_all(b"".join(chunks))
                if self._send.statistics().current_buffer_used == 0:
                    self._writer_busy = False  # all handed over is written: frames may go direct again
            await self.process.stdin.aclose()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    async def _reader(self) -> None:
        assert self.process.stdout is not None
        while True:
            try:
                data = await self.process.stdout.receive_some(1 << 20)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return
            if not data:
                return
            try:
                payloads = self._buffer.feed(data)
                for payload in payloads:
                    self._deliver(reply_decoder.decode(payload))
            except ValueError:  # corrupt frame (msgspec.DecodeError is a ValueError)
                self.kill("crashed")
                return

    def _deliver(self, reply: Reply) -> None:
        if not self._fifo or self._fifo[0] != reply.id:
            raise ValueError(f"reply {reply.id} out of order")
        self._fifo.popleft()
        pending = self._pending.pop(reply.id)
        pending.reply = reply
        if pending.on_reply is not None:
            pending.on_reply(reply)
        pending.event.set()
        self._head_since = trio.current_time()

    async def _watchdog(self) -> None:
        """Kill the worker when one request stays at the head of the queue past the hard
        limit. It sleeps until the head's deadline and looks again; replies do not wake it
        (one wake-up per reply cost a scheduler trip and a cancel scope per tool call)."""
        hard = self.limits.timeout_s + self.limits.kill_grace_s
        while True:
            if not self._fifo:
                self._busy = trio.Event()
                await self._busy.wait()
                continue
            head, since = self._fifo[0], self._head_since
            await trio.sleep_until(since + hard)
            if self._fifo and self._fifo[0] == head and self._head_since == since:
                self.kill("timeout")
                return

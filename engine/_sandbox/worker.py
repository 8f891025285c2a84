"""Worker process entry point: `python -s -P -m scaleenv._sandbox.worker`.

Reads request frames on stdin and answers each, in order, on a private dup of
stdout (fd 1 itself is pointed at /dev/null). The first frame carries the
Limits; the worker then locks itself down (`confine.lockdown`) and answers id 0.
"""

from __future__ import annotations

import collections
import os
import sys
import warnings

# Everything the worker will ever need is imported before lockdown: afterwards
# the audit hook refuses new imports.
import linecache  # noqa: F401
import traceback  # noqa: F401

from scaleenv._model.integrity import Constraints
from scaleenv._sandbox import executor
from scaleenv._sandbox.confine import Gate, lockdown
from scaleenv._sandbox.guards import enable_test_clock
from scaleenv._sandbox.jsonval import InvalidValue
from scaleenv._sandbox.protocol import (
    CallReq,
    CloseReq,
    FrameBuffer,
    Hello,
    OpenReq,
    UNKNOWN_CODE,
    Reply,
    Request,
    StateReq,
    frame,
    reply_encoder,
    request_decoder,
)
from scaleenv._sandbox.types import failure


MAX_CODE_SETS = 256
"""Tool sets a worker keeps for later sessions (least recently used dropped first)."""


class Worker:
    """The request loop of one worker process."""

    def __init__(self, in_fd: int, out_fd: int) -> None:
        self.in_fd = in_fd
        self.out_fd = out_fd
        self.buffer = FrameBuffer()
        self.queue: list[bytes] = []
        self.sessions: dict[str, executor.Session] = {}
        self.code_sets: collections.OrderedDict[str, tuple[dict[str, str], Constraints | None]] = collections.OrderedDict()
        self.gate: Gate | None = None
        self.limits = None

    def read_request(self) -> Request | None:
        """Next request, or None at end of input."""
        while not self.queue:
            data = os.read(self.in_fd, 1 << 20)
            if not data:
                return None
            self.queue.extend(self.buffer.feed(data))
        return request_decoder.decode(self.queue.pop(0))

    def send(self, reply: Reply) -> None:
        """Write one reply frame."""
        view = memoryview(frame(reply_encoder.encode(reply)))
        while view:
            written = os.write(self.out_fd, view)
            view = view[written:]

    def handle(self, request: Request) -> Reply:
        """Answer one request (never raises for tool misbehaviour)."""
        assert self.gate is not None and self.limits is not None
        if isinstance(request, CallReq):
            session = self.sessions.get(request.session)
            if session is None:
                return Reply(request.id, error=f"unknown session {request.session!r}")
            try:
                outcome = executor.run_call(session, request.tool, request.args, self.limits, self.gate, request.now_us)
            except MemoryError:
                session.state.rollback()
                outcome = failure("memory", f"{request.tool} exhausted the worker memory limit")
            return Reply(request.id, outcome=outcome)
        if isinstance(request, OpenReq):
            code_set = self.code_set(request)
            if code_set is None:
                return Reply(request.id, error=f"{UNKNOWN_CODE} {request.code_id!r}")
            tools, constraints = code_set
            try:
                self.sessions[request.session] = executor.Session(tools, request.state, self.gate, constraints)
            except (InvalidValue, MemoryError, RecursionError) as exc:
                return Reply(request.id, error=f"{type(exc).__name__}: {exc}")
            return Reply(request.id)
        if isinstance(request, StateReq):
            session = self.sessions.get(request.session)
            if session is None:
                return Reply(request.id, error=f"unknown session {request.session!r}")
            return Reply(request.id, state=session.state.snapshot())
        if isinstance(request, CloseReq):
            self.sessions.pop(request.session, None)
            return Reply(request.id)
        return Reply(0, error="unexpected request")

    def code_set(self, request: OpenReq) -> tuple[dict[str, str], Constraints | None] | None:
        """The request's tool set and constraints: sent with it (and kept), or kept earlier, or None."""
        if request.tools is not None:
            code_set = (request.tools, request.constraints)
            if request.code_id:
                self.code_sets[request.code_id] = code_set
                self.code_sets.move_to_end(request.code_id)
                while len(self.code_sets) > MAX_CODE_SETS:
                    self.code_sets.popitem(last=False)
            return code_set
        kept = self.code_sets.get(request.code_id)
        if kept is not None:
            self.code_sets.move_to_end(request.code_id)
        return kept

    def run(self) -> None:
        """Handshake, lock down, then serve until stdin closes."""
        hello = self.read_request()
        if not isinstance(hello, Hello):
            return
        self.limits = hello.limits
        # Warnings (a deprecated regex syntax, say) go nowhere from a worker, and showing
        # one reads source files and keeps per-location state across sessions: never shown.
        warnings.simplefilter("ignore")
        if hello.limits.test_clock:
            enable_test_clock()
        executor.install_alarm()
        self.gate = lockdown(hello.limits, os.getcwd())
        self.send(Reply(0))
        while (request := self.read_request()) is not None:
            self.send(self.handle(request))


def main() -> None:
    """Process entry point."""
    out_fd = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    Worker(0, out_fd).run()


if __name__ == "__main__":
    main()

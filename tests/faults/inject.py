"""``scaleenv`` with faults placed at chosen events: the real CLI in a real process, plus
hooks that SIGKILL at a count, never at a wall time (so a trial holds under any load).

    python tests/faults/inject.py SPEC_JSON ARGS...   (the same as ``scaleenv ARGS...``)

SPEC_JSON (every key optional):

- ``kill_at_seq`` N, ``phase`` "txn" | "committed": the run SIGKILLs itself in the log
  writer's first batch that reaches seq N, either inside its write transaction (every
  record put, nothing committed: the batch must vanish) or just after its commit (before
  any appender learns of it). The batch holding seq N always exists while the log has
  fewer than N records and the run has at least N to write, so the kill always lands.
- ``pids_file`` PATH: before that kill, the run's sandbox worker pids are written there
  (JSON list), for the orphan check.
- ``kill_requests`` [[kind, k], ...]: the sandbox worker serving the k-th request (open,
  call, state or close, counted from 1) the run sends for a session of ``kind`` is
  SIGKILLed right after the request is written to it: mid-request (running or queued)
  by construction. Kinds, by session id: ``verify`` (stage 1's tool tests), ``episode``
  (a rollout's episode, ``dNN/tNNN/...``), ``tasks`` (every other: stage 2).
- ``kill_starts`` [j, ...]: the j-th worker start (counted from 1) runs a process that
  SIGKILLs itself before its handshake: a worker killed by a signal while starting.
- ``report`` PATH: at exit, JSON {"requests" (by kind), "starts", "request_kills",
  "start_kills", "pids"} (``pids``: every sandbox worker that was sent a request, for the orphan check).

Every kill is a real SIGKILL of a real process; nothing is mocked. The hooks patch the
store's writer and the sandbox's worker handle in this process only.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SUICIDE = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
"""A worker command that dies of SIGKILL before its handshake (a start killed from outside)."""


def _install(spec: dict[str, Any]) -> None:
    counts: dict[str, Any] = {"requests": {}, "starts": 0, "request_kills": 0, "start_kills": 0, "pids": []}
    if "report" in spec:
        atexit.register(lambda: Path(spec["report"]).write_text(json.dumps(counts)))
    if "kill_at_seq" in spec:
        _kill_run_at(int(spec["kill_at_seq"]), spec.get("phase", "committed"), spec.get("pids_file"))
    if spec.get("kill_requests") or spec.get("kill_starts"):
        _kill_workers({(kind, k) for kind, k in spec.get("kill_requests", ())}, set(spec.get("kill_starts", ())),
                      counts)
    elif "report" in spec:
        _kill_workers(set(), set(), counts)  # count only


def _kill_run_at(at: int, phase: str, pids_file: str | None) -> None:
    from scaleenv._store import writer
    from tests.faults.procs import worker_pids

    if phase not in ("txn", "committed"):
        raise SystemExit(f"inject: phase must be txn or committed, not {phase!r}")
    real = writer.commit_with_growth

    def die() -> None:
        if pids_file:
            Path(pids_file).write_text(json.dumps(worker_pids(os.getpid())))
        os.kill(os.getpid(), signal.SIGKILL)

    def commit(log: Any, fn: Any) -> Any:
        def build(txn: Any) -> Any:
            overlay, seq = fn(txn)
            if phase == "txn" and seq >= at:
                die()
            return overlay, seq

        overlay, seq = real(log, build)
        if phase == "committed" and seq >= at:
            die()
        return overlay, seq

    writer.commit_with_growth = commit  # the writer's batches only (Log's own txns bind theirs)


EPISODE_SESSION = re.compile(r"d\d+/t\d+/")


def kind_of(session_id: str) -> str:
    """Which part of the run a sandbox session serves (see ``kill_requests``)."""
    if session_id.startswith("\0"):
        return "verify"
    return "episode" if EPISODE_SESSION.match(session_id) else "tasks"


def _kill_workers(requests: set[tuple[str, int]], starts: set[int], counts: dict[str, Any]) -> None:
    from scaleenv._sandbox import process

    real_post = process.WorkerProcess.post
    real_command = process.worker_command
    pids: set[int] = set()

    def post(self: Any, build: Any, *args: Any, **kw: Any) -> Any:
        kinds: list[str] = []

        def built(i: int) -> Any:
            req = build(i)
            kinds.append(kind_of(getattr(req, "session", "")))
            return req

        pending = real_post(self, built, *args, **kw)
        if self.pid not in pids:
            pids.add(self.pid)
            counts["pids"].append(self.pid)
        if not kinds:
            return pending
        by_kind = counts["requests"]
        by_kind[kinds[0]] = by_kind.get(kinds[0], 0) + 1
        if (kinds[0], by_kind[kinds[0]]) in requests:
            try:
                os.kill(self.pid, signal.SIGKILL)  # from outside the pool's own kill path
                counts["request_kills"] += 1
            except ProcessLookupError:
                pass
        return pending

    def command(python: str = sys.executable) -> list[str]:
        counts["starts"] += 1
        if counts["starts"] in starts:
            counts["start_kills"] += 1
            return [python, "-c", SUICIDE]
        return real_command(python)

    process.WorkerProcess.post = post  # type: ignore[method-assign]
    process.worker_command = command


def main() -> int:
    sys.path[0] = str(ROOT)  # not this directory: its modules would shadow others by name
    spec = json.loads(sys.argv[1])
    _install(spec)
    from scaleenv._cli import main as cli

    return cli(sys.argv[2:])


def argv(spec: dict[str, Any], *args: str) -> list[str]:
    """The argv of ``scaleenv ARGS`` in this interpreter with the faults of ``spec``."""
    return [sys.executable, str(Path(__file__).resolve()), json.dumps(spec), *args]


if __name__ == "__main__":
    sys.exit(main())

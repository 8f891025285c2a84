"""Process helpers for the fault trials: children and liveness from /proc (Linux only)."""

from __future__ import annotations

import os
import time
from pathlib import Path

WORKER_MARK = "scaleenv._sandbox.worker"


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (every thread's ``children`` file), [] if it is gone."""
    out: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return out
    for task in tasks:
        try:
            out.extend(int(x) for x in (task / "children").read_text().split())
        except OSError:
            continue
    return sorted(set(out))


def cmdline(pid: int) -> str:
    """The command line of ``pid`` joined by spaces ('' if it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def worker_pids(run_pid: int) -> list[int]:
    """The sandbox worker processes a ``scaleenv run`` process started."""
    return [c for c in children(run_pid) if WORKER_MARK in cmdline(c)]


def locked_down(pid: int) -> bool:
    """Whether a sandbox worker has finished starting: its lockdown set a file-size limit of 0
    (visible in /proc/<pid>/limits), which happens after its imports, before its handshake."""
    try:
        limits = Path(f"/proc/{pid}/limits").read_text()
    except OSError:
        return False
    for line in limits.splitlines():
        if line.startswith("Max file size"):
            return line.split()[3] == "0"
    return False


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_gone(pids: list[int], timeout_s: float = 10.0) -> list[int]:
    """Wait until every pid has exited; return those still alive after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    left = [p for p in pids if alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.02)
        left = [p for p in left if alive(p)]
    return left


def kill_quietly(pid: int, sig: int) -> bool:
    """Send ``sig`` to ``pid``; False if it was already gone."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True

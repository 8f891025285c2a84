"""A sharded run as a real subprocess, stopped (signal) once its driver has stored shipped-back records.

The trigger is an observable event, never a fixed delay: the receiving logs
(``<log>.shards/<k>``) hold at least ``min_records`` records, i.e. the driver is pulling.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import attrs

from scaleenv._shards import existing_shards
from scaleenv._store.errors import LogError
from scaleenv._store.log import Log

START_LIMIT_S = 600.0
"""How long a run may take to reach the trigger before the test fails (a hang, not slowness)."""
EXIT_LIMIT_S = 60.0
"""How long a stopped driver may take to exit before it is killed and the test fails."""


def scaleenv(*args: str) -> list[str]:
    """The argv of ``scaleenv ARGS`` in this interpreter."""
    return [sys.executable, "-m", "scaleenv", *args]


def received(main: Path) -> int:
    """Records the driver has stored in its receiving logs so far (0 while there are none)."""
    total = 0
    for p in existing_shards(main):
        try:
            with Log.open(p, readonly=True) as shard:
                total += shard.count()
        except LogError:
            continue  # being created right now
    return total


@attrs.frozen
class Stopped:
    """What the signal did: the exit status, the seconds from signal to exit, stderr, and
    whether the run had finished before the trigger (nothing was stopped)."""

    code: int | None
    exit_s: float
    stderr: str
    finished_first: bool
    received_at_signal: int


def run_and_signal(argv: list[str], main: Path, sig: int, *, min_records: int, cwd: Path | None = None,
                   env: dict[str, str] | None = None) -> Stopped:
    """Start ``argv``, send ``sig`` once the receiving logs of ``main`` hold ``min_records``
    records, and wait for the process to exit (killing it, and failing, past ``EXIT_LIMIT_S``)."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    with subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=cwd,
                          env=full_env) as proc:
        deadline = time.monotonic() + START_LIMIT_S
        got = 0
        try:
            while proc.poll() is None and time.monotonic() < deadline:
                got = received(main)
                if got >= min_records:
                    break
                time.sleep(0.01)
            if proc.poll() is not None:
                return Stopped(proc.returncode, 0.0, proc.stderr.read() if proc.stderr else "", True, got)
            if got < min_records:
                raise AssertionError(f"no {min_records} records shipped back within {START_LIMIT_S:g}s")
            t0 = time.monotonic()
            proc.send_signal(sig)
            try:
                code = proc.wait(timeout=EXIT_LIMIT_S)
            except subprocess.TimeoutExpired:
                raise AssertionError(f"the driver did not exit within {EXIT_LIMIT_S:g}s of {signal.Signals(sig).name}")
            exit_s = time.monotonic() - t0
            return Stopped(code, exit_s, proc.stderr.read() if proc.stderr else "", False, got)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

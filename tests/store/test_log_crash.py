"""Crash safety with real processes: SIGKILL a writer at random points, reopen, verify.

Every acknowledged event must be present and intact; the log is always a contiguous
prefix (nothing half-written visible). ~10 rounds by default, many more under ``slow``.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from store_testevents import Said

from scaleenv._store import Log

CHILD = Path(__file__).parent / "store_child.py"


def _one_round(log_path: Path, codec, rng: random.Random, sync: bool) -> int:
    acked: list[int] = []
    with subprocess.Popen([sys.executable, str(CHILD), "append", str(log_path), "1" if sync else "0"],
                          stdout=subprocess.PIPE, bufsize=0) as child:
        want = rng.choice([1, 5, 50, 300, 2000])
        buf = b""
        while len(acked) < want:
            chunk = child.stdout.read1(65536) if hasattr(child.stdout, "read1") else child.stdout.read(4096)
            if not chunk:
                break
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                acked.extend(int(x) for x in line.split())
        if rng.random() < 0.5:
            time.sleep(rng.random() * 0.05)
        child.send_signal(signal.SIGKILL)
        child.wait()
        # Anything the child printed before dying was acknowledged too.
        rest = buf + child.stdout.read()
        for line in rest.split(b"\n")[:-1]:
            acked.extend(int(x) for x in line.split())
    assert acked, "the child acknowledged nothing before the kill"
    with Log.open(log_path, readonly=True, codec=codec) as log:
        last = log.last_seq()
        assert max(acked) <= last
        assert log.check() == []
        records = list(log.read())
        assert [r.seq for r in records] == list(range(1, last + 1))
        per_stream: dict[str, int] = {}
        for r in records:
            assert r.n == per_stream.get(r.stream, 0)
            per_stream[r.stream] = r.n + 1
            assert r.event == Said(text=f"{r.stream}:{r.n}", k=r.n)
        assert dict(log.streams()) == per_stream
    return len(acked)


def _rounds(log_path: Path, codec, n: int, seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(n):
        _one_round(log_path, codec, rng, sync=rng.random() < 0.7)


def test_sigkill_rounds(log_path, codec) -> None:
    _rounds(log_path, codec, 10, seed=1)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(5))
def test_sigkill_rounds_long(log_path, codec, seed: int) -> None:
    _rounds(log_path, codec, 40, seed=seed)

"""Runs of any size: stage 1 keeps nothing per finished domain, and Ctrl-C stops a huge run.

The memory test holds by construction: it counts the objects the process keeps (after a
full collection) between two quiescent points of one run, past a warm-up, and compares
their growth with what keeping a single domain's spec per finished domain would add.
The Ctrl-C test places the signal at a chosen point (once the log holds a chosen number
of events) and bounds what the run may write after it, not the time it takes.
"""

from __future__ import annotations

import gc
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import msgspec
import pytest
import trio

import scaleenv._run_context as run_context
import scaleenv._sandbox.pool as sandbox_pool
from scaleenv._config import RunConfig
from scaleenv._runner import WRITER_CHANNEL, EngineOptions, open_run, stage1
from scaleenv._store.events.synth import SchemaDefined
from scaleenv._store.log import Log


def _live_objects() -> int:
    gc.collect()
    return len(gc.get_objects())


def _reachable(root: object) -> int:
    """Objects the collector tracks that ``root`` holds (itself included), short of types,
    modules and functions (an instance refers to its class, and through it to everything)."""
    seen: set[int] = set()
    todo = [root]
    while todo:
        o = todo.pop()
        if id(o) in seen or not gc.is_tracked(o) or isinstance(o, type | types.ModuleType | types.FunctionType):
            continue
        seen.add(id(o))
        todo.extend(gc.get_referents(o))
    return len(seen)


@pytest.mark.slow
def test_stage1_keeps_nothing_per_finished_domain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The run's per-domain caches are bounded (256 domains by default): bound them at 2 here,
    # so that what is measured past the warm-up is whatever else a finished domain leaves.
    monkeypatch.setattr(run_context, "CONSTRAINTS_KEPT", 2)
    monkeypatch.setattr(sandbox_pool, "CONSTRAINT_DIGESTS_KEPT", 2)
    warm, more = 8, 24
    config = RunConfig(seed=3, domains=warm, min_tools=5, max_tools=5)
    path = str(tmp_path / "run.lmdb")

    async def main() -> tuple[int, int, int]:
        async with open_run(path, config, EngineOptions(progress=False, sync=False, concurrency=4)) as ctx:
            await stage1(ctx)  # the warm-up: module caches, the sandbox workers, the writer
            before = _live_objects()
            ctx.config = msgspec.structs.replace(config, domains=warm + more)
            await stage1(ctx)  # the same run grown: `more` domains finished between the counts
            after = _live_objects()
            c = ctx.progress.counters
            return before, after, int(c.get("domains", 0) + c.get("domains failed", 0))

    before, after, done = trio.run(main)
    with Log.open(path, readonly=True) as log:
        specs = [r.event.spec for s, _ in log.streams("domain/") for r in log.read_stream(s)
                 if isinstance(r.event, SchemaDefined)]
    assert done == warm + more, f"{done} of {warm + more} domains finished: the run did not do the work measured"
    per_spec = min(_reachable(s) for s in specs)
    # A leak of one spec per finished domain would add `more * per_spec` objects; allow half of it.
    assert after - before < more * per_spec / 2, (
        f"{after - before} objects more after {more} domains finished (one spec per domain: {per_spec} objects each)")


def _rss_anon_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    return 0


def _last_seq(path: Path) -> int:
    if not (path / "data.mdb").exists():
        return 0
    with Log.open(str(path), readonly=True) as log:
        return log.last_seq()


def _interrupt_at(cmd: list[str], path: Path, events: int) -> tuple[int, int, int, str]:
    """Start ``cmd``; once the log holds ``events`` more records than now, SIGINT it. Returns
    (exit status, records written after the signal, its RssAnon KB then, last stderr line)."""
    start = _last_seq(path)
    with subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as proc:
        try:
            deadline = time.monotonic() + 600  # a safety net for a run that makes no progress, not a measure
            while _last_seq(path) < start + events:
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
                assert time.monotonic() < deadline, f"no {events} events in 600 s"
                time.sleep(0.05)
            rss = _rss_anon_kb(proc.pid)
            proc.send_signal(signal.SIGINT)
            at_signal = _last_seq(path)
            status = proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
        err = proc.stderr.read().decode().strip().splitlines() if proc.stderr else []
    return status, _last_seq(path) - at_signal, rss, err[-1] if err else ""


def test_ctrl_c_stops_a_huge_run_and_its_resume(tmp_path: Path) -> None:
    path = tmp_path / "huge.lmdb"
    cmd = [sys.executable, "-m", "scaleenv", "synth", "--log", str(path), "--domains", "100000",
           "--min-tools", "5", "--max-tools", "5", "--no-sync", "--quiet"]
    for phase in ("first run", "resume"):
        status, after, rss, line = _interrupt_at(cmd, path, 300)
        assert status == 130, f"{phase}: exit status {status}: {line}"
        assert "interrupted" in line and "resume" in line, f"{phase}: {line}"
        # What was already on its way to the log when the signal landed may still be written
        # (the writer's channel and one append per agent in flight); nothing more.
        assert after <= WRITER_CHANNEL + 64, f"{phase}: {after} events written after SIGINT"
        # Working on its first domains, a 100,000-domain run holds what those need, not
        # something per domain asked for (before, it held 1.7 GB and rising before its first event).
        assert rss < 400 * 1024, f"{phase}: RssAnon {rss / 1024:.0f} MB at {300} events"

"""``scaleenv run`` as a real subprocess: a reference run and SIGKILL-and-resume trials."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import attrs

from scaleenv._store import Log, LogError

from .logcheck import LogShape, changed_since, inspect, stage_of
from .procs import wait_gone, worker_pids

SMALL = ("--domains", "2", "--tasks-per-domain", "3", "--episodes-per-task", "2")
"""A run that covers every stage in about a second of work (a few hundred events)."""
MEDIUM = ("--domains", "3", "--tasks-per-domain", "6", "--episodes-per-task", "3")


def scaleenv(*args: str) -> list[str]:
    """The argv of ``scaleenv ARGS`` in this interpreter."""
    return [sys.executable, "-m", "scaleenv", *args]


def run_argv(log: Path, seed: int, config: tuple[str, ...]) -> list[str]:
    return scaleenv("run", "--log", str(log), "--seed", str(seed), *config, "--json", "--quiet")


@attrs.frozen
class Finished:
    """A run that ended by itself."""

    code: int
    digest: str | None
    events: int | None
    stderr: str
    wall_s: float
    stages: dict[str, tuple[int, int]] = attrs.field(factory=dict)
    """Stage -> (first seq, last seq) in this run's log (the same sizes in every run)."""
    disk_kib: int = 0
    """Disk space the finished log takes (allocated blocks), for sizing "full disk" trials."""
    log: Path | None = None
    """The finished log, where :func:`reference` was asked to keep it (copy it before writing)."""


def run_to_end(log: Path, seed: int, config: tuple[str, ...], timeout_s: float = 600) -> Finished:
    """Run (or resume) to the end; the digest and event count from its ``--json`` summary."""
    start = time.monotonic()
    p = subprocess.run(run_argv(log, seed, config), capture_output=True, text=True, timeout=timeout_s)
    wall = time.monotonic() - start
    digest = events = None
    if p.returncode == 0:
        summary: dict[str, Any] = json.loads(p.stdout.strip().splitlines()[-1])
        digest, events = summary["digest"], summary["events"]
    return Finished(p.returncode, digest, events, p.stderr, wall)


@attrs.frozen
class Killed:
    """What a SIGKILL left behind."""

    finished_first: bool
    """The run ended before the trigger (nothing was killed)."""
    workers: list[int]
    orphans: list[int]
    """Sandbox workers of the killed run still alive 10 s after the kill."""


def last_seq_or_zero(path: Path, held: list[Log]) -> int:
    """The log's last seq, opening it read-only on first success (kept in ``held``)."""
    if not held:
        try:
            held.append(Log.open(path, readonly=True))
        except LogError:
            return 0
    return held[0].last_seq()


def pick_target(rng: random.Random, ref: Finished) -> int:
    """A random event count to kill at, in a uniformly chosen stage of the reference run."""
    stage = rng.choice(sorted(ref.stages))
    lo, hi = ref.stages[stage]
    return rng.randint(lo, hi)


def run_and_kill(log: Path, seed: int, config: tuple[str, ...], rng: random.Random, ref: Finished) -> Killed:
    """Start a run and SIGKILL it after a random delay or at a random event count."""
    by_events = rng.random() < 0.6
    target = pick_target(rng, ref)
    delay = rng.uniform(0.0, ref.wall_s)
    proc = subprocess.Popen(run_argv(log, seed, config), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    held: list[Log] = []
    start = time.monotonic()
    workers: list[int] = []
    try:
        while proc.poll() is None:
            workers = worker_pids(proc.pid) or workers
            if by_events and last_seq_or_zero(log, held) >= target:
                break
            if not by_events and time.monotonic() - start >= delay:
                break
            time.sleep(0.002)
        if proc.poll() is not None:
            return Killed(True, [], [])
        workers = worker_pids(proc.pid) or workers
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        for lg in held:
            lg.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return Killed(False, workers, wait_gone(workers))


@attrs.frozen
class KillTrial:
    """One SIGKILL-then-resume trial."""

    kills: int
    stages: list[str]
    shapes_intact: bool
    cli_check: int
    events_lost: int
    orphans: int
    resumed: Finished

    def identical(self, ref: Finished) -> bool:
        return self.resumed.digest == ref.digest and self.resumed.events == ref.events

    def survived(self, ref: Finished) -> bool:
        return (self.shapes_intact and self.cli_check == 0 and self.events_lost == 0 and self.orphans == 0
                and self.resumed.code == 0 and self.identical(ref))


def cli_check(log: Path) -> int:
    """Exit status of ``scaleenv log check`` (0: nothing damaged)."""
    return subprocess.run(scaleenv("log", "check", "--log", str(log)), capture_output=True).returncode


def kill_trial(workdir: Path, seed: int, config: tuple[str, ...], ref: Finished, rng: random.Random,
               max_kills: int = 3) -> KillTrial:
    """Kill a run (maybe again while it resumes), check the log each time, resume to the end."""
    log = workdir / f"kill-{rng.getrandbits(32):08x}.lmdb"
    kills, stages, intact, lost, orphans, check = 0, [], True, 0, 0, 0
    previous: LogShape | None = None
    assert ref.events is not None
    while True:
        killed = run_and_kill(log, seed, config, rng, ref)
        if killed.finished_first:
            break
        kills += 1
        orphans += len(killed.orphans)
        if (log / "data.mdb").exists():
            shape = inspect(log)
            stages.append(shape.stage)
            intact = intact and shape.intact
            if previous is not None:
                lost += changed_since(previous, shape)
            previous = shape
            check = max(check, cli_check(log))
        else:
            stages.append("before-log")
        if kills >= max_kills or rng.random() < 0.6:
            break
    resumed = run_to_end(log, seed, config)
    if previous is not None and resumed.code == 0:
        lost += changed_since(previous, inspect(log))
    shutil.rmtree(log, ignore_errors=True)
    return KillTrial(kills, stages, intact, check, lost, orphans, resumed)


def reference(workdir: Path, seed: int, config: tuple[str, ...], *, keep: bool = False) -> Finished:
    """An uninterrupted run: the digest every resumed run must reach (``keep``: its log too,
    as ``Finished.log``, for tests that need a finished log: copy it, never write to it)."""
    log = workdir / f"ref-{seed}-{os.getpid()}.lmdb"
    shutil.rmtree(log, ignore_errors=True)
    done = run_to_end(log, seed, config)
    if done.code != 0:
        raise RuntimeError(f"reference run failed ({done.code}): {done.stderr[-2000:]}")
    stages: dict[str, tuple[int, int]] = {}
    with Log.open(log, readonly=True) as lg:
        for rec in lg.read():
            st = stage_of(rec.stream)
            lo, _ = stages.get(st, (rec.seq, rec.seq))
            stages[st] = (lo, rec.seq)
    disk_kib = sum(f.stat().st_blocks * 512 for f in log.iterdir() if f.is_file()) >> 10
    if not keep:
        shutil.rmtree(log, ignore_errors=True)
    return attrs.evolve(done, stages=stages, disk_kib=disk_kib, log=log if keep else None)

"""``scaleenv run`` as a real subprocess: a reference run and SIGKILL-and-resume trials,
each kill placed at a chosen event (never raced against a wall time)."""

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

from scaleenv._store import Log

from . import inject
from .logcheck import LogShape, changed_since, inspect, stage_of
from .procs import wait_gone

SMALL = ("--domains", "1", "--tasks-per-domain", "2", "--episodes-per-task", "1",
         "--min-tools", "5", "--max-tools", "8", "--min-env-tools", "5", "--min-goals", "1", "--max-goals", "2")
"""A run that covers every stage (stage 1, stage 2, rollouts: about 550 events with seed 3)
in about 1.3 s of CPU: one domain of 5-8 tools, two tasks of 1-2 goals, one episode each."""
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


PHASES = ("txn", "committed")
"""Where in the log writer's batch a kill lands (see :mod:`tests.faults.inject`)."""


@attrs.frozen
class Kill:
    """One SIGKILL placed at a chosen event and what it left behind."""

    at_seq: int
    phase: str
    code: int
    """The killed run's exit status (-9: the kill landed)."""
    last_seq: int
    """The log's last seq after the kill."""
    orphans: list[int]
    """Sandbox workers of the killed run still alive 10 s after the kill."""

    @property
    def landed(self) -> bool:
        """Killed by the SIGKILL, exactly where it was placed: inside the transaction that
        would have committed seq ``at_seq`` (so the log stops before it) or just after it."""
        placed = self.last_seq < self.at_seq if self.phase == "txn" else self.last_seq >= self.at_seq
        return self.code == -signal.SIGKILL and placed


def pick_target(rng: random.Random, ref: Finished, after: int) -> int | None:
    """An event count past ``after`` to kill at: a uniformly chosen stage of the reference
    run among those with events left, then a uniform seq in what is left of it (None when
    the run has nothing left to write)."""
    left = {st: (max(lo, after + 1), hi) for st, (lo, hi) in ref.stages.items() if hi > after}
    if not left:
        return None
    lo, hi = left[rng.choice(sorted(left))]
    return rng.randint(lo, hi)


def kill_at(log: Path, seed: int, config: tuple[str, ...], at_seq: int, phase: str) -> Kill:
    """Run (or resume) and SIGKILL the run in the log writer's batch that reaches ``at_seq``."""
    pids = log.with_name(log.name + ".pids")
    pids.unlink(missing_ok=True)
    spec = {"kill_at_seq": at_seq, "phase": phase, "pids_file": str(pids)}
    argv = inject.argv(spec, "run", "--log", str(log), "--seed", str(seed), *config, "--json", "--quiet")
    code = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600).returncode
    workers: list[int] = json.loads(pids.read_text()) if pids.exists() else []
    pids.unlink(missing_ok=True)
    last = 0
    if (log / "data.mdb").exists():
        with Log.open(log, readonly=True) as lg:
            last = lg.last_seq()
    return Kill(at_seq, phase, code, last, wait_gone(workers))


@attrs.frozen
class KillTrial:
    """One trial: SIGKILLed 1-3 times at chosen events (the later kills while resuming),
    the log checked after each kill, then resumed to the end."""

    kills: list[Kill]
    stages: list[str]
    """The stage of the log's last record after each kill."""
    shapes_intact: bool
    cli_check: int
    events_lost: int
    resumed: Finished

    @property
    def orphans(self) -> int:
        return sum(len(k.orphans) for k in self.kills)

    @property
    def landed(self) -> bool:
        return bool(self.kills) and all(k.landed for k in self.kills)

    def identical(self, ref: Finished) -> bool:
        return self.resumed.digest == ref.digest and self.resumed.events == ref.events

    def survived(self, ref: Finished) -> bool:
        return (self.landed and self.shapes_intact and self.cli_check == 0 and self.events_lost == 0
                and self.orphans == 0 and self.resumed.code == 0 and self.identical(ref))


def cli_check(log: Path) -> int:
    """Exit status of ``scaleenv log check`` (0: nothing damaged)."""
    return subprocess.run(scaleenv("log", "check", "--log", str(log)), capture_output=True).returncode


def kill_trial(workdir: Path, seed: int, config: tuple[str, ...], ref: Finished, rng: random.Random,
               max_kills: int = 3) -> KillTrial:
    """Kill a run at a drawn event (maybe again, later, while it resumes), check the log
    each time, resume to the end. Each kill is placed, not raced: at a seq drawn from
    ``rng`` past what the log already holds, in a drawn phase of the writer's batch, so
    every planned kill lands whatever the machine's load."""
    log = workdir / f"kill-{rng.getrandbits(32):08x}.lmdb"
    kills: list[Kill] = []
    stages: list[str] = []
    intact, lost, check = True, 0, 0
    previous: LogShape | None = None
    last = 0
    while True:
        at = pick_target(rng, ref, last)
        if at is None:
            break
        kill = kill_at(log, seed, config, at, rng.choice(PHASES))
        kills.append(kill)
        last = kill.last_seq
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
        if not kill.landed or len(kills) >= max_kills or rng.random() < 0.6:
            break
    resumed = run_to_end(log, seed, config)
    if previous is not None and resumed.code == 0:
        lost += changed_since(previous, inspect(log))
    shutil.rmtree(log, ignore_errors=True)
    return KillTrial(kills, stages, intact, check, lost, resumed)


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

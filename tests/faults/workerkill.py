"""SIGKILL the sandbox workers of a running ``scaleenv run``: the run must still finish."""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import attrs

from scaleenv._store import Log
from scaleenv._store.events.episodes import EpisodeEnded, ToolExecuted

from .logcheck import inspect
from .procs import kill_quietly, locked_down, wait_gone, worker_pids
from .runs import cli_check, run_argv


@attrs.frozen
class WorkerKillTrial:
    """One run whose workers were killed again and again while it ran."""

    code: int
    stderr: str
    kills: int
    intact: bool
    cli_check: int
    crashed_calls: int
    """ToolExecuted events with error_kind 'crashed' (a call was running when its worker died)."""
    environment_faults: int
    """Episodes that ended with fault 'environment'."""
    episodes: int
    orphans: int

    @property
    def survived(self) -> bool:
        return self.code == 0 and self.intact and self.cli_check == 0 and self.orphans == 0


def worker_kill_trial(workdir: Path, seed: int, config: tuple[str, ...], rng: random.Random) -> WorkerKillTrial:
    """Run to the end while SIGKILLing a random worker every 0.2-0.8 s.

    Mostly workers that have finished starting (killed mid-session or mid-call); one kill
    in five may hit a worker still starting. Killing every start would stop any design
    (on a loaded machine a start can take longer than the interval), so it is not tried."""
    log = workdir / f"wk-{rng.getrandbits(32):08x}.lmdb"
    proc = subprocess.Popen(run_argv(log, seed, config), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    kills = 0
    seen: set[int] = set()
    while proc.poll() is None:
        time.sleep(rng.uniform(0.2, 0.8))
        pids = worker_pids(proc.pid)
        seen.update(pids)
        started = [p for p in pids if locked_down(p)]
        # While no worker has finished starting, none is killed: on a loaded machine a start
        # can outlast the interval, and killing whatever is there would kill every start.
        pool = (started if rng.random() < 0.8 else pids) if started else []
        if pool and kill_quietly(rng.choice(pool), signal.SIGKILL):
            kills += 1
    out, err = proc.communicate()
    shape = inspect(log)
    crashed = env_faults = episodes = 0
    with Log.open(log, readonly=True) as lg:
        for rec in lg.read():
            if isinstance(rec.event, ToolExecuted) and rec.event.error_kind == "crashed":
                crashed += 1
            elif isinstance(rec.event, EpisodeEnded):
                episodes += 1
                env_faults += rec.event.fault == "environment"
    trial = WorkerKillTrial(code=proc.returncode, stderr=err[-3000:], kills=kills, intact=shape.intact,
                            cli_check=cli_check(log), crashed_calls=crashed, environment_faults=env_faults,
                            episodes=episodes, orphans=len(wait_gone(sorted(seen), 5.0)))
    shutil.rmtree(log, ignore_errors=True)
    return trial


__all__ = ["WorkerKillTrial", "worker_kill_trial"]

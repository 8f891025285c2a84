"""SIGKILL the sandbox workers of a running ``scaleenv run``: the run must still finish.

Every kill is placed, not raced: in each part of the run (stage 1's tool tests, stage 2,
the episodes) a worker is killed right after the k-th request of that part is written to
it (so it dies with that request running or queued), and a chosen worker start dies of
SIGKILL before its handshake (see :mod:`tests.faults.inject`). Which requests and which
start are drawn from the trial's rng, so each trial kills exactly what it planned,
however loaded the machine."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path

import attrs

from scaleenv._store import Log
from scaleenv._store.events.episodes import EpisodeEnded, ToolExecuted

from . import inject
from .logcheck import inspect
from .procs import wait_gone
from .runs import cli_check

REQUEST_RANGES = {"verify": (1, 500), "tasks": (1, 200), "episode": (3, 4)}
"""Where each part's kill may land, by request count of that part: a SMALL run (seed 3)
sends about 620 requests for stage 1's tool tests, 320 for stage 2 and 12 for its two
episodes (two opens, then calls: a kill at the 3rd or 4th lands mid-call or with a call
queued; one episode alone, when a stage-2 kill cost a task, still sends an open and 4
calls), so each drawn request exists and the worker killed at it is replaced (the pool
is not closing yet)."""


@attrs.frozen
class WorkerKillTrial:
    """One run whose workers were killed at chosen requests and starts."""

    code: int
    stderr: str
    planned: int
    """Kills planned: requests plus starts."""
    kills: int
    """Kills that landed (the injector's own count)."""
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
        return (self.code == 0 and self.kills == self.planned and self.intact and self.cli_check == 0
                and self.orphans == 0)


def plan(rng: random.Random) -> tuple[list[tuple[str, int]], list[int]]:
    """Which requests (one per part of the run, see REQUEST_RANGES) and which worker start
    to kill. The pool's two first starts and one replacement per killed request always
    happen, so a start drawn from 1..2 + requests always exists (a killed start is
    replaced too)."""
    reqs = [(kind, rng.randint(lo, hi)) for kind, (lo, hi) in REQUEST_RANGES.items()]
    return reqs, [rng.randint(1, 2 + len(reqs))]


def worker_kill_trial(workdir: Path, seed: int, config: tuple[str, ...], rng: random.Random) -> WorkerKillTrial:
    """Run to the end while SIGKILLing sandbox workers at drawn requests and starts."""
    log = workdir / f"wk-{rng.getrandbits(32):08x}.lmdb"
    report = log.with_name(log.name + ".report")
    requests, starts = plan(rng)
    spec = {"kill_requests": requests, "kill_starts": starts, "report": str(report)}
    argv = inject.argv(spec, "run", "--log", str(log), "--seed", str(seed), *config, "--json", "--quiet")
    p = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    counts = json.loads(report.read_text()) if report.exists() else {}
    report.unlink(missing_ok=True)
    shape = inspect(log)
    crashed = env_faults = episodes = 0
    with Log.open(log, readonly=True) as lg:
        for rec in lg.read():
            if isinstance(rec.event, ToolExecuted) and rec.event.error_kind == "crashed":
                crashed += 1
            elif isinstance(rec.event, EpisodeEnded):
                episodes += 1
                env_faults += rec.event.fault == "environment"
    trial = WorkerKillTrial(code=p.returncode, stderr=p.stderr[-3000:], planned=len(requests) + len(starts),
                            kills=counts.get("request_kills", 0) + counts.get("start_kills", 0),
                            intact=shape.intact, cli_check=cli_check(log), crashed_calls=crashed,
                            environment_faults=env_faults, episodes=episodes,
                            orphans=len(wait_gone(counts.get("pids", []), 5.0)))
    shutil.rmtree(log, ignore_errors=True)
    return trial


__all__ = ["WorkerKillTrial", "worker_kill_trial"]

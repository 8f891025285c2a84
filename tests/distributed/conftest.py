"""A small run's stage-1/2 log (no episodes yet) and the single-machine rollout of it, shared per package."""

from __future__ import annotations

import faulthandler
from contextlib import contextmanager
from functools import partial
import shutil
import tempfile
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import attrs
import msgspec
import pytest
import trio

from scaleenv._replay.projection import fold
from scaleenv._config import RunConfig
from scaleenv._runner import EngineOptions, open_run, project, rollouts, stage1, summary
from scaleenv._agents.sim import NoiseModel, SimBackend
from scaleenv._serve.sim_http import SimServer, serve_sim
from scaleenv._shards import shard_of
from scaleenv._store.events.episodes import EpisodeStarted
from scaleenv._store.events.llm import LlmCalled
from scaleenv._store.log import Log
from tests.conftest import TEMPLATE, copy_log

T = TypeVar("T")

HANG_LIMIT_S = 600.0
"""How long :func:`bounded` lets a call run before failing the test (a hang, not slowness)."""

CONFIG = msgspec.structs.replace(TEMPLATE, episodes_per_task=3)
OPTIONS = EngineOptions(progress=False, sync=False)


@attrs.frozen
class Base:
    """``tasks``: a log holding stages 1 and 2 only; ``digest``/``streams``: the single-machine rollout of it."""

    tasks: Path
    single: Path
    digest: str
    streams: dict[str, str]
    episodes: int

    def copy(self, to: Path) -> Path:
        shutil.copytree(self.tasks, to)
        return to


def run_stages(path: Path, *stages: Any, config: RunConfig = CONFIG, options: EngineOptions = OPTIONS) -> dict[str, Any]:
    async def main() -> dict[str, Any]:
        async with open_run(str(path), config, options) as ctx:
            for stage in stages:
                await stage(ctx)
            return summary(project(ctx.log))

    return trio.run(main)


def bounded(fn: Callable[..., T], *args: Any, limit: float = HANG_LIMIT_S, **kw: Any) -> T:
    """``fn(*args, **kw)`` on a thread; if it has not returned after ``limit`` seconds the
    test fails with every thread's stack (a hang is a failure with a message, not a stuck
    suite). The hung thread is a daemon, left behind."""
    out: dict[str, Any] = {}

    def target() -> None:
        try:
            out["value"] = fn(*args, **kw)
        except BaseException as exc:  # noqa: BLE001 - re-raised on the test's thread
            out["error"] = exc

    t = threading.Thread(target=target, name=f"bounded:{getattr(fn, '__name__', fn)}", daemon=True)
    t.start()
    t.join(limit)
    if t.is_alive():
        with tempfile.TemporaryFile("w+") as f:
            faulthandler.dump_traceback(f, all_threads=True)
            f.seek(0)
            stacks = f.read()
        pytest.fail(f"{t.name} did not return within {limit:g}s: it hangs. Every thread's stack:\n{stacks}",
                    pytrace=False)
    if "error" in out:
        raise out["error"]
    return out["value"]


def stream_digests(path: Path) -> dict[str, str]:
    with Log.open(path, readonly=True) as log:
        return fold(log.read()).stream_digests()


def episode_starts(path: Path) -> Counter[str]:
    with Log.open(path, readonly=True) as log:
        return Counter(r.stream for r in log.read() if isinstance(r.event, EpisodeStarted))


@pytest.fixture(scope="package")
def base(template: Path, tmp_path_factory: pytest.TempPathFactory) -> Base:
    root = tmp_path_factory.mktemp("distributed")
    tasks = copy_log(template, root / "tasks")
    single = shutil.copytree(tasks, root / "single")
    result = run_stages(single, rollouts)
    episodes = sum(d["episodes"] for d in result["domains"])
    assert episodes > 10, "the base run should have a fair number of episodes to shard"
    return Base(tasks=tasks, single=single, digest=result["digest"], streams=stream_digests(single), episodes=episodes)


@pytest.fixture(scope="package")
def synth_only(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Stage 1 alone of the base run (same seed and sizes): what distributed stage 2 starts from (copy it)."""
    path = tmp_path_factory.mktemp("synth_only") / "log"
    run_stages(path, stage1)
    return path


def calls_by_shard(path: Path, shards: int) -> dict[int, int]:
    """How many model calls the merged log's episode streams hold, by the shard each episode went to."""
    out: dict[int, int] = {}
    with Log.open(path, readonly=True) as log:
        for sid, _ in log.streams("episode/"):
            k = shard_of(sid, shards)
            out[k] = out.get(k, 0) + sum(isinstance(r.event, LlmCalled) for r in log.read_stream(sid))
    return out


SimServers = tuple[tuple[str, SimServer], tuple[str, SimServer]]
"""Two sim servers: (base URL, the server object whose ``served`` counts its completions) each."""


@pytest.fixture
def two_sim_servers() -> Iterator[SimServers]:
    with sim_servers() as both:
        yield both


@contextmanager
def sim_servers() -> Iterator[SimServers]:
    """Two sim servers (the real HTTP server, same sim) on loopback ports, on a trio thread of their own."""
    servers = (SimServer(sim=SimBackend(noise=NoiseModel())), SimServer(sim=SimBackend(noise=NoiseModel())))
    ports: list[int] = []
    ready = threading.Event()
    stop: list[trio.CancelScope] = []
    token: list[trio.lowlevel.TrioToken] = []

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for s in servers:
                ports.append(await nursery.start(partial(serve_sim, "127.0.0.1", 0, server=s)))
            stop.append(nursery.cancel_scope)
            token.append(trio.lowlevel.current_trio_token())
            ready.set()

    t = threading.Thread(target=trio.run, args=(main,), daemon=True)
    t.start()
    assert ready.wait(30)
    try:
        yield ((f"http://127.0.0.1:{ports[0]}/v1", servers[0]), (f"http://127.0.0.1:{ports[1]}/v1", servers[1]))
    finally:
        token[0].run_sync_soon(stop[0].cancel)
        t.join(30)

"""A small run's stage-1/2 log (no episodes yet) and the single-machine rollout of it, shared per package."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from scaleenv.replay.projection import fold
from scaleenv.run_context import RunConfig
from scaleenv.runner import EngineOptions, open_run, project, rollouts, stage1, stage2, summary
from scaleenv.store.events.episodes import EpisodeStarted
from scaleenv.store.log import Log

CONFIG = RunConfig(seed=5, domains=2, tasks_per_domain=4, episodes_per_task=3)
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


def run_stages(path: Path, *stages: Any, config: RunConfig = CONFIG) -> dict[str, Any]:
    async def main() -> dict[str, Any]:
        async with open_run(str(path), config, OPTIONS) as ctx:
            for stage in stages:
                await stage(ctx)
            return summary(project(ctx.log))

    return trio.run(main)


def stream_digests(path: Path) -> dict[str, str]:
    with Log.open(path, readonly=True) as log:
        return fold(log.read()).stream_digests()


def episode_starts(path: Path) -> Counter[str]:
    with Log.open(path, readonly=True) as log:
        return Counter(r.stream for r in log.read() if isinstance(r.event, EpisodeStarted))


@pytest.fixture(scope="package")
def base(tmp_path_factory: pytest.TempPathFactory) -> Base:
    root = tmp_path_factory.mktemp("distributed")
    tasks = root / "tasks"
    run_stages(tasks, stage1, stage2)
    single = shutil.copytree(tasks, root / "single")
    result = run_stages(single, rollouts)
    episodes = sum(d["episodes"] for d in result["domains"])
    assert episodes > 10, "the base run should have a fair number of episodes to shard"
    return Base(tasks=tasks, single=single, digest=result["digest"], streams=stream_digests(single), episodes=episodes)

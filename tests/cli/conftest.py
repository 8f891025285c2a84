"""A tiny finished run (one domain, one task, one episode), built once per test process for
the CLI tests that need episodes (fuzzing, export); copy it before writing to it."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from scaleenv._runner import EngineOptions, open_run, rollouts, stage1, stage2

TINY = {"seed": 1, "domains": 1, "tasks_per_domain": 1, "episodes_per_task": 1}


@pytest.fixture(scope="session")
def tiny_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tiny") / "log"

    async def build() -> None:
        async with open_run(str(path), TINY, EngineOptions(progress=False, sync=False)) as ctx:
            for stage in (stage1, stage2, rollouts):
                await stage(ctx)

    trio.run(build)
    return path

"""Small real runs of the whole pipeline (sim LLM, real LMDB, real sandbox), shared per module."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

from scaleenv.config import RunConfig
from scaleenv.runner import EngineOptions, open_run, project, rollouts, stage1, stage2, summary

SMALL = RunConfig(seed=7, domains=2, tasks_per_domain=4, episodes_per_task=2)


def run_pipeline(path: Path, config: RunConfig = SMALL, **options: Any) -> dict[str, Any]:
    opts = EngineOptions(progress=False, sync=False, **options)

    async def main() -> dict[str, Any]:
        async with open_run(str(path), config, opts) as ctx:
            for stage in (stage1, stage2, rollouts):
                await stage(ctx)
            return summary(project(ctx.log))

    return trio.run(main)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    path = tmp_path_factory.mktemp("run") / "log"
    return path, run_pipeline(path)

"""Small real runs of the whole pipeline (sim LLM, real LMDB, real sandbox), shared per module."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio

from scaleenv._config import RunConfig
from scaleenv._runner import EngineOptions, open_run, project, rollouts, stage1, stage2, summary
from scaleenv._store.log import Log
from tests.conftest import TEMPLATE, copy_log, roll_out

SMALL = msgspec.structs.replace(TEMPLATE, episodes_per_task=2)


def run_pipeline(path: Path, config: RunConfig = SMALL, **options: Any) -> dict[str, Any]:
    opts = EngineOptions(progress=False, sync=False, **options)

    async def main() -> dict[str, Any]:
        async with open_run(str(path), config, opts) as ctx:
            for stage in (stage1, stage2, rollouts):
                await stage(ctx)
            return summary(project(ctx.log))

    return trio.run(main)


@pytest.fixture(scope="module")
def small_run(template: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """SMALL run to the end: the suite's template (stages 1 and 2) rolled out."""
    path = copy_log(template, tmp_path_factory.mktemp("run") / "log")
    roll_out(path, SMALL.episodes_per_task)
    with Log.open(path, readonly=True) as log:
        return path, summary(project(log))

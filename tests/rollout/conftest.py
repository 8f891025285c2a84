"""Rollout tests share one synthesized template (stage 1 + 2); each test rolls out on a copy."""

from __future__ import annotations

import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio

from scaleenv.config import RunConfig
from scaleenv.run_context import RunContext
from scaleenv.runner import EngineOptions, open_run, project, rollouts, stage1, stage2

TEMPLATE = RunConfig(seed=5, domains=2, tasks_per_domain=3, episodes_per_task=0)


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A log holding synthesized domains and kept tasks, and no episode yet."""
    path = tmp_path_factory.mktemp("rollout-template") / "log"

    async def main() -> None:
        async with open_run(str(path), TEMPLATE, EngineOptions(progress=False, sync=False)) as ctx:
            await stage1(ctx)
            await stage2(ctx)
            assert any(t.status == "kept" for t in project(ctx.log).tasks.values())

    trio.run(main)
    return path


def copy_template(template: Path, dest: Path) -> Path:
    shutil.copytree(template, dest)
    return dest


def config(episodes_per_task: int, **kw: Any) -> RunConfig:
    return msgspec.structs.replace(TEMPLATE, episodes_per_task=episodes_per_task, **kw)


def roll(path: Path, episodes_per_task: int, *, during: Callable[[RunContext], Awaitable[None]] | None = None,
         backend: Any = None, **options: Any) -> None:
    """Run the rollout stage on the log at ``path`` (optionally with another backend or a watcher task)."""
    opts = EngineOptions(progress=False, sync=False, **options)

    async def main() -> None:
        async with open_run(str(path), config(episodes_per_task), opts) as ctx:
            if backend is not None:
                ctx.llm.backend = backend
            async with trio.open_nursery() as nursery:
                if during is not None:
                    nursery.start_soon(during, ctx)
                await rollouts(ctx)
                nursery.cancel_scope.cancel()

    trio.run(main)

"""Rollout tests roll out on copies of the suite's template (stages 1 and 2: tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
import trio

from scaleenv._config import RunConfig
from scaleenv._run_context import RunContext
from scaleenv._runner import EngineOptions, open_run, rollouts
from tests.conftest import TEMPLATE, copy_log

def copy_template(template: Path, dest: Path) -> Path:
    return copy_log(template, dest)


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

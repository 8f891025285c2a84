"""Logs shared by the whole suite, built once per test process; tests copy them before writing.

- ``template``: stages 1 and 2 of a small run (2 domains, kept tasks, no episode yet);
  rollout, serving, pipeline and distributed tests roll out on copies of it.
- ``synth8``: stage 1 of an 8-domain run (seed 1), for the facts about synthesized tools.

Tests listed in ``tests/heavy.txt`` are marked ``heavy``: the quick loop leaves them out
(``pytest -m "not slow and not heavy"``); the default command (CI) runs them.
"""

from __future__ import annotations

import shutil
import signal
from pathlib import Path

import pytest
import trio

from scaleenv._config import RunConfig
from scaleenv._runner import EngineOptions, open_run, project, rollouts, stage1, stage2
from scaleenv._store.log import Log

# A shell starts a background job (`cmd &`) with SIGINT ignored, Python then installs no
# KeyboardInterrupt handler, and every child inherits the ignored signal: the tests that
# stop a child with Ctrl-C would wait forever. Ctrl-C means Ctrl-C here, however the suite was started.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

HEAVY = [line.split("#")[0].strip() for line in (Path(__file__).parent / "heavy.txt").read_text().splitlines()]
HEAVY = [h for h in HEAVY if h]


def _listed(nodeid: str, entry: str) -> bool:
    """Whether ``entry`` (a folder ``tests/ui/``, a file ``tests/x.py`` or a test ``tests/x.py::test_y``) covers ``nodeid``."""
    if entry.endswith("/"):
        return nodeid.startswith(entry)
    return nodeid == entry or nodeid.startswith((entry + "::", entry + "["))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the tests listed in tests/heavy.txt ``heavy``."""
    for item in items:
        if any(_listed(item.nodeid, entry) for entry in HEAVY):
            item.add_marker(pytest.mark.heavy)


TEMPLATE = RunConfig(seed=5, domains=2, tasks_per_domain=4, episodes_per_task=0)
QUICK = EngineOptions(progress=False, sync=False)


def copy_log(src: Path, dest: Path) -> Path:
    """A private copy of the log at ``src`` (without its writer lock file)."""
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("writer.lock"))
    return dest


def _build(path: Path, config: RunConfig | dict[str, int], *stages: object) -> Path:
    async def main() -> None:
        async with open_run(str(path), config, QUICK) as ctx:
            for stage in stages:
                await stage(ctx)  # type: ignore[operator]

    trio.run(main)
    return path


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A log holding synthesized domains and kept tasks, and no episode yet (copy before writing)."""
    path = _build(tmp_path_factory.mktemp("template") / "log", TEMPLATE, stage1, stage2)
    with Log.open(path, readonly=True) as log:
        assert any(t.status == "kept" for t in project(log).tasks.values())
    return path


def roll_out(path: Path, episodes_per_task: int) -> Path:
    """Run the rollout stage on the log at ``path`` with ``episodes_per_task``; returns ``path``."""
    return _build(path, {"episodes_per_task": episodes_per_task}, rollouts)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def synth8(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Stage 1 of an 8-domain run, seed 1 (read-only)."""
    return _build(tmp_path_factory.mktemp("synth8") / "log", RunConfig(seed=1, domains=8), stage1)

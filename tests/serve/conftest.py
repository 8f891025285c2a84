"""The suite's template run (sim LLM, real LMDB, real sandbox), rolled out once, whose kept tasks are served."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import msgspec

from scaleenv.runner import EngineOptions
from tests.conftest import TEMPLATE, copy_log, roll_out

SERVE_RUN = msgspec.structs.replace(TEMPLATE, episodes_per_task=1)
OPTIONS = EngineOptions(progress=False, sync=False)


@pytest.fixture(scope="session")
def base_run(template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return roll_out(copy_log(template, tmp_path_factory.mktemp("serve_base") / "log"), SERVE_RUN.episodes_per_task)


@pytest.fixture
def run_log(base_run: Path, tmp_path: Path) -> Path:
    """A private copy of the run (serving appends to it)."""
    path = tmp_path / "log"
    shutil.copytree(base_run, path, ignore=shutil.ignore_patterns("writer.lock"))
    return path

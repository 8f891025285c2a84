"""A small real run (sim LLM, real LMDB, real sandbox) whose kept tasks are served."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from scaleenv.config import RunConfig
from scaleenv.runner import EngineOptions
from tests.pipeline.conftest import run_pipeline

SERVE_RUN = RunConfig(seed=11, domains=2, tasks_per_domain=5, episodes_per_task=1)
OPTIONS = EngineOptions(progress=False, sync=False)


@pytest.fixture(scope="session")
def base_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("serve_base") / "log"
    run_pipeline(path, SERVE_RUN)
    return path


@pytest.fixture
def run_log(base_run: Path, tmp_path: Path) -> Path:
    """A private copy of the run (serving appends to it)."""
    path = tmp_path / "log"
    shutil.copytree(base_run, path, ignore=shutil.ignore_patterns("writer.lock"))
    return path

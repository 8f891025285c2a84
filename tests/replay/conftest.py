"""Fixtures for the replay tests: real LMDB logs built from the golden dump and the shop run."""

from __future__ import annotations

import logging
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from scaleenv._cli import main
from tests.replay.goldens import EXPECTED, GOLDEN_LOG, STAGES, load_prefix
from tests.replay.shoplog import build_shop_log


@pytest.fixture(scope="session")
def golden_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The golden sim run (all stages) as a real LMDB log; copy it before writing."""
    expected = json.loads(EXPECTED.read_text())
    path = tmp_path_factory.mktemp("golden") / "run.lmdb"
    load_prefix(GOLDEN_LOG, expected[STAGES[-1]]["lines"], path)
    return path


@pytest.fixture(scope="session")
def shop_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("shop") / "run.lmdb"
    build_shop_log(path)
    return path


@pytest.fixture
def copy_of(tmp_path: Path) -> Callable[[Path], Path]:
    def copy(src: Path) -> Path:
        dest = tmp_path / f"copy-{src.parent.name}.lmdb"
        shutil.copytree(src, dest, ignore=shutil.ignore_patterns("writer.lock"))
        return dest

    return copy


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Run ``scaleenv ARGS`` in-process: (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


@pytest.fixture(autouse=True)
def _logging_back_to_silent():
    """In-process CLI calls configure the ``scaleenv`` loggers: undo it after each test."""
    yield
    root = logging.getLogger("scaleenv")
    root.handlers = [logging.NullHandler()]
    root.setLevel(logging.NOTSET)
    root.propagate = True

"""Fixtures for the store tests: real LMDB logs in tmp_path, test-only event types."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from store_testevents import TEST_EVENT_TYPES  # noqa: E402

from scaleenv._store import Codec, Log  # noqa: E402


@pytest.fixture
def codec() -> Codec:
    return Codec(TEST_EVENT_TYPES)


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "run.lmdb"


@pytest.fixture
def log(log_path: Path, codec: Codec):
    with Log.open(log_path, codec=codec) as lg:
        yield lg


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip this folder's ``slow`` tests unless a ``-m`` expression was given."""
    if config.getoption("markexpr"):
        return
    here = Path(__file__).parent
    skip = pytest.mark.skip(reason="slow: run with -m slow")
    for item in items:
        if "slow" in item.keywords and here in Path(item.fspath).parents:
            item.add_marker(skip)

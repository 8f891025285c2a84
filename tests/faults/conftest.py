"""Fault trials run real ``scaleenv`` processes, real LMDB logs and the real sandbox."""

from __future__ import annotations

from pathlib import Path

import pytest

from .runs import SMALL, Finished, reference

SEED = 3


@pytest.fixture(scope="session")
def small_ref(tmp_path_factory: pytest.TempPathFactory) -> Finished:
    """The uninterrupted SMALL run every resumed run must match."""
    return reference(tmp_path_factory.mktemp("ref"), SEED, SMALL)


@pytest.fixture(scope="session")
def finished_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished SMALL run's log (copy it before damaging it)."""
    from .runs import run_to_end

    path = tmp_path_factory.mktemp("done") / "run.lmdb"
    assert run_to_end(path, SEED, SMALL).code == 0
    return path

"""Fault trials run real ``scaleenv`` processes, real LMDB logs and the real sandbox."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import copy_log

from .runs import SMALL, Finished, reference

SEED = 3


@pytest.fixture(scope="session")
def small_ref(tmp_path_factory: pytest.TempPathFactory) -> Finished:
    """The uninterrupted SMALL run every resumed run must match; its log is kept (``.log``)
    as the suite's one finished SMALL run: copy it, never write to it."""
    return reference(tmp_path_factory.mktemp("ref"), SEED, SMALL, keep=True)


@pytest.fixture(scope="session")
def finished_log(small_ref: Finished, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished SMALL run's log, a copy of the reference run's (not a second run); copy it
    again before damaging it."""
    assert small_ref.log is not None
    return copy_log(small_ref.log, tmp_path_factory.mktemp("done") / "run.lmdb")

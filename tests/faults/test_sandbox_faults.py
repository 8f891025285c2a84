"""Sandbox workers SIGKILLed under a running ``scaleenv run`` (mid-request and while
starting, at drawn requests and starts, so every planned kill lands): the run still
finishes, its log intact, no worker left behind."""

from __future__ import annotations

import random

import pytest

from .conftest import SEED
from .runs import SMALL
from .workerkill import worker_kill_trial


@pytest.mark.parametrize("seed", [1])
def test_run_survives_worker_kills(tmp_path, seed: int) -> None:
    t = worker_kill_trial(tmp_path, SEED, SMALL, random.Random(seed))
    assert t.code == 0, t.stderr
    assert t.kills == t.planned == 4, t
    assert t.intact and t.cli_check == 0 and t.orphans == 0


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(2, 6))
def test_run_survives_worker_kills_long(tmp_path, seed: int) -> None:
    test_run_survives_worker_kills(tmp_path, seed)

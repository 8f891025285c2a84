"""SIGKILL ``scaleenv run`` at random moments: the log stays a contiguous, undamaged
prefix, nothing committed changes, no sandbox worker is orphaned, and running the same
command again ends with the digest of an uninterrupted run."""

from __future__ import annotations

import random

import pytest

from .conftest import SEED
from .runs import SMALL, kill_trial


def _trials(tmp_path, ref, n: int, seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(n):
        t = kill_trial(tmp_path, SEED, SMALL, ref, rng)
        assert t.shapes_intact, t
        assert t.cli_check == 0, t
        assert t.events_lost == 0, t
        assert t.orphans == 0, t
        assert t.resumed.code == 0, t.resumed.stderr
        assert t.identical(ref), (t.stages, t.resumed.digest, ref.digest)


def test_sigkill_then_resume(tmp_path, small_ref) -> None:
    _trials(tmp_path, small_ref, 3, seed=7)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(4))
def test_sigkill_then_resume_long(tmp_path, small_ref, seed: int) -> None:
    _trials(tmp_path, small_ref, 15, seed=seed)

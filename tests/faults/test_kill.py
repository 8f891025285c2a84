"""SIGKILL ``scaleenv run`` at chosen events (inside a write transaction or just after a
commit, in every stage, again while it resumes): the log stays a contiguous, undamaged
prefix, nothing committed changes, no sandbox worker is orphaned, and running the same
command again ends with the digest of an uninterrupted run. Every kill is placed by
event count, so each trial kills what it planned whatever the machine's load."""

from __future__ import annotations

import random

import pytest

from .conftest import SEED
from .runs import PHASES, SMALL, Finished, kill_at, kill_trial, run_to_end


def _assert_survived(t, ref: Finished) -> None:
    assert t.landed, t.kills
    assert t.shapes_intact, t
    assert t.cli_check == 0, t
    assert t.events_lost == 0, t
    assert t.orphans == 0, t
    assert t.resumed.code == 0, t.resumed.stderr
    assert t.identical(ref), (t.stages, t.resumed.digest, ref.digest)


def _trials(tmp_path, ref: Finished, n: int, seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(n):
        _assert_survived(kill_trial(tmp_path, SEED, SMALL, ref, rng), ref)


@pytest.mark.parametrize("phase", PHASES)
def test_a_kill_in_each_stage_then_resume(tmp_path, small_ref: Finished, phase: str) -> None:
    """One run killed three times, at the middle event of each stage, in one phase (past
    what the log already holds, so that each kill has something left to land on)."""
    log = tmp_path / "run.lmdb"
    last = 0
    for stage in ("synth", "tasks", "rollout"):
        lo, hi = small_ref.stages[stage]
        kill = kill_at(log, SEED, SMALL, max((lo + hi) // 2, last + 1), phase)
        assert kill.landed and not kill.orphans, kill
        last = kill.last_seq
    resumed = run_to_end(log, SEED, SMALL)
    assert resumed.code == 0, resumed.stderr
    assert (resumed.digest, resumed.events) == (small_ref.digest, small_ref.events)


def test_sigkill_then_resume(tmp_path, small_ref) -> None:
    _trials(tmp_path, small_ref, 3, seed=7)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(4))
def test_sigkill_then_resume_long(tmp_path, small_ref, seed: int) -> None:
    _trials(tmp_path, small_ref, 15, seed=seed)

"""A run checkpoints its projection (each stage's start, every N rollouts, its end) and a
resume starts from the newest checkpoint, folding nothing when the run had finished."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio

from scaleenv._replay import checkpoint
from scaleenv._replay.checkpoint import projected
from scaleenv._replay.digests import projection_digests
from scaleenv._replay.projection import fold
from scaleenv._runner import open_run, project, rollouts, run, summary
from scaleenv._store.log import Log
from scaleenv._store.record import run_digest
from tests.conftest import QUICK, copy_log

from .conftest import SMALL


def _roll_out(path: Path, every: int) -> dict[str, object]:
    async def main() -> dict[str, object]:
        async with open_run(str(path), {"episodes_per_task": SMALL.episodes_per_task},
                            msgspec.structs.replace(QUICK, checkpoint_every=every)) as ctx:
            await rollouts(ctx)
            return summary(project(ctx.log))

    return trio.run(main)


def _first_episode_seq(lg: Log) -> int:
    return min(r.seq for r in lg.read() if r.stream.startswith("episode/"))


def test_rollouts_checkpoint_every_n_episodes_and_a_resume_folds_nothing(template: Path, tmp_path: Path) -> None:
    path = copy_log(template, tmp_path / "log")
    done = _roll_out(path, every=1)
    with Log.open(path, readonly=True) as lg:
        seqs, last = lg.checkpoint_seqs(), lg.last_seq()
        assert seqs[-1] == last
        assert seqs[0] > _first_episode_seq(lg), "no checkpoint was stored between rollouts"
        p = projected(lg)
        assert (p.checkpoint, p.folded) == (last, 0)
        cold = fold(lg.read())
        assert projection_digests(p.view) == projection_digests(cold)
        assert p.view.stream_digests() == cold.stream_digests()
    assert _roll_out(path, every=1) == done  # the resume: nothing left, nothing appended, the same figures
    with Log.open(path, readonly=True) as lg:
        assert lg.last_seq() == last


def test_without_interval_checkpoints_only_stage_boundaries_are_checkpointed(template: Path, tmp_path: Path) -> None:
    path = copy_log(template, tmp_path / "log")
    _roll_out(path, every=0)
    with Log.open(path, readonly=True) as lg:
        seqs = lg.checkpoint_seqs()
        assert seqs[-1] == lg.last_seq() and seqs[0] < _first_episode_seq(lg)


def test_a_no_op_run_loads_the_checkpoint_once_for_every_stage_and_gives_the_same_digests(
        template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Stage 1, stage 2, the rollouts and the summary of a resume with nothing left share
    one load of the checkpoint the run ended with (the log does not grow between them)."""
    path = copy_log(template, tmp_path / "log")
    done = _roll_out(path, every=0)
    loads: list[int] = []
    validate = checkpoint.validate

    def counted(event_log: Log, seq: int, value: bytes | None, last_seq: int) -> Any:
        loads.append(seq)
        return validate(event_log, seq, value, last_seq)

    monkeypatch.setattr(checkpoint, "validate", counted)
    again = run(str(path), {}, msgspec.structs.replace(QUICK, checkpoint_every=0))
    with Log.open(path, readonly=True) as lg:
        assert loads == [lg.last_seq()], "each stage loaded the checkpoint again"
        cold = fold(lg.read())
    assert again["digest"] == done["digest"] == run_digest(cold.stream_digests())
    assert again == done

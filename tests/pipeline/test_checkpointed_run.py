"""A run checkpoints its projection (each stage's start, every N rollouts, its end) and a
resume starts from the newest checkpoint, folding nothing when the run had finished."""

from __future__ import annotations

from pathlib import Path

import msgspec
import trio

from scaleenv._replay.checkpoint import projected
from scaleenv._replay.digests import projection_digests
from scaleenv._replay.projection import fold
from scaleenv._runner import open_run, project, rollouts, summary
from scaleenv._store.log import Log
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

"""The planners' lean view (checkpoint.projected(lean=True)): a reader's holds no database
state or user messages of a finished episode and otherwise equals the cold fold; a writer's
folds in segments, each checkpointed and read back, so it holds no episode in memory."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import trio

from scaleenv._replay import checkpoint, stored
from scaleenv._replay.checkpoint import projected
from scaleenv._replay.digests import projection_digests
from scaleenv._replay.episode import EpisodeSummary
from scaleenv._replay.logcopy import append_all, read_jsonl
from scaleenv._replay.partial import fold_log
from scaleenv._replay.projection import fold
from scaleenv._replay.stored import StoredEpisodes, left_to_run
from scaleenv._runner import project, summary
from scaleenv._store.log import Log
from tests.replay.goldens import golden_log, golden_points

RECORDS = list(read_jsonl(golden_log()))
STAGE2_END = golden_points()["kept2"]
"""The golden run's last stage-2 record: its four episodes come after it."""


def _log(path: Path, checkpoint_at: int) -> Path:
    """The golden run, with a checkpoint at ``checkpoint_at`` (0: none)."""
    with Log.open(path, sync=False) as lg:
        trio.run(append_all, lg, itertools.islice(iter(RECORDS), 0, checkpoint_at))
        if checkpoint_at:
            projected(lg)
        trio.run(append_all, lg, itertools.islice(iter(RECORDS), checkpoint_at, None))
    return path


def _not_episodes(digests: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in digests.items() if not k.startswith("episode/")}


@pytest.mark.parametrize("checkpoint_at", [0, STAGE2_END, golden_points()["running2"]])
def test_a_readers_lean_view_keeps_no_state_or_messages_of_a_finished_episode(tmp_path: Path, checkpoint_at: int) -> None:
    path = _log(tmp_path / "log.lmdb", checkpoint_at)
    with Log.open(path, readonly=True) as lg:
        view = project(lg, lean=True)
        cold = fold(lg.read())
        assert view.lean and not view.digested
        finished = [eid for eid, e in cold.episodes.items() if e.reward is not None]
        assert len(finished) == 4
        # what the view holds in memory: every episode folded (a checkpoint's others stay on disk)
        held = view.episodes.live if isinstance(view.episodes, StoredEpisodes) else view.episodes
        after = {r.stream[len("episode/"):] for r in lg.read(from_seq=checkpoint_at + 1) if r.stream.startswith("episode/")}
        assert set(held) == after
        for eid in finished:
            if eid in held:
                ep = held[eid]
                assert ep.state is None and ep.user_messages == [] and ep.system_prompt == ""
                assert ep.rewards == cold.episodes[eid].rewards and ep.ended == cold.episodes[eid].ended
        assert _not_episodes(projection_digests(view)) == _not_episodes(projection_digests(cold))
        for attempts in range(4):
            full = fold_log(lg)
            assert left_to_run(view.tasks, view.episodes, attempts) == left_to_run(full.tasks, full.episodes, attempts)
        with pytest.raises(ValueError, match="lean"):
            checkpoint.encode(lg, view, lg.last_seq())
        with pytest.raises(ValueError, match="lean"):
            fold_log(lg, view, from_seq=lg.last_seq() + 1)


def test_an_unfinished_episode_keeps_its_state_in_a_lean_view(tmp_path: Path) -> None:
    """An episode still running (no reward yet) is kept whole: a resume may need it."""
    path = tmp_path / "log.lmdb"
    with Log.open(path, sync=False) as lg:
        trio.run(append_all, lg, itertools.islice(iter(RECORDS), 0, golden_points()["running2"]))  # t000/g1 running
    with Log.open(path, readonly=True) as lg:
        view = project(lg, lean=True)
        cold = fold(lg.read())
    running = view.episodes["d00/t000/g1"]
    assert running.reward is None and running.state == cold.episodes["d00/t000/g1"].state
    assert running.user_messages == cold.episodes["d00/t000/g1"].user_messages
    assert view.episodes["d00/t000/g0"].state is None


def test_a_writers_lean_view_is_folded_in_checkpointed_segments(tmp_path: Path) -> None:
    path = _log(tmp_path / "log.lmdb", STAGE2_END)
    with Log.open(path) as lg:
        p = projected(lg, lean=True, segment=100)
        assert (p.checkpoint, p.folded) == (STAGE2_END, len(RECORDS) - STAGE2_END)
        last_segment = STAGE2_END + (len(RECORDS) - STAGE2_END - 1) // 100 * 100
        assert lg.checkpoint_seqs() == [last_segment, len(RECORDS)]  # one per segment, the newest kept
        view = p.view
        assert not view.lean and view.digested
        episodes = view.episodes
        assert isinstance(episodes, StoredEpisodes) and not episodes.live  # read back: nothing held
        assert episodes.progress is not None and episodes.progress.floor == 2
        cold = fold(lg.read())
        assert projection_digests(view) == projection_digests(cold)
        assert view.stream_digests() == cold.stream_digests()


def test_the_run_summary_reads_a_checkpoints_episodes_without_keeping_or_rebuilding_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The end-of-run summary reads each stored episode once, without its database state
    (none is rebuilt from its task's, none kept in the view), and gives the cold fold's figures."""
    path = _log(tmp_path / "log.lmdb", len(RECORDS))
    with Log.open(path, readonly=True) as lg:
        cold = summary(fold(lg.read()))
        view = project(lg)
        rebuilt: list[str] = []
        unpack = stored.unpack_state

        def counted(tasks: object, ep: EpisodeSummary, packed: object) -> object:
            rebuilt.append(ep.episode_id)
            return unpack(tasks, ep, packed)  # type: ignore[arg-type]

        monkeypatch.setattr(stored, "unpack_state", counted)
        assert summary(view) == cold
        assert isinstance(view.episodes, StoredEpisodes) and not view.episodes.live and rebuilt == []
        with pytest.raises(ValueError, match="lean"):
            summary(fold_log(lg, lean=True))

"""What is left to run, from a checkpoint's run progress (scaleenv._replay.stored.RunProgress):
a finished run's resume asks about no episode and looks at no task; a run with lagging
tasks looks at those only; the answer always equals the one worked out from the cold
fold; a progress that does not add up is ignored with a warning, and a checkpoint
written before it existed is still used (asked per task)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from scaleenv._replay import checkpoint
from scaleenv._replay.checkpoint import load_newest, projected
from scaleenv._replay.logcopy import append_all, read_jsonl
from scaleenv._replay.partial import fold_log
from scaleenv._replay.projection import RunView
from scaleenv._replay.stored import RunProgress, StoredEpisodes, left_to_run, run_progress
from scaleenv._runner import rollout_work
from scaleenv._store.log import Log
from tests.replay.goldens import golden_log, golden_points
from tests.replay.test_snapshots import captured

RECORDS = list(read_jsonl(golden_log()))
ATTEMPTS = 2
"""The golden run's episodes per task (two kept tasks, rolled out one episode after another)."""
AT = golden_points()
CUTS = tuple(AT[k] for k in ("kept1", "kept2", "running", "ep1", "running2", "ep2", "ep3", "ep4"))
"""Points of the golden run: one task kept; both kept, none rolled out; g0 of t000 running;
t000 one ahead; t000's g1 running; t000 done, t001 not started; t001 one behind; the end."""


def _log(path: Path, stop: int, *, checkpoint_at: int | None = None) -> Path:
    """The golden run's first ``stop`` records, with a checkpoint at ``checkpoint_at`` (default: ``stop``)."""
    at = stop if checkpoint_at is None else checkpoint_at
    with Log.open(path, sync=False) as lg:
        trio.run(append_all, lg, itertools.islice(iter(RECORDS), 0, at))
        projected(lg)
        trio.run(append_all, lg, itertools.islice(iter(RECORDS), at, stop))
    return path


def _expected(lg: Log, attempts: int) -> list[tuple[str, int]]:
    """What is left, from the cold fold: every attempt of a kept task without a reward."""
    cold = fold_log(lg)
    return [(tid, g) for tid in sorted(cold.tasks) if cold.tasks[tid].status == "kept" for g in range(attempts)
            if getattr(cold.episodes.get(f"{tid}/g{g}"), "reward", None) is None]


class CountedTasks(dict[str, Any]):
    """A view's tasks, counting every look at them (by id or by walking them)."""

    looks = 0

    def __getitem__(self, key: str) -> Any:
        CountedTasks.looks += 1
        return super().__getitem__(key)

    def __iter__(self) -> Iterator[str]:
        CountedTasks.looks += len(self)
        return super().__iter__()


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The episodes a checkpoint's episodes are asked about (whether each finished)."""
    ids: list[str] = []
    finished = StoredEpisodes.finished

    def counted(self: StoredEpisodes, eid: str) -> bool:
        ids.append(eid)
        return finished(self, eid)

    monkeypatch.setattr(StoredEpisodes, "finished", counted)
    CountedTasks.looks = 0
    return ids


def _counted(view: RunView) -> RunView:
    view.tasks = CountedTasks(view.tasks)
    return view


def test_a_finished_run_knows_nothing_is_left_without_asking_per_task_or_episode(tmp_path: Path, asked: list[str]) -> None:
    path = _log(tmp_path / "log.lmdb", len(RECORDS))
    with Log.open(path) as lg:
        p = projected(lg)
        assert p.folded == 0
        progress = p.view.episodes.progress  # type: ignore[union-attr]
        assert progress == RunProgress(kept=2, ceiling=ATTEMPTS, lagging={})
        view = _counted(p.view)
        for attempts in range(ATTEMPTS + 1):
            assert rollout_work(view, attempts) == []
        assert asked == [] and CountedTasks.looks == 0
        # one more attempt per task: each task looked at, and only its next attempt asked about
        more = rollout_work(view, ATTEMPTS + 1)
        assert [(t.task_id, g) for _, t, g in more] == [("d00/t000", 2), ("d00/t001", 2)]
        assert sorted(asked) == ["d00/t000/g2", "d00/t001/g2"]


@pytest.mark.parametrize("cut", CUTS)
def test_what_is_left_equals_the_cold_folds_answer_at_every_point(tmp_path: Path, cut: int, asked: list[str]) -> None:
    path = _log(tmp_path / "log.lmdb", cut)
    with Log.open(path, readonly=True) as lg:
        p = projected(lg)
        assert (p.checkpoint, p.folded) == (cut, 0)
        episodes = p.view.episodes
        assert isinstance(episodes, StoredEpisodes) and episodes.progress is not None
        assert episodes.progress == run_progress(p.view.tasks, episodes.finished_prefix)
        tasks = _counted(p.view).tasks
        for attempts in range(ATTEMPTS + 2):
            expected = _expected(lg, attempts)
            asked.clear()
            CountedTasks.looks = 0
            assert left_to_run(tasks, episodes, attempts) == expected
            if attempts <= episodes.progress.floor:
                assert asked == [] and CountedTasks.looks == 0
            elif attempts <= episodes.progress.ceiling:  # only the lagging tasks are looked at
                assert {eid.rsplit("/", 1)[0] for eid in asked} <= set(episodes.progress.lagging)
            assert not episodes.live, "asking what is left decoded an episode"


@pytest.mark.parametrize(("at", "stop"), [(AT["kept1"], AT["ep4"]), (AT["ep1"], AT["ep3"]), (AT["ep2"], AT["ep4"])])
def test_records_folded_after_the_checkpoint_are_not_answered_from_its_progress(tmp_path: Path, at: int, stop: int) -> None:
    """Tasks kept and episodes finished after the checkpoint count: its progress is dropped
    when the fold goes past it (a reader), or replaced by the new checkpoint's (a writer)."""
    path = _log(tmp_path / "log.lmdb", stop, checkpoint_at=at)
    with Log.open(path, readonly=True) as lg:
        p = projected(lg)
        assert (p.checkpoint, p.folded) == (at, stop - at)
        assert p.view.episodes.progress is None  # type: ignore[union-attr]
        for attempts in range(ATTEMPTS + 2):
            assert [(t.task_id, g) for _, t, g in rollout_work(p.view, attempts)] == _expected(lg, attempts)
    with Log.open(path) as lg:
        p = projected(lg)
        assert p.folded == stop - at and lg.checkpoint_seqs()[-1] == stop
        episodes = p.view.episodes
        assert isinstance(episodes, StoredEpisodes)
        assert episodes.progress == run_progress(p.view.tasks, finished_prefix=_prefixes(lg))
        for attempts in range(ATTEMPTS + 2):
            assert [(t.task_id, g) for _, t, g in rollout_work(p.view, attempts)] == _expected(lg, attempts)


def _prefixes(lg: Log) -> dict[str, int]:
    cold = fold_log(lg)
    out = {}
    for tid in cold.tasks:
        g = 0
        while getattr(cold.episodes.get(f"{tid}/g{g}"), "reward", None) is not None:
            g += 1
        if g:
            out[tid] = g
    return out


_resealed = checkpoint.resealed


@pytest.mark.parametrize(("cut", "progress", "why"), [
    (AT["ep4"], RunProgress(kept=2, ceiling=3, lagging={}), "it counts 6 finished attempts, the prefixes 4"),
    (AT["ep4"], RunProgress(kept=2, ceiling=2, lagging={"d00/t001": 1}),
     "lagging task 'd00/t001' at 1 is not a kept task with 1 < 2 attempts finished"),
    (AT["ep2"], RunProgress(kept=2, ceiling=2, lagging={}), "it counts 4 finished attempts, the prefixes 2"),
    (AT["ep2"], RunProgress(kept=3, ceiling=2, lagging={"d00/t001": 0}), "it counts 3 kept tasks (1 lagging) of 2"),
])
def test_a_progress_that_does_not_add_up_is_ignored_with_a_warning(tmp_path: Path, cut: int, progress: RunProgress,
                                                                   why: str, asked: list[str]) -> None:
    """A checkpoint whose progress would say less is left than there is (a summary written
    by faulty code; the checksum holds) is still used, its progress is not: what is left
    is then asked per task, and is right."""
    path = _log(tmp_path / "log.lmdb", cut)
    with Log.open(path) as lg:
        lg.put_checkpoint(cut, _resealed(lg.get_checkpoint(cut), progress=progress))  # type: ignore[arg-type]
        with captured() as logs:
            found = load_newest(lg)
        assert [e["event"] for e in logs] == [
            f"run progress of the projection checkpoint at seq {cut} of {path} ignored: {why}; what is left is asked per task"]
        assert found is not None and found[1] == cut
        view = found[0]
        assert view.episodes.progress is None  # type: ignore[union-attr]
        for attempts in range(ATTEMPTS + 2):
            assert left_to_run(view.tasks, view.episodes, attempts) == _expected(lg, attempts)


def test_a_checkpoint_written_before_run_progress_existed_is_used_and_asked_per_task(tmp_path: Path, asked: list[str]) -> None:
    path = _log(tmp_path / "log.lmdb", len(RECORDS))
    with Log.open(path) as lg:
        seq = lg.last_seq()
        lg.put_checkpoint(seq, _resealed(lg.get_checkpoint(seq), progress=None))  # type: ignore[arg-type]
        with captured() as logs:
            p = checkpoint.projected(lg)
        assert not logs and (p.checkpoint, p.folded) == (seq, 0)
        assert p.view.episodes.progress is None  # type: ignore[union-attr]
        assert rollout_work(p.view, ATTEMPTS) == []
        assert asked == []  # the finished prefixes still answer: no episode asked about
        assert rollout_work(p.view, ATTEMPTS + 1) != []

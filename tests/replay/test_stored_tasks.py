"""A checkpoint's tasks are stored without their database states, which are read from the
task's stream when asked for (scaleenv._replay.stored_tasks): loading reads none, every
field of every task equals the cold fold's, also when a fold continues past the
checkpoint between a task's events, and a view outliving its log still answers. A
command's stages share one load of the checkpoint (scaleenv._replay.checkpoint._Newest)
without one stage's fold reaching another's view."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import attrs
import msgspec
import pytest
import trio

from scaleenv._replay import checkpoint
from scaleenv._replay.checkpoint import projected
from scaleenv._replay.digests import projection_digests
from scaleenv._replay.logcopy import append_all, read_jsonl
from scaleenv._replay.partial import fold_log
from scaleenv._replay.projection import RunView, TaskView, fold
from scaleenv._replay.stored_tasks import StoredTask, TaskSource
from scaleenv._store.events.tasks import GoldenChainExecuted, TaskInstantiated
from scaleenv._store.errors import LogError
from scaleenv._store.log import Log
from tests.replay.goldens import golden_log

RECORDS = list(read_jsonl(golden_log()))
STATE_EVENTS = [i + 1 for i, r in enumerate(RECORDS) if isinstance(r.event, TaskInstantiated | GoldenChainExecuted)]
CUTS = sorted({s + d for s in STATE_EVENTS for d in (-1, 0, 1)} | {len(RECORDS)})
"""Checkpoints just before, at and just after each record that sets a task's states."""


def _append(path: Path, start: int, stop: int) -> None:
    with Log.open(path, sync=False) as lg:
        trio.run(append_all, lg, itertools.islice(iter(RECORDS), start, stop))


def _checkpointed(path: Path, cut: int) -> Path:
    """The golden run's first ``cut`` records with a checkpoint there, then the rest."""
    _append(path, 0, cut)
    with Log.open(path) as lg:
        checkpoint.save(lg, fold_log(lg, digests=True), cut)
    _append(path, cut, len(RECORDS))
    return path


def _source(view: RunView) -> TaskSource:
    task = next(iter(view.tasks.values()))
    assert isinstance(task, StoredTask)
    return task._source  # type: ignore[return-value]


def _same_tasks(got: dict[str, TaskView], want: dict[str, TaskView]) -> None:
    assert sorted(got) == sorted(want)
    for tid, task in want.items():
        for f in attrs.fields(TaskView):
            assert getattr(got[tid], f.name) == getattr(task, f.name), f"{tid}.{f.name}"
        assert got[tid] == task and task == got[tid]


@pytest.mark.parametrize("cut", CUTS)
def test_a_stored_task_equals_the_cold_folds_field_for_field(tmp_path: Path, cut: int) -> None:
    path = _checkpointed(tmp_path / "log.lmdb", cut)
    with Log.open(path, readonly=True) as lg:
        view, why = checkpoint.validate(lg, cut, lg.get_checkpoint(cut), lg.last_seq())
        assert why == "" and view is not None
        source = _source(view)
        assert source.reads == 0, "loading a checkpoint read a task's states"
        assert [t.status for t in view.tasks.values()] and source.reads == 0  # the other fields are at hand
        cold = fold(lg.read(to_seq=cut))
        assert sorted(t for t, task in view.tasks.items() if task._golden_raw is not None) == \
            sorted(t for t, task in cold.tasks.items() if task.golden is not None), "a golden chain was decoded at load"
        _same_tasks(view.tasks, cold.tasks)
        assert not [t for t in view.tasks.values() if t._golden_raw is not None]
        with_states = sum(t.initial_state is not None or t.expected_final is not None for t in view.tasks.values())
        assert source.reads == with_states, "a task without states was read, or one was read twice"


@pytest.mark.parametrize("cut", CUTS)
def test_a_fold_continued_past_the_checkpoint_equals_the_cold_fold(tmp_path: Path, cut: int) -> None:
    """The fold after the checkpoint sets a task's states (a later TaskInstantiated) or
    reads them (a later GoldenChainExecuted, an episode starting): the result is the cold fold's."""
    path = _checkpointed(tmp_path / "log.lmdb", cut)
    with Log.open(path, readonly=True) as lg:
        view, _ = checkpoint.validate(lg, cut, lg.get_checkpoint(cut), lg.last_seq())
        assert view is not None
        view = fold_log(lg, view, from_seq=cut + 1, digests=True)
        cold = fold_log(lg, digests=True)
        _same_tasks(view.tasks, cold.tasks)
        assert projection_digests(view) == projection_digests(cold)
        assert view.stream_digests() == cold.stream_digests()


def test_a_view_outliving_its_log_reads_nothing_at_close_and_its_states_afterwards(tmp_path: Path) -> None:
    """Closing the log reads no state (a view kept alive by a traceback adds nothing to an
    exit); a state asked for afterwards is read from the log opened again read-only, or
    through the log of this process open at that path by then (never a second LMDB env)."""
    path = _checkpointed(tmp_path / "log.lmdb", len(RECORDS))
    with Log.open(path, readonly=True) as lg:
        view, _ = checkpoint.validate(lg, len(RECORDS), lg.get_checkpoint(len(RECORDS)), lg.last_seq())
        assert view is not None and _source(view).reads == 0
        cold = fold(lg.read())
    source = _source(view)
    assert source.reads == 0  # closing read nothing
    tasks = list(view.tasks)
    first = view.tasks[tasks[0]]
    with Log.open(path, readonly=True) as again:
        assert Log.open_at(path) is again
        assert first.initial_state == cold.tasks[tasks[0]].initial_state
        assert (source.reads, source.reopened) == (1, 0)  # through the log open at that path
    assert Log.open_at(path) is None
    _same_tasks(view.tasks, cold.tasks)  # the others: from the log opened again for each read
    assert source.reopened == source.reads - 1 > 0


def test_a_state_asked_for_once_its_log_is_gone_is_one_clear_error(tmp_path: Path) -> None:
    path = _checkpointed(tmp_path / "log.lmdb", len(RECORDS))
    with Log.open(path, readonly=True) as lg:
        view, _ = checkpoint.validate(lg, len(RECORDS), lg.get_checkpoint(len(RECORDS)), lg.last_seq())
        assert view is not None
    shutil.rmtree(path)
    task = next(t for t in view.tasks.values() if _source(view) is not None and t._pending)  # type: ignore[attr-defined]
    with pytest.raises(LogError, match=r"closed before the states of task .* were read, and they cannot be read"):
        task.initial_state


def test_a_checkpoint_holds_no_task_state_but_which_it_has_and_golden_chains_as_bytes(tmp_path: Path) -> None:
    path = _checkpointed(tmp_path / "log.lmdb", len(RECORDS))
    with Log.open(path, readonly=True) as lg:
        value = lg.get_checkpoint(len(RECORDS)) or b""
        stored = msgspec.msgpack.decode(value[16:])
        cold = fold(lg.read())
    assert sorted(stored["tasks"]) == sorted(cold.tasks)
    assert not [k for t in stored["tasks"].values() for k in t if k in ("initial_state", "expected_final")]
    assert not [k for t in stored["tasks"].values() for k in t if k == "golden"]
    assert {tid: msgspec.msgpack.decode(msgspec.msgpack.encode(g), type=GoldenChainExecuted)
            for tid, g in stored["goldens"].items()} == \
        {tid: t.golden for tid, t in cold.tasks.items() if t.golden is not None}
    assert stored["task_states"] == {tid: (t.initial_state is not None) | (t.expected_final is not None) << 1
                                     for tid, t in cold.tasks.items() if t.initial_state or t.expected_final}


def test_the_stages_of_a_command_share_one_load_and_a_fold_reaches_no_other_view(tmp_path: Path) -> None:
    path = tmp_path / "log.lmdb"
    cut = STATE_EVENTS[-1]
    _append(path, 0, cut)
    with Log.open(path) as lg:
        assert projected(lg).folded == cut
        first = projected(lg)
        assert (first.checkpoint, first.folded) == (cut, 0)
        again = projected(lg, lean=True)
        assert again.view is first.view, "the log did not grow: the loaded checkpoint is shared"
        before = projection_digests(first.view), first.view.stream_digests()
        trio.run(append_all, lg, RECORDS[cut:])
        grown = projected(lg)
        assert grown.view is not first.view and (grown.checkpoint, grown.folded) == (cut, len(RECORDS) - cut)
        assert (projection_digests(first.view), first.view.stream_digests()) == before, "a later fold changed a view held"
        cold = fold_log(lg, digests=True)
        assert projection_digests(grown.view) == projection_digests(cold)
        shared = projected(lg)
        assert shared.view is not grown.view and shared.folded == 0  # the checkpoint written, loaded once more
        assert projected(lg).view is shared.view
        fold_log(lg, shared.view, from_seq=1, to_seq=1, digests=True)  # a reader folding into its view ...
        assert projected(lg).view is not shared.view  # ... keeps it to itself
        assert projection_digests(projected(lg).view) == projection_digests(cold)

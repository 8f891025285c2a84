"""Projection checkpoints: a fold from a valid checkpoint equals a cold fold; a damaged,
stale or older-format checkpoint is ignored with a one-line warning, never trusted."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import pytest
import trio

from scaleenv._replay import checkpoint
from scaleenv._replay.checkpoint import load_newest, projected
from scaleenv._replay.digests import projection_digests
from scaleenv._replay.logcopy import append_all, read_jsonl
from scaleenv._replay.projection import RunView, fold
from scaleenv._store.log import Log
from tests.replay.goldens import STAGES, expected_path, golden_log
from tests.replay.test_snapshots import captured

EXPECT = json.loads(expected_path().read_text())
LINES = [EXPECT[stage]["lines"] for stage in STAGES]  # where each stage of the golden run ends


def _append(path: Path, start: int, stop: int) -> None:
    with Log.open(path, sync=False) as lg:
        trio.run(append_all, lg, itertools.islice(read_jsonl(golden_log()), start, stop))


def _same(a: RunView, b: RunView) -> None:
    assert projection_digests(a) == projection_digests(b)
    assert a.stream_digests() == b.stream_digests()
    assert (a.events, a.llm_calls, a.llm_invalid, a.types) == (b.events, b.llm_calls, b.llm_invalid, b.types)


def _warnings(logs: list[dict[str, object]]) -> list[str]:
    return [str(e["event"]) for e in logs if "checkpoint" in str(e.get("event"))]


@pytest.fixture
def staged(tmp_path: Path) -> Path:
    """The golden run appended stage by stage, ``project`` called (and checkpointing) after each."""
    path = tmp_path / "log.lmdb"
    start = 0
    for stop in LINES:
        _append(path, start, stop)
        with Log.open(path) as lg:
            p = projected(lg)
            assert p.checkpoint == start and p.folded == stop - start  # folded only what followed
        start = stop
    return path


def test_fold_from_a_checkpoint_equals_a_cold_fold_at_every_stage(staged: Path) -> None:
    with Log.open(staged, readonly=True) as lg:
        assert lg.checkpoint_seqs() == LINES[-checkpoint.KEEP:]
        for seq in lg.checkpoint_seqs():
            view, why = checkpoint.validate(lg, seq, lg.get_checkpoint(seq), lg.last_seq())
            assert why == "" and view is not None
            _same(view, fold(lg.read(to_seq=seq)))
            assert projection_digests(view) == EXPECT[STAGES[LINES.index(seq)]]["projection_digests"]
        with captured() as logs:
            p = projected(lg)
        assert (p.checkpoint, p.folded) == (LINES[-1], 0) and not _warnings(logs)
        _same(p.view, fold(lg.read()))


def test_a_damaged_checkpoint_is_ignored_and_the_older_one_used(staged: Path) -> None:
    with Log.open(staged) as lg:
        newest = lg.checkpoint_seqs()[-1]
        value = bytearray(lg.get_checkpoint(newest))  # type: ignore[arg-type]
        value[len(value) // 2] ^= 0xFF
        lg.put_checkpoint(newest, bytes(value))
        with captured() as logs:
            p = projected(lg, write=False)
        assert _warnings(logs) == [f"projection checkpoint at seq {newest} of {staged} ignored: damaged (checksum mismatch)"]
        assert p.checkpoint == LINES[-2] and p.folded == newest - LINES[-2]
        _same(p.view, fold(lg.read()))


def test_a_checkpoint_beyond_the_end_of_the_log_is_stale(staged: Path, tmp_path: Path) -> None:
    shorter = tmp_path / "shorter.lmdb"
    _append(shorter, 0, LINES[1])
    with Log.open(staged, readonly=True) as full:
        ahead = full.get_checkpoint(LINES[2])
    with Log.open(shorter) as lg:
        lg.put_checkpoint(LINES[2], ahead)  # type: ignore[arg-type]
        with captured() as logs:
            p = projected(lg, write=False)
        assert _warnings(logs) == [f"projection checkpoint at seq {LINES[2]} of {shorter} ignored: "
                                   f"stale: covers seq {LINES[2]} but the log ends at seq {LINES[1]}"]
        assert p.checkpoint == 0
        _same(p.view, fold(lg.read()))


def test_a_checkpoint_of_another_log_is_stale(staged: Path, tmp_path: Path) -> None:
    """Same length, another record at the seq it covers: a rewritten log."""
    other = tmp_path / "other.lmdb"
    with Log.open(other, sync=False) as lg:  # the tasks stage's records, then the synth stage's
        records = list(read_jsonl(golden_log()))
        trio.run(append_all, lg, records[LINES[0]:LINES[1]] + records[:LINES[0]])
    with Log.open(staged, readonly=True) as full:
        value = full.get_checkpoint(LINES[1])
    with Log.open(other) as lg:
        lg.put_checkpoint(LINES[1], value)  # type: ignore[arg-type]
        with captured() as logs:
            p = projected(lg, write=False)
        assert _warnings(logs) == [f"projection checkpoint at seq {LINES[1]} of {other} ignored: "
                                   f"stale: the log's record {LINES[1]} is not the one it folded"]
        assert p.checkpoint == 0
        _same(p.view, fold(lg.read()))


_resealed = checkpoint.resealed


@pytest.mark.parametrize(("changes", "reason"), [
    ({"format": 0}, f"format 0, this code reads format {checkpoint.CHECKPOINT_FORMAT}"),
    ({"fold_version": 0}, f"fold version 0, this code folds version {checkpoint.FOLD_VERSION}"),
    ({"events": 1}, "inconsistent: its stream digests do not give its run digest or event count"),
])
def test_an_older_format_or_inconsistent_checkpoint_is_ignored(staged: Path, changes: dict[str, object], reason: str) -> None:
    with Log.open(staged) as lg:
        for seq in lg.checkpoint_seqs():
            lg.put_checkpoint(seq, _resealed(lg.get_checkpoint(seq), **changes))  # type: ignore[arg-type]
        with captured() as logs:
            assert load_newest(lg) is None
        assert _warnings(logs) == [f"projection checkpoint at seq {seq} of {staged} ignored: {reason}"
                                   for seq in reversed(lg.checkpoint_seqs())]
        p = projected(lg)  # folds from the start, and replaces them with a valid one
        assert p.checkpoint == 0
        _same(p.view, fold(lg.read()))
        with captured() as logs:
            assert projected(lg).checkpoint == LINES[-1]
        assert not _warnings(logs)


def test_a_log_without_checkpoints_opens_and_folds(tmp_path: Path) -> None:
    """A log written before checkpoints existed has no checkpoints db: readers fold it cold and
    leave it as it is; a writable open adds the db on its first checkpoint."""
    path = tmp_path / "log.lmdb"
    _append(path, 0, LINES[0])
    with Log.open(path, readonly=True) as lg:
        assert lg.checkpoint_seqs() == []
        p = projected(lg)
        assert (p.checkpoint, p.folded) == (0, LINES[0]) and lg.checkpoint_seqs() == []
        assert projection_digests(p.view) == EXPECT[STAGES[0]]["projection_digests"]
    with Log.open(path) as lg:
        projected(lg)
        assert lg.checkpoint_seqs() == [LINES[0]]


def test_only_the_newest_checkpoints_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "log.lmdb"
    for k in range(1, 5):
        _append(path, k - 1, k)
        with Log.open(path) as lg:
            projected(lg)
    with Log.open(path, readonly=True) as lg:
        assert lg.checkpoint_seqs() == [3, 4]


def test_the_readme_snippet_runs_as_written(staged: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Reading big logs", 1)[1].split("\n## ", 1)[0]
    snippet = section.split("```python\n", 1)[1].split("```", 1)[0]
    shutil.copytree(staged, staged.parent / "run.lmdb", ignore=shutil.ignore_patterns("writer.lock"))
    monkeypatch.chdir(staged.parent)
    exec(compile(snippet, "README.md", "exec"), {})
    with Log.open(staged, readonly=True) as lg:
        view = fold(lg.read())
    assert capsys.readouterr().out.split() == [str(LINES[-1]), "0", str(len(view.episodes)),
                                               str(view.types["episode.tool"])]

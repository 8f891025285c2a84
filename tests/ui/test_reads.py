"""The browser view starts from the run's projection checkpoint and reads the streams each
page needs through the per-stream index, not the whole log: its index started from a
checkpoint (at the log's end, or with records after it) equals the one folded from the
first record, every ``/api`` answer is the same, and a record damaged in a stream no page
asked for (inside the checkpoint) changes no answer; only the census of the checkpointed
prefix, which reads each record's envelope for the commit-time chart, lists it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lmdb
import pytest
import trio

from scaleenv._replay.checkpoint import save
from scaleenv._replay.partial import fold_log
from scaleenv._store.keys import seq_key
from scaleenv._store.log import Log
from scaleenv._ui.app import UiApp
from scaleenv._ui.http import Request
from scaleenv._ui.index import UNREAD, Follower, RunIndex
from tests.ui.conftest import copy_log


def _checkpointed(src: Path, dest: Path, at: str) -> tuple[Path, int]:
    """A copy of the log whose newest checkpoint covers all its records (``at="end"``), or
    those up to the middle episode's end (``"mid-rollouts"``: the rest folded after it)."""
    path = copy_log(src, dest)
    with Log.open(path) as lg:
        ends = [r.seq for r in lg.read() if r.type == "episode.ended"]
        seq = lg.last_seq() if at == "end" else ends[len(ends) // 2]
        save(lg, fold_log(lg, to_seq=seq, digests=True), seq)
        assert lg.checkpoint_seqs()[-1] == seq
    return path, seq


def _cold(log: Log) -> RunIndex:
    index = RunIndex()
    index.catch_up(log)
    return index


def _started(log: Log, census: bool = True) -> RunIndex:
    index = RunIndex()
    assert index.start(log)
    index.catch_up(log)
    if census:
        while index.census(log, 101):
            pass
    return index


def _api(log: Log, index: RunIndex, paths: list[str]) -> dict[str, Any]:
    app = UiApp(log, Follower(log, index))

    async def main() -> dict[str, Any]:
        out = {}
        for path in paths:
            route, _, qs = path.partition("?")
            query = dict(p.split("=", 1) for p in qs.split("&")) if qs else {}
            r = await app(Request("GET", route, query, {}))
            assert r.status == 200, (path, r.body[:300])
            out[path] = json.loads(r.body)
            if route == "/api/run":  # how many times the index moved: not what it holds
                out[path]["log"].pop("version")
        return out

    return trio.run(main)


def _paths(index: RunIndex) -> list[str]:
    task = next(t for t, row in index.tasks.items() if row.status == "kept" and index.episodes_by_task.get(t))
    episode = index.episodes_by_task[task][0]
    slot = index.tasks[task].slot
    tool = next(iter(index.synth.domains[slot].tools))
    return ["/api/run", "/api/domains", f"/api/domains/{slot}", "/api/tasks", "/api/tasks?status=kept&limit=3",
            f"/api/tasks/{task}", f"/api/tools/{slot}/{tool}", "/api/episodes", "/api/episodes?status=scored&offset=1",
            f"/api/episodes?task={task}", f"/api/episodes/{episode}", f"/api/episodes/{episode}?step=0"]


@pytest.mark.parametrize("at", ["end", "mid-rollouts"])
def test_started_from_the_checkpoint_the_index_and_every_answer_are_the_fold_s(
        ui_run: tuple[Path, dict[str, Any]], tmp_path: Path, at: str) -> None:
    path, seq = _checkpointed(ui_run[0], tmp_path / "log", at)
    with Log.open(path, readonly=True) as log:
        cold, started = _cold(log), _started(log)
        assert started.census_to == seq and started.census_seq == seq
        assert any(r.ended_ns == UNREAD for r in started.episodes.values())  # read when shown, not at start
        paths = _paths(cold)
        want, got = _api(log, cold, paths), _api(log, started, paths)
        started.read_times(started.episodes.values())
    for path in paths:
        assert got[path] == want[path], path
    for name in ("tasks", "episodes", "tasks_by_slot", "episodes_by_task", "episodes_by_slot", "stats", "streams",
                 "types", "throughput", "checks", "problems", "events", "seq", "unknown"):
        assert getattr(started, name) == getattr(cold, name), name
    assert list(started.episodes) == list(cold.episodes)  # the unfiltered list's order too


def _damage(path: Path, seq: int) -> None:
    env = lmdb.open(str(path), max_dbs=8, map_size=1 << 30)
    events = env.open_db(b"events")
    with env.begin(write=True) as txn:
        raw = bytearray(txn.get(seq_key(seq), db=events))
        raw[-3] ^= 0xFF  # one flipped byte in the body: the CRC no longer matches
        txn.put(seq_key(seq), bytes(raw), db=events)
    env.close()


def test_a_damaged_record_no_page_reads_changes_no_answer(ui_run: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    path, seq = _checkpointed(ui_run[0], tmp_path / "log", "end")
    with Log.open(path, readonly=True) as log:
        intact = _started(log)
        paths = _paths(intact)
        want = _api(log, intact, paths)
        task = next(p for p in paths if p.startswith("/api/tasks/")).split("/api/tasks/")[1]
        # a model call of another task's episode, folded into the checkpoint
        target = next(r.seq for r in log.read() if r.stream.startswith("episode/") and r.type == "llm.called"
                      and not r.stream.startswith(f"episode/{task}/") and r.seq <= seq)
    _damage(path, target)
    with Log.open(path, readonly=True) as log:
        started = _started(log, census=False)
        assert started.problems == []  # starting read no record of that stream
        got = _api(log, started, paths)
        assert got["/api/run"].pop("throughput")["series"] == {}  # the census draws it
        for p in paths:
            assert got[p] == ({k: v for k, v in want[p].items() if k != "throughput"} if p == "/api/run" else want[p]), p
        while started.census(log, 101):
            pass
        got = _api(log, started, paths)
    assert started.problems == [{"seq": target, "reason": "CRC mismatch"}]
    for p in paths:
        if p == "/api/run":  # the census lists the damaged record; its commit time is not known
            assert got[p]["problems"]["count"] == 1
            got[p]["problems"] = want[p]["problems"]
            # one event fewer: per-second rates over buckets of bucket_s seconds (which follows
            # how long the run took), each rounded to 0.01
            width = want[p]["throughput"]["bucket_s"]
            assert got[p]["throughput"]["bucket_s"] == width
            events = [run["throughput"]["series"]["events"] for run in (got[p], want[p])]
            assert abs((sum(events[1]) - sum(events[0])) * width - 1) <= 0.005 * width * len(events[0])
            got[p]["throughput"] = want[p]["throughput"]
        assert got[p] == want[p], p

"""The UI's live index: the run summary's figures, folded in slices, following appends,
and standing damaged records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lmdb
import trio

from scaleenv._replay.logcopy import append_all
from scaleenv._replay.projection import fold
from scaleenv._runner import summary
from scaleenv._store.events.base import Ref
from scaleenv._store.events.episodes import EpisodeEnded, EpisodeStarted, MessageSent, RewardGiven
from scaleenv._store.keys import seq_key
from scaleenv._store.log import Log
from scaleenv._store.writer import Pending
from scaleenv._ui.index import Follower, RunIndex, natural_key
from tests.ui.conftest import copy_log


def _comparable(summary_domain: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in summary_domain.items():
        out["pass_at_k" if k.startswith("pass_at_") and k != "pass_at_1" else k] = v
    return out


def test_figures_equal_the_run_summary(ui_run: tuple[Path, dict[str, Any]]) -> None:
    path, _ = ui_run
    with Log.open(path, readonly=True) as log:
        index = RunIndex()
        index.catch_up(log)
        expected = summary(fold(log.read()))
    figures = index.domain_figures()
    assert [f["slot"] for f in figures] == [d["slot"] for d in expected["domains"]]
    for got, want in zip(figures, expected["domains"]):
        want = _comparable(want)
        assert {k: got[k] for k in want} == want
    assert index.events == expected["events"]
    assert index.types["llm.called"] == expected["llm_calls"]
    assert index.problems == [] and index.unknown == 0


def test_folding_in_slices_gives_the_same_index(ui_run: tuple[Path, dict[str, Any]]) -> None:
    path, _ = ui_run
    with Log.open(path, readonly=True) as log:
        whole = RunIndex()
        whole.catch_up(log)
        sliced = RunIndex()
        while sliced.catch_up(log, limit=37):
            pass
    assert sliced.seq == whole.seq == whole.events
    assert sliced.domain_figures() == whole.domain_figures()
    assert sliced.charts() == whole.charts()
    assert sliced.episodes == whole.episodes and sliced.tasks == whole.tasks


def episode_items(task_id: str, attempt: str, *, reward: float, content: str = "hello") -> list[Pending]:
    """A short, complete episode stream (what a served episode writes)."""
    sid = f"episode/{task_id}/{attempt}"
    events = [
        EpisodeStarted(task_id=task_id, domain="x", attempt=99, seed=1, system_prompt="be brief"),
        MessageSent(role="user", content=content),
        MessageSent(role="assistant", content="done"),
        EpisodeEnded(reason="user_done", fault="none", turns=1, tool_calls=0),
        RewardGiven(reward=reward, breakdown={"state": reward}, diff=[], reward_version="test-1"),
    ]
    return [Pending(sid, n, Ref(sid, n - 1) if n else None, "test", e) for n, e in enumerate(events)]


async def test_the_follower_picks_up_appends(ui_run: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    path = copy_log(ui_run[0], tmp_path / "log")
    with Log.open(path) as log:  # one handle per process: the follower reads the writer's log
        follower = Follower(log, poll_interval=0.01)
        index = follower.index
        async with trio.open_nursery() as nursery:
            nursery.start_soon(follower.run)
            await follower.caught_up.wait()
            task_id = next(t for t, row in sorted(index.tasks.items()) if row.status == "kept")
            slot = task_id.split("/")[0]
            before = index.figures(slot)
            seq = index.seq
            items = episode_items(task_id, "s7", reward=1.0)
            await append_all(log, items[:2])  # started, not ended: running
            await follower.wait_past(seq, timeout=60)
            assert index.episodes[f"{task_id}/s7"].status == "running"
            assert index.figures(slot)["episodes_running"] == before["episodes_running"] + 1
            seq = index.seq
            await append_all(log, items[2:])
            await follower.wait_past(seq, timeout=60)
            row = index.episodes[f"{task_id}/s7"]
            assert (row.status, row.reward, row.ending, row.served) == ("scored", 1.0, "user_done/none", True)
            after = index.figures(slot)
            assert after["served_episodes"] == before["served_episodes"] + 1
            assert after["episodes"] == before["episodes"]  # served episodes are counted apart, as the run summary does
            nursery.cancel_scope.cancel()


async def test_a_damaged_record_is_listed_and_skipped(ui_run: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    path = copy_log(ui_run[0], tmp_path / "log")
    with Log.open(path, readonly=True) as log:
        target = next(r.seq for r in log.read() if r.type == "episode.reward")
        total = log.last_seq()
    env = lmdb.open(str(path), max_dbs=8)
    events = env.open_db(b"events")
    with env.begin(write=True) as txn:
        raw = bytearray(txn.get(seq_key(target), db=events))
        raw[-3] ^= 0xFF  # one flipped byte in the body: the CRC no longer matches
        txn.put(seq_key(target), bytes(raw), db=events)
    env.close()
    with Log.open(path, readonly=True) as log:
        index = RunIndex()
        index.catch_up(log)
    assert index.problems == [{"seq": target, "reason": "CRC mismatch"}]
    assert index.events == total - 1 and index.seq == total
    assert sum(f["episodes"] for f in index.domain_figures()) > 0


def test_natural_order() -> None:
    ids = ["d00/t10/g1", "d00/t9/g10", "d00/t9/g2", "d01/t1/g1"]
    assert sorted(ids, key=natural_key) == ["d00/t9/g2", "d00/t9/g10", "d00/t10/g1", "d01/t1/g1"]


async def test_a_regrade_replaces_the_reward_in_the_figures(ui_run: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    path = copy_log(ui_run[0], tmp_path / "log")
    with Log.open(path) as log:
        index = RunIndex()
        index.catch_up(log)
        row = next(r for r in index.episodes.values() if r.reward == 1.0 and not r.served)
        sid = f"episode/{row.episode_id}"
        n = log.stream_length(sid)
        regrade = RewardGiven(reward=0.0, breakdown={"state": 0.0}, diff=["x"], reward_version="test-2")
        await append_all(log, [Pending(sid, n, Ref(sid, n - 1), "grader", regrade)])
        index.catch_up(log)  # incrementally: the old reward is taken back, the new one counted
        expected = summary(fold(log.read()))
        cold = RunIndex()
        cold.catch_up(log)
    assert index.episodes[row.episode_id].reward == 0.0
    for got, want in zip(index.domain_figures(), expected["domains"]):
        want = _comparable(want)
        assert {k: got[k] for k in want} == want
    assert index.domain_figures() == cold.domain_figures() and index.charts() == cold.charts()

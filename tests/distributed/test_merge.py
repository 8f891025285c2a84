"""Sharded rollouts without Ray: workers run in-process, shards merge into the same digests."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import msgspec
import pytest
import trio

from scaleenv._cli import main as cli_main
from scaleenv._runner import project
from scaleenv._distributed import distributed_rollouts, plan, run_shard_async
from scaleenv._streams import episode_id, episode_stream
from scaleenv._shards import MergeConflict, existing_shards, merge_shards, shard_of, shard_path, shards_dir
from scaleenv._store.log import Log

from .conftest import CONFIG, OPTIONS, Base, bounded, episode_starts, stream_digests


def test_shard_of_is_stable_and_spread() -> None:
    # Fixed values: a stable hash of the stream id (blake2b), the same in every process and on every machine.
    assert [shard_of(s, 4) for s in ("episode/d00/t000/g0", "episode/d00/t000/g1", "episode/d01/t003/g2")] == [2, 1, 0]
    assert shard_of("episode/d00/t000/g0", 1) == 0
    counts = [0] * 4
    for d in range(8):
        for t in range(10):
            for g in range(4):
                counts[shard_of(f"episode/d{d:02}/t{t:03}/g{g}", 4)] += 1
    assert min(counts) > 60 and max(counts) < 100  # 320 streams, roughly even
    with pytest.raises(ValueError):
        shard_of("x", 0)


@pytest.mark.parametrize("shards", [1, 3])
def test_sharded_run_has_the_single_machine_digests(tmp_path: Path, base: Base, shards: int) -> None:
    main = base.copy(tmp_path / "main")
    result = distributed_rollouts(str(main), CONFIG, OPTIONS, shards=shards, executor="inprocess")
    assert result["digest"] == base.digest
    assert stream_digests(main) == base.streams
    starts = episode_starts(main)
    assert len(starts) == base.episodes and set(starts.values()) == {1}
    d = result["distributed"]
    assert d["episodes_assigned"] == base.episodes and d["failures"] == []
    assert sum(w["fresh"] for w in d["workers"]) == base.episodes
    assert d["merge"]["streams_merged"] == base.episodes
    assert not shards_dir(main).exists()  # merged and removed
    # Again: everything is done, nothing runs, nothing is merged, same digest.
    again = distributed_rollouts(str(main), CONFIG, OPTIONS, shards=shards, executor="inprocess")
    assert again["digest"] == base.digest
    assert again["distributed"]["episodes_assigned"] == 0 and again["distributed"]["merge"]["events_merged"] == 0


def test_merge_order_is_deterministic(tmp_path: Path, base: Base) -> None:
    src = base.copy(tmp_path / "src")
    distributed_rollouts(str(src), CONFIG, OPTIONS, shards=3, executor="inprocess", keep_shards=True)
    shards = existing_shards(src)
    assert len(shards) == 3

    def merged(name: str, order: list[Path]) -> list[tuple[str, int]]:
        main = base.copy(tmp_path / name)
        with Log.open(main) as log:
            stats = trio.run(merge_shards, log, order)
            assert stats.streams_merged == base.episodes
            return [(r.stream, r.n) for r in log.read()]

    a = merged("a", shards)
    b = merged("b", list(reversed(shards)))
    assert a == b
    episodes = [x for x in a if x[0].startswith("episode/")]
    assert episodes == sorted(episodes)  # stream id, then n
    with Log.open(src) as log:  # merging again into a log that holds them all adds nothing
        again = trio.run(merge_shards, log, shards)
    assert again.events_merged == 0 and again.streams_skipped == base.episodes


def test_resumes_episodes_a_single_machine_run_left_half_done(tmp_path: Path, base: Base) -> None:
    # What an interrupted single-machine run leaves: some episodes finished, some cut after
    # a few events, the rest not started. (Built from the single-machine log rather than by
    # interrupting a live run at a moment: under load a live run could finish first.)
    main = base.copy(tmp_path / "main")
    with Log.open(base.single, readonly=True) as single:
        streams = sorted(sid for sid, _ in single.streams("episode/"))
        left = {sid: list(single.read_stream(sid)) for sid in streams}
    for i, sid in enumerate(streams):
        left[sid] = left[sid] if i % 3 == 0 else left[sid][: 3 + i % 4] if i % 3 == 1 else []

    async def interrupted() -> None:
        with Log.open(main) as log:
            async with log.writer() as w:
                await w.append([(r.stream, r.n, r.cause, r.actor, r.event) for sid in streams for r in left[sid]])

    bounded(trio.run, interrupted)
    with Log.open(main, readonly=True) as log:
        partial = [s for s, n in log.streams("episode/") if n > 0]
    assert partial, "the interrupted run should leave episodes in the main log"
    result = bounded(distributed_rollouts, str(main), CONFIG, OPTIONS, shards=2, executor="inprocess")
    assert result["digest"] == base.digest
    assert set(episode_starts(main).values()) == {1}
    assert sum(w["resumed"] for w in result["distributed"]["workers"]) == sum(1 for i in range(len(streams)) if i % 3 == 1)
    assert result["distributed"]["episodes_already_done"] == sum(1 for i in range(len(streams)) if i % 3 == 0)


def test_leftover_shards_of_an_interrupted_run_are_merged_first(tmp_path: Path, base: Base) -> None:
    main = base.copy(tmp_path / "main")
    with Log.open(main, readonly=True) as log:
        works, _ = plan(log, str(main.resolve()), CONFIG, OPTIONS, 2)
    first = works[0]
    assert len(first.items) > 4
    # An earlier run with 2 shards: its worker 0 finished 3 episodes and died in the 4th (a prefix of it).
    bounded(trio.run, run_shard_async, msgspec.structs.replace(first, items=first.items[:3]))
    cut = episode_stream(episode_id(*first.items[3]))
    with Log.open(base.single, readonly=True) as single:
        prefix = list(single.read_stream(cut))[:4]

    async def died_mid_episode() -> None:
        with Log.open(first.shard_path) as shard:
            async with shard.writer() as w:
                await w.append([(r.stream, r.n, r.cause, r.actor, r.event) for r in prefix])

    bounded(trio.run, died_mid_episode)
    assert existing_shards(main) == [Path(first.shard_path)]
    # A different shard count this time: the leftover shard is merged first, then the rest runs.
    # (bounded: a hang, e.g. a sandbox pool waiting on a worker while it closes, fails the test.)
    result = bounded(distributed_rollouts, str(main), CONFIG, OPTIONS, shards=3, executor="inprocess")
    d = result["distributed"]
    assert d["recovered_from_earlier_run"]["streams_merged"] == 4
    assert d["episodes_already_done"] == 3
    assert sum(w["resumed"] for w in d["workers"]) == 1  # the cut episode resumes from the main log's prefix
    assert result["digest"] == base.digest
    assert set(episode_starts(main).values()) == {1}


def test_merge_refuses_a_shard_that_contradicts_the_main_log(tmp_path: Path, base: Base) -> None:
    src = base.copy(tmp_path / "src")
    distributed_rollouts(str(src), CONFIG, OPTIONS, shards=1, executor="inprocess", keep_shards=True)
    shard = shard_path(src, 0)
    main = base.copy(tmp_path / "main")
    with Log.open(shard, readonly=True) as s:
        sid = next(iter(s.streams("episode/")))[0]
        first = next(s.read_stream(sid))
    wrong = msgspec.structs.replace(first.event, seed=first.event.seed + 1)

    async def put_wrong() -> None:
        async with log.writer() as w:
            await w.append([(sid, 0, first.cause, first.actor, wrong)])

    with Log.open(main) as log:
        trio.run(put_wrong)
        with pytest.raises(MergeConflict, match="differ at n=0"):
            trio.run(merge_shards, log, [shard])


def test_cli_flags_without_ray(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    log = str(tmp_path / "log")
    assert cli_main(["rollout", "--log", log, "--shards", "2", "--quiet"]) == 2
    assert "--shards needs --ray" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    assert cli_main(["rollout", "--log", log, "--ray", "local", "--quiet"]) == 2
    assert "pip install 'scaleenv[ray]'" in capsys.readouterr().err


def test_planning_a_finished_rollout_asks_about_no_episode(tmp_path: Path, base: Base,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    # The driver plans from the lean view's run progress (left_to_run): on a log whose
    # rollouts are all finished, no episode is looked at; one more attempt per task asks
    # about that attempt only.
    from scaleenv._replay.stored import StoredEpisodes

    main = shutil.copytree(base.single, tmp_path / "main")
    with Log.open(main) as lg:
        project(lg, lean=True)  # the checkpoint a finished run ends with
        asked: list[str] = []
        finished = StoredEpisodes.finished

        def counted(self: StoredEpisodes, eid: str) -> bool:
            asked.append(eid)
            return finished(self, eid)

        monkeypatch.setattr(StoredEpisodes, "finished", counted)
        works, done = plan(lg, str(main), CONFIG, OPTIONS, 2)
        assert works == [] and done == base.episodes and asked == []
        more = msgspec.structs.replace(CONFIG, episodes_per_task=CONFIG.episodes_per_task + 1)
        works, done = plan(lg, str(main), more, OPTIONS, 2)
        items = sorted(i for w in works for i in w.items)
        assert done == base.episodes and len(items) == base.episodes // CONFIG.episodes_per_task
        assert {g for _, g in items} == {CONFIG.episodes_per_task}
        assert sorted(asked) == sorted(f"{t}/g{g}" for t, g in items)

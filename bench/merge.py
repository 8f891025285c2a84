"""Shard merge throughput: merge_shards vs a plain read + append of the same events.

    .venv/bin/python bench/merge.py [--events 400000] [--shards 4] [--per-episode 20] [--no-sync] [--json]

A synthetic episode log (``--events`` events in episode streams of ``--per-episode``
events: an EpisodeStarted, then assistant tool calls and their ToolExecuted results
with deltas, like a sim rollout's ~20 events per episode) is split over ``--shards``
shard logs by :func:`scaleenv._shards.shard_of`, exactly as distributed rollouts do.

- merge: :func:`scaleenv._shards.merge_shards` into a fresh main log (plan, then every
  stream in stream-id order read through the stream index, appended in batches of 4096);
- baseline: the same shards read sequentially (``log.read()``, storage order) and
  appended to another fresh log in the same batches through the same writer: the cost
  of moving the events at all, without the deterministic order.

Both logs end with the same per-stream digests (checked). ``--json`` prints one JSON
object on the last line, with ``merge_events_per_s`` and the baseline.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

from scaleenv._replay.logcopy import append_all
from scaleenv._shards import MERGE_BATCH, merge_shards, shard_of
from scaleenv._store.events.base import Ref
from scaleenv._store.events.episodes import EpisodeStarted, MessageSent, ToolCallRequest, ToolExecuted
from scaleenv._store.events.tasks import RecordChange
from scaleenv._store.log import Log
from scaleenv._store.record import stream_digests
from scaleenv._store.writer import Pending

MAP = 4 << 30


def episode(sid: str, e: int, per_episode: int, rng: random.Random) -> list[Pending]:
    items = [Pending(sid, 0, None, "engine", EpisodeStarted(task_id="d00/t000", domain="bench", attempt=e, seed=e))]
    n = 1
    while n < per_episode:
        key = f"i{rng.randrange(20):03d}"
        call = ToolCallRequest(id=f"c{n}", name="set_qty", arguments=f'{{"id": "{key}"}}')
        items.append(Pending(sid, n, Ref(sid, n - 1), "policy",
                             MessageSent(role="assistant", content="", tool_calls=[call])))
        before = {"id": key, "qty": n, "note": "x" * 16}
        after = {"id": key, "qty": n + 1, "note": "x" * 16}
        items.append(Pending(sid, n + 1, Ref(sid, n), "environment", ToolExecuted(
            call_id=f"c{n}", tool="set_qty", args={"id": key}, ok=True, result=after,
            delta=[RecordChange(table="items", key=key, before=before, after=after)])))
        n += 2
    return items


def make_shards(root: Path, events: int, shards: int, per_episode: int) -> tuple[list[Path], int]:
    """Write the synthetic episodes into shard logs, interleaved as concurrent workers would."""
    rng = random.Random(3)
    per_shard: list[list[list[Pending]]] = [[] for _ in range(shards)]
    count = 0
    e = 0
    while count < events:
        sid = f"episode/d{e % 8:02d}/t{(e // 8) % 50:03d}/g{e // 400}"
        items = episode(sid, e, per_episode, rng)
        per_shard[shard_of(sid, shards)].append(items)
        count += len(items)
        e += 1
    paths = []
    for k, eps in enumerate(per_shard):
        # Interleave the episodes of a shard two events at a time (as concurrent episodes commit).
        flat: list[Pending] = []
        longest = max((len(ep) for ep in eps), default=0)
        for i in range(0, longest, 2):
            for ep in eps:
                flat.extend(ep[i:i + 2])
        p = root / "shards" / str(k)
        with Log.open(p, sync=False, map_size=MAP) as lg:
            trio.run(append_all, lg, flat, 50_000)
        paths.append(p)
    return paths, count


async def baseline_copy(main: Log, paths: list[Path], batch: int) -> int:
    n = 0
    async with main.writer(max_batch=batch) as w:
        for p in paths:
            with Log.open(p, readonly=True) as s:
                buf: list[Pending] = []
                for r in s.read():
                    buf.append(Pending(r.stream, r.n, r.cause, r.actor, r.event))
                    if len(buf) >= batch:
                        await w.append(buf)
                        n += len(buf)
                        buf = []
                if buf:
                    await w.append(buf)
                    n += len(buf)
    return n


def digests(path: Path) -> dict[str, str]:
    with Log.open(path, readonly=True) as lg:
        return stream_digests(lg.read())


def run(events: int, shards: int, per_episode: int, sync: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="scaleenv-bench-merge-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        paths, total = make_shards(root, events, shards, per_episode)
        gen_s = time.perf_counter() - t0
        with Log.open(root / "baseline", sync=sync, map_size=MAP) as main:
            t1 = time.perf_counter()
            copied = trio.run(baseline_copy, main, paths, MERGE_BATCH)
            base_s = time.perf_counter() - t1
        with Log.open(root / "merged", sync=sync, map_size=MAP) as main:
            stats = trio.run(merge_shards, main, paths)
        assert copied == stats.events_merged == total, (copied, stats.events_merged, total)
        same = digests(root / "merged") == digests(root / "baseline")
        assert same, "merged and copied logs differ"
    merge_rate = stats.events_merged / stats.seconds
    base_rate = copied / base_s
    return {
        "events": total,
        "shards": shards,
        "episodes": stats.streams_merged,
        "per_episode": per_episode,
        "sync": sync,
        "generate_s": round(gen_s, 2),
        "merge_s": round(stats.seconds, 3),
        "merge_events_per_s": round(merge_rate),
        "baseline_read_append_s": round(base_s, 3),
        "baseline_read_append_events_per_s": round(base_rate),
        "merge_vs_baseline": round(merge_rate / base_rate, 3),
        "digests_equal": same,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=400_000)
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--per-episode", type=int, default=21, help="events per episode stream (odd: start + call/result pairs)")
    ap.add_argument("--no-sync", action="store_true", help="main log without fsync per commit")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    out = run(a.events, a.shards, a.per_episode, not a.no_sync)
    if a.json:
        print(json.dumps(out, sort_keys=True))
    else:
        for k, v in out.items():
            print(f"{k:36s} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

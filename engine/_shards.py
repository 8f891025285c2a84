"""Sharding a run's episodes over workers, and merging the shard logs back.

Pure log mechanics, no Ray: see :mod:`scaleenv._distributed` for the driver and the
workers. The unit of determinism is the stream, so a run is sharded by stream id:

- :func:`shard_of` assigns an episode stream to one of ``n`` shards with a stable hash
  (blake2b of the stream id; never Python's salted ``hash()``), so the same episode
  lands in the same shard on every attempt, on every machine;
- each shard is its own LMDB log, ``<log>.shards/<k>`` (LMDB allows one writer per
  environment; a worker appends only to its own);
- :func:`merge_shards` appends the shards' streams to the main log in a deterministic
  order (stream id, then position), skipping what the main log already holds, after
  checking that any prefix the main log holds is the same events. The merged log's
  per-stream digests, and so its run digest, equal a single-machine run's with the same
  seed; only ``seq`` (the global order) and ``wall_ns`` differ, which digests never cover.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import attrs
import trio

from scaleenv._store.errors import LogError
from scaleenv._store.log import Log
from scaleenv._store.record import Record, record_digest_bytes
from scaleenv._store.writer import Pending, Writer

SHARDS_SUFFIX = ".shards"
SHARD_META = "shard"
"""Shard-log meta key: ``{"index": k, "of": n, "main": <main log path>}``."""
MERGE_BATCH = 4096


def shard_of(stream_id: str, shards: int) -> int:
    """The shard of a stream: a stable hash of its id, modulo the shard count."""
    if shards < 1:
        raise ValueError("shards must be at least 1")
    h = hashlib.blake2b(stream_id.encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") % shards


def shards_dir(main_path: str | os.PathLike[str]) -> Path:
    """Where a run's shard logs live: next to the main log, ``<log>.shards``."""
    p = Path(main_path)
    return p.with_name(p.name + SHARDS_SUFFIX)


def shard_path(main_path: str | os.PathLike[str], k: int) -> Path:
    return shards_dir(main_path) / str(k)


def existing_shards(main_path: str | os.PathLike[str]) -> list[Path]:
    """The shard logs on disk for this run (not yet merged and removed), by index."""
    d = shards_dir(main_path)
    if not d.is_dir():
        return []
    found = [c for c in d.iterdir() if c.is_dir() and c.name.isdigit() and (c / "data.mdb").exists()]
    return sorted(found, key=lambda c: int(c.name))


def recorded_shard_count(main_path: str | os.PathLike[str]) -> int | None:
    """The shard count the unmerged shards on disk were made with (None if there are none)."""
    counts = set()
    for p in existing_shards(main_path):
        with Log.open(p, readonly=True) as s:
            info = s.meta_get(SHARD_META)
        if isinstance(info, dict) and isinstance(info.get("of"), int):
            counts.add(info["of"])
    if len(counts) > 1:
        raise LogError(f"{shards_dir(main_path)} mixes shards of different counts {sorted(counts)}")
    return counts.pop() if counts else None


def remove_shards(main_path: str | os.PathLike[str]) -> None:
    d = shards_dir(main_path)
    if d.exists():
        shutil.rmtree(d)


class MergeConflict(LogError):
    """A shard's stream disagrees with what the main log (or another shard) holds for it."""


@attrs.define
class MergeStats:
    shards: int = 0
    streams_seen: int = 0
    streams_merged: int = 0
    streams_skipped: int = 0
    events_merged: int = 0
    seconds: float = 0.0

    @property
    def events_per_s(self) -> float:
        return self.events_merged / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, float | int]:
        return {**attrs.asdict(self), "events_per_s": round(self.events_per_s, 1)}


def _same(a: Record, b: Record) -> bool:
    return record_digest_bytes(a) == record_digest_bytes(b)


def plan_merge(main: Log, shards: Sequence[Log]) -> tuple[list[tuple[str, int, int, int]], int]:
    """What to copy: ``(stream, shard index, from n, to n)`` sorted by stream id, and streams seen.

    A stream found in several shards (it should not be: the hash puts it in one) must
    hold the same events where they overlap; the longest copy wins.
    """
    best: dict[str, tuple[int, int]] = {}
    for i, s in enumerate(shards):
        for sid, length in s.streams():
            prev = best.get(sid)
            if prev is None:
                best[sid] = (i, length)
                continue
            j, other = prev
            short, long_ = (s, shards[j]) if length <= other else (shards[j], s)
            for a, b in zip(short.read_stream(sid), long_.read_stream(sid), strict=False):
                if not _same(a, b):
                    raise MergeConflict(f"stream {sid!r} differs between shards at n={a.n}")
            if length > other:
                best[sid] = (i, length)
    plan = []
    for sid in sorted(best):
        i, length = best[sid]
        have = main.stream_length(sid)
        if have >= length:
            continue
        plan.append((sid, i, have, length))
    return plan, len(best)


def _check_prefix(main: Log, shard: Log, sid: str, have: int) -> None:
    """The main log's ``have`` events of ``sid`` must be the shard's first ``have``."""
    if have == 0:
        return
    for a, b in zip(main.read_stream(sid), shard.read_stream(sid), strict=False):
        if not _same(a, b):
            raise MergeConflict(f"stream {sid!r}: the main log and shard {shard.path} differ at n={a.n}")


def checked_plan(main: Log, shards: Sequence[Log], stats: MergeStats | None = None) -> list[tuple[str, int, int, int]]:
    """:func:`plan_merge`, with every prefix the main log already holds checked against its shard."""
    plan, seen = plan_merge(main, shards)
    for sid, i, have, _length in plan:
        _check_prefix(main, shards[i], sid, have)
    if stats is not None:
        stats.streams_seen += seen
        stats.streams_merged += len(plan)
        stats.streams_skipped += seen - len(plan)
    return plan


def merge_items(shards: Sequence[Log], plan: Sequence[tuple[str, int, int, int]]) -> Iterator[Pending]:
    """The events to append to the main log, in the deterministic merge order."""
    for sid, i, have, _length in plan:
        for r in shards[i].read_stream(sid, have):
            yield Pending(r.stream, r.n, r.cause, r.actor, r.event)


async def merge_shards(main: Log, shard_paths: Sequence[str | os.PathLike[str]], *,
                       batch: int = MERGE_BATCH) -> MergeStats:
    """Append every shard's streams to ``main`` (writable, no writer running): deterministic, idempotent.

    Streams are taken in stream-id order, each from its position in the main log on, in
    batches of ``batch`` events (one transaction each). Running it again after a crash
    merges only what is still missing. Raises :class:`MergeConflict` (before writing
    anything) if a shard contradicts the main log.
    """
    stats = MergeStats(shards=len(shard_paths))
    t0 = time.perf_counter()
    opened = [Log.open(p, readonly=True) for p in shard_paths]
    try:
        plan = checked_plan(main, opened, stats)
        if plan:
            # Read batch i+1 (here, on the trio thread) while the writer commits batch i
            # (on its own thread): one consumer keeps the append order, so the merged
            # order is the plan's order.
            send, recv = trio.open_memory_channel[list[Pending]](1)

            async def consume(w: Writer) -> None:
                async with recv:
                    async for buf in recv:
                        await w.append(buf)
                        stats.events_merged += len(buf)

            async with main.writer(max_batch=batch) as w, trio.open_nursery() as nursery:
                nursery.start_soon(consume, w)
                async with send:
                    buf: list[Pending] = []
                    for item in merge_items(opened, plan):
                        buf.append(item)
                        if len(buf) >= batch:
                            await send.send(buf)
                            buf = []
                    if buf:
                        await send.send(buf)
    finally:
        for s in opened:
            s.close()
    stats.seconds = time.perf_counter() - t0
    return stats


__all__ = [
    "MergeConflict", "MergeStats", "checked_plan", "existing_shards", "merge_items", "merge_shards", "plan_merge",
    "recorded_shard_count", "remove_shards", "shard_of", "shard_path", "shards_dir",
]

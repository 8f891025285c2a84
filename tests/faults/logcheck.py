"""What the fault trials check on a log after a fault: intact, a contiguous prefix."""

from __future__ import annotations

import hashlib
from pathlib import Path

import attrs

from scaleenv._store import Log, LogError


@attrs.frozen
class LogShape:
    """A log's integrity as a fault trial sees it."""

    last_seq: int
    damaged: list[int]
    seq_gaps: int
    """Seqs missing between 1 and ``last_seq``."""
    stream_gaps: int
    """Streams whose positions are not 0..len-1, or whose index disagrees with the records."""
    stage: str
    """What the last record belongs to: synth, tasks, rollout or empty."""
    raw: dict[int, bytes]
    """seq -> blake2b of the stored bytes (to prove a resume left every one untouched)."""

    @property
    def intact(self) -> bool:
        return not self.damaged and not self.seq_gaps and not self.stream_gaps


def stage_of(stream: str | None) -> str:
    """The pipeline stage a stream id belongs to."""
    if stream is None:
        return "empty"
    head = stream.split("/", 1)[0]
    return {"domain": "synth", "tool": "synth", "task": "tasks", "episode": "rollout"}.get(head, head)


def inspect(path: Path) -> LogShape:
    """Open ``path`` read-only and check it as a contiguous, undamaged prefix."""
    with Log.open(path, readonly=True) as log:
        damaged = [d.seq for d in log.check()]
        raw: dict[int, bytes] = {}
        next_n: dict[str, int] = {}
        bad_streams: set[str] = set()
        last_stream = None
        for chunk in log._raw_chunks(1):
            for seq, value in chunk:
                raw[seq] = hashlib.blake2b(value, digest_size=16).digest()
                try:
                    rec = log.codec.decode(value, seq)
                except LogError:
                    continue
                if rec.n != next_n.get(rec.stream, 0):
                    bad_streams.add(rec.stream)
                next_n[rec.stream] = rec.n + 1
                last_stream = rec.stream
        last = log.last_seq()
        indexed = dict(log.streams())
        bad_streams |= {s for s in set(indexed) | set(next_n) if indexed.get(s) != next_n.get(s)}
    return LogShape(last_seq=last, damaged=damaged, seq_gaps=last - len(raw), stream_gaps=len(bad_streams),
                    stage=stage_of(last_stream), raw=raw)


def changed_since(before: LogShape, after: LogShape) -> int:
    """How many records of ``before`` are missing or different in ``after`` (events lost)."""
    return sum(1 for seq, h in before.raw.items() if after.raw.get(seq) != h)

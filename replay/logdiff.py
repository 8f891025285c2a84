"""Compare two runs stream by stream: digests first, then the first differing event.

Two logs of the same seed must hold the same streams with the same digests whatever the
concurrency. For each stream whose digests differ, the streams are walked in order and
the first position whose digest bytes differ is reported as a
:class:`scaleenv._store.stream.Divergence` (A is the "recorded" side, B the "got" side).
"""

from __future__ import annotations

import itertools
from typing import Any

import attrs

from scaleenv._store.log import Log
from scaleenv._store.record import Record, record_digest_bytes, run_digest, stream_digests
from scaleenv._store.stream import Divergence
from scaleenv._streams import is_check


@attrs.frozen
class StreamDiff:
    stream: str
    n: int
    text: str
    fields: list[tuple[str, Any, Any]]
    len_a: int
    len_b: int

    def to_json(self) -> dict[str, Any]:
        return {"stream": self.stream, "n": self.n, "len_a": self.len_a, "len_b": self.len_b, "text": self.text,
                "fields": [{"field": f, "a": a, "b": b} for f, a, b in self.fields]}


@attrs.define
class LogDiff:
    only_a: list[str] = attrs.field(factory=list)
    only_b: list[str] = attrs.field(factory=list)
    differing: list[StreamDiff] = attrs.field(factory=list)
    same: int = 0
    digest_a: str = ""
    digest_b: str = ""

    @property
    def equal(self) -> bool:
        return not (self.only_a or self.only_b or self.differing)

    def to_json(self) -> dict[str, Any]:
        return {
            "equal": self.equal, "run_digest_a": self.digest_a, "run_digest_b": self.digest_b,
            "same": self.same, "only_in_a": len(self.only_a), "only_in_b": len(self.only_b),
            "differing": len(self.differing), "streams_only_in_a": self.only_a, "streams_only_in_b": self.only_b,
            "differences": [d.to_json() for d in self.differing],
        }


def first_difference(a: Log, b: Log, stream: str) -> StreamDiff | None:
    """The first position where ``stream`` differs between the two logs (None if equal)."""
    len_a, len_b = a.stream_length(stream), b.stream_length(stream)
    pairs = itertools.zip_longest(a.read_stream(stream), b.read_stream(stream))
    for n, (ra, rb) in enumerate(pairs):
        if ra is not None and rb is not None and record_digest_bytes(ra) == record_digest_bytes(rb):
            continue
        div = Divergence(stream, n, ra, None if rb is None else (rb.event, rb.actor, rb.cause))
        return StreamDiff(stream=stream, n=n, text=str(div), fields=div.differences(), len_a=len_a, len_b=len_b)
    return None


def _digests(event_log: Log) -> dict[str, str]:
    """Per-stream digests of the run's streams (checks of the run, ``check/``, are not compared)."""
    return {s: d for s, d in stream_digests(event_log.read()).items() if not is_check(s)}


def diff_logs(a: Log, b: Log) -> LogDiff:
    da, db = _digests(a), _digests(b)
    out = LogDiff(digest_a=run_digest(da), digest_b=run_digest(db))
    out.only_a = sorted(set(da) - set(db))
    out.only_b = sorted(set(db) - set(da))
    for stream in sorted(set(da) & set(db)):
        if da[stream] == db[stream]:
            out.same += 1
            continue
        d = first_difference(a, b, stream)
        if d is not None:
            out.differing.append(d)
    return out


def render(d: LogDiff, name_a: str, name_b: str) -> str:
    lines = [f"A = {name_a}\nB = {name_b}",
             f"{d.same} streams equal, {len(d.differing)} differ, {len(d.only_a)} only in A, {len(d.only_b)} only in B"]
    for s in d.only_a:
        lines.append(f"  only in A: {s}")
    for s in d.only_b:
        lines.append(f"  only in B: {s}")
    for sd in d.differing:
        lines.append(f"  {sd.stream}: first difference at n={sd.n} (A has {sd.len_a} events, B has {sd.len_b})")
        lines.extend("    " + t.replace("recorded", "A").replace("but got", "but B") for t in sd.text.splitlines())
    lines.append("the runs are identical" if d.equal else "the runs differ")
    return "\n".join(lines) + "\n"


__all__ = ["LogDiff", "StreamDiff", "diff_logs", "first_difference", "render", "Record"]

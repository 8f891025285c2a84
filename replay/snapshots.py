"""Periodic snapshots of an episode's state, so seeking to a step folds at most N events.

A snapshot is stored with :meth:`Log.put_snapshot` under
``b"replay.episode/v1\\0" + stream + b"\\0" + n (u64 BE)`` and holds the state after
the stream's first ``n`` records, the :class:`StreamDigest` of those records (and the
one before the last), the state's own digest and the snapshot format/fold versions.
Each episode stream also has an index entry (``... + b"\\0index"``) listing the
positions it has snapshots at, so a seek needs only exact-key reads.

A snapshot is never trusted silently. On load it must:

1. decode, and carry this code's :data:`SNAPSHOT_FORMAT` and :data:`FOLD_VERSION`
   (a fold that changed meaning bumps FOLD_VERSION: old snapshots become stale);
2. hold a state whose digest equals the recorded ``state_digest`` (bit rot, tampering);
3. link to the log: ``H(prev_digest || bytes(record n-1)) == digest``, i.e. the stored
   chain digest continues from the record the log actually holds at ``n-1`` (another
   run written at the same path, a rewritten stream).

A snapshot failing a check is logged (structlog warning) and the next earlier one is
tried; the fold then starts from the start of the stream. :func:`check_all` recomputes
every chain digest from the start of each stream (the full, slow check).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import attrs
import msgspec

from scaleenv._store.log import Log
from scaleenv._store.record import StreamDigest, record_digest_bytes
from scaleenv._store.specs import DbState

from .episode_state import EpisodeFold, fold_to, resume_fold, start_fold, task_id_of, task_view
from .projection import TaskView
from scaleenv._model.state import state_digest
from scaleenv._streams import EPISODE
from scaleenv._logs import get_logger

log = get_logger("scaleenv._replay.snapshots")

SNAPSHOT_FORMAT = 1
"""The layout of a snapshot value."""
FOLD_VERSION = 1
"""The meaning of the episode fold; bump when ``apply`` changes how an episode's state evolves."""

PREFIX = b"replay.episode/v1\0"
_U64 = 8


class Snapshot(msgspec.Struct, frozen=True, kw_only=True):
    format: int
    fold_version: int
    stream: str
    n: int
    digest: str
    prev_digest: str
    state_digest: str
    state: DbState


class SnapshotIndex(msgspec.Struct, frozen=True, kw_only=True):
    every: int
    positions: list[int]


_enc = msgspec.msgpack.Encoder()
_snap_dec = msgspec.msgpack.Decoder(Snapshot)
_index_dec = msgspec.msgpack.Decoder(SnapshotIndex)


def snapshot_key(stream: str, n: int) -> bytes:
    return PREFIX + stream.encode() + b"\0" + n.to_bytes(_U64, "big")


def index_key(stream: str) -> bytes:
    return PREFIX + stream.encode() + b"\0index"


def encode_snapshot(snap: Snapshot) -> bytes:
    return _enc.encode(snap)


def read_index(event_log: Log, stream: str) -> SnapshotIndex | None:
    raw = event_log.get_snapshot(index_key(stream))
    if raw is None:
        return None
    try:
        return _index_dec.decode(raw)
    except msgspec.MsgspecError as exc:
        log.warning("snapshot index undecodable; ignoring it", stream=stream, error=str(exc))
        return None


def _chain(prev_hex: str, record_bytes: bytes) -> str:
    return hashlib.blake2b(bytes.fromhex(prev_hex) + record_bytes, digest_size=32).hexdigest()


@attrs.frozen
class SnapshotProblem:
    stream: str
    n: int
    reason: str


def validate(event_log: Log, stream: str, n: int, raw: bytes | None) -> tuple[Snapshot | None, str]:
    """Decode and check one snapshot against the log (touches the record at ``n-1``)."""
    if raw is None:
        return None, "missing"
    try:
        snap = _snap_dec.decode(raw)
    except msgspec.MsgspecError as exc:
        return None, f"undecodable: {exc}"
    if snap.format != SNAPSHOT_FORMAT:
        return None, f"snapshot format {snap.format}, this code reads {SNAPSHOT_FORMAT}"
    if snap.fold_version != FOLD_VERSION:
        return None, f"fold version {snap.fold_version}, this code folds version {FOLD_VERSION} (stale)"
    if snap.stream != stream or snap.n != n:
        return None, f"stored as {stream}#{n} but says {snap.stream}#{snap.n}"
    if state_digest(snap.state) != snap.state_digest:
        return None, "state does not match its digest (corrupted)"
    last = next(event_log.read_stream(stream, from_n=n - 1), None) if n > 0 else None
    if last is None or last.n != n - 1:
        return None, f"the log holds no record {stream}#{n - 1}"
    if _chain(snap.prev_digest, record_digest_bytes(last)) != snap.digest:
        return None, f"digest does not continue from the logged record #{n - 1} (stale or corrupted)"
    return snap, ""


def load_nearest(event_log: Log, stream: str, n: int, task: TaskView | None) -> tuple[EpisodeFold | None, int]:
    """The fold at the nearest valid snapshot at or before ``n`` (None if none) and the events touched checking."""
    index = read_index(event_log, stream)
    if index is None:
        return None, 0
    touched = 0
    for pos in sorted((p for p in index.positions if 0 < p <= n), reverse=True):
        snap, why = validate(event_log, stream, pos, event_log.get_snapshot(snapshot_key(stream, pos)))
        touched += 1
        if snap is None:
            log.warning("snapshot ignored", stream=stream, n=pos, reason=why)
            continue
        return resume_fold(stream, task, pos, snap.state, StreamDigest.restore(snap.digest, pos)), touched
    return None, touched


def episode_streams(event_log: Log) -> Iterator[tuple[str, int]]:
    yield from event_log.streams(EPISODE)


@attrs.frozen
class SnapshotPass:
    streams: int
    snapshots: int
    events: int


def build_snapshots(event_log: Log, every: int, streams: list[str] | None = None) -> SnapshotPass:
    """Fold each episode stream from its start; store a snapshot after every ``every`` records."""
    if every < 1:
        raise ValueError("snapshot interval must be >= 1")
    targets = streams if streams is not None else [s for s, _ in episode_streams(event_log)]
    written = events = 0
    for stream in targets:
        task = task_view(event_log, task_id_of(event_log, stream))
        f = start_fold(stream, task)
        positions: list[int] = []
        prev = f.digest.hexdigest()
        for record in event_log.read_stream(stream):
            prev = f.digest.hexdigest()
            f.feed(record)
            events += 1
            if f.n % every == 0:
                put(event_log, f, prev)
                positions.append(f.n)
                written += 1
        event_log.put_snapshot(index_key(stream), _enc.encode(SnapshotIndex(every=every, positions=positions)))
    return SnapshotPass(streams=len(targets), snapshots=written, events=events)


def put(event_log: Log, f: EpisodeFold, prev_digest: str) -> None:
    state = f.state
    snap = Snapshot(format=SNAPSHOT_FORMAT, fold_version=FOLD_VERSION, stream=f.stream, n=f.n,
                    digest=f.digest.hexdigest(), prev_digest=prev_digest, state_digest=state_digest(state), state=state)
    event_log.put_snapshot(snapshot_key(f.stream, f.n), encode_snapshot(snap))


def check_all(event_log: Log) -> list[SnapshotProblem]:
    """Recompute every episode stream's chain digest from its start and compare every snapshot (slow, full)."""
    problems: list[SnapshotProblem] = []
    for stream, _ in episode_streams(event_log):
        index = read_index(event_log, stream)
        if index is None:
            continue
        wanted = set(index.positions)
        task = task_view(event_log, task_id_of(event_log, stream))
        f = start_fold(stream, task)
        for record in event_log.read_stream(stream):
            f.feed(record)
            if f.n in wanted:
                raw = event_log.get_snapshot(snapshot_key(stream, f.n))
                snap, why = validate(event_log, stream, f.n, raw)
                if snap is not None and snap.digest != f.digest.hexdigest():
                    why = "chain digest differs from a fold from the start"
                elif snap is not None and state_digest(snap.state) != state_digest(f.state):
                    why = "state differs from a fold from the start"
                if why:
                    problems.append(SnapshotProblem(stream=stream, n=f.n, reason=why))
                wanted.discard(f.n)
        problems.extend(SnapshotProblem(stream=stream, n=p, reason="beyond the end of the stream") for p in sorted(wanted))
    return problems


def snapshot_value(event_log: Log, stream: str, n: int) -> Any:
    """The decoded snapshot (for tools and tests); None if absent or undecodable."""
    raw = event_log.get_snapshot(snapshot_key(stream, n))
    try:
        return None if raw is None else _snap_dec.decode(raw)
    except msgspec.MsgspecError:
        return None


@attrs.frozen
class Seek:
    """The state after ``n`` records, the snapshot used (or None) and the events touched."""

    stream: str
    n: int
    state: DbState
    digest: str
    touched: int
    snapshot_n: int | None


def seek(log: Log, stream: str, n: int, *, task: TaskView | None = None, use_snapshots: bool = True) -> Seek:
    """The episode's state after its first ``n`` records (clamped to the stream's length)."""
    length = log.stream_length(stream)
    n = max(0, min(n, length))
    if task is None:
        task = task_view(log, task_id_of(log, stream))
    f: EpisodeFold | None = None
    touched = 0
    snap_n: int | None = None
    if use_snapshots:
        f, touched = load_nearest(log, stream, n, task)
        snap_n = f.n if f is not None else None
    if f is None:
        f = start_fold(stream, task)
    fold_to(log, f, n)
    return Seek(stream=stream, n=f.n, state=f.state, digest=f.digest.hexdigest(), touched=touched + f.touched,
                snapshot_n=snap_n)

"""Checkpoints of the run projection in the log's own database, so a command folds only what follows.

A checkpoint is the :class:`RunView` of :func:`scaleenv._replay.partial.fold_log` (with
exact stream digests) through some seq, stored with :meth:`Log.put_checkpoint` under that
seq in the log's ``checkpoints`` database. Its value is ``blake2b-128(payload) + payload``,
the payload a msgpack :class:`Checkpoint`: the format and fold versions, the seq it
covers, a digest of the stored bytes of the record at that seq, the run digest of what
it folded (its stream digests), and the view without its episodes: each episode (its
summary, state and stream digest) is an entry of the log's ``checkpoint_entries``
database, read only when asked for (:mod:`scaleenv._replay.stored`). So loading a
checkpoint costs the same whatever the number of episodes, and a save writes only the
episodes that changed since the checkpoint it continued. Its tasks are stored without
their database states (most of a task's bytes), which are read from the task's stream
when asked for (:mod:`scaleenv._replay.stored_tasks`).

:func:`project` loads the newest checkpoint that passes every check, folds the records
after it and (on a writable log) stores a new checkpoint. A checkpoint is never trusted
silently; it is ignored, with a one-line warning, when:

1. its checksum does not match its bytes (damaged);
2. its format or fold version is not this code's (an older format, or a fold whose
   meaning changed since: bump :data:`FOLD_VERSION` when ``apply_partial`` or
   ``apply_summary`` change what a log means);
3. it covers a seq beyond the end of the log, or the log's record at that seq is not the
   one it folded (stale: the log was replaced or rewritten);
4. its stream digests (those of streams other than episodes', and the sum of the
   episodes' event counts) do not count its events.

An episode entry that is damaged is ignored the same way, alone: that episode is folded
from its own stream (see :mod:`scaleenv._replay.stored`).

The next older checkpoint is then tried, and the fold starts from the log's start when
none is valid.
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from typing import Any, NamedTuple

import msgspec

from scaleenv._logs import get_logger
from scaleenv._store.log import Log
from scaleenv._store.record import StreamDigest, run_digest
from scaleenv._streams import episode_stream

from .episode import EpisodeSummary
from .partial import fold_log
from .projection import DomainView, RunView
from .stored import (
    EPISODE_PREFIX,
    RunProgress,
    StoredDigests,
    StoredEpisodes,
    encode_entry,
    finished_prefixes,
    progress_problem,
    run_progress,
)
from .stored_tasks import StoredTask, TaskSource, golden_bytes, light, stored_flags

log = get_logger("scaleenv._replay.checkpoint")

CHECKPOINT_FORMAT = 3
"""The layout of a checkpoint's payload (1: episodes inside it, decoded at every load; 2: episodes as entries;
3: tasks without their database states, read from the log when asked for)."""
FOLD_VERSION = 1
"""The meaning of the partial fold a checkpoint holds the result of."""
KEEP = 2
"""Checkpoints kept per log (the newest; an older one is the fallback for a damaged newer one)."""
_SUM = 16


class _Head(msgspec.Struct):
    format: int
    fold_version: int = 0


class Checkpoint(msgspec.Struct, kw_only=True):
    format: int
    fold_version: int
    seq: int
    last_record: str
    """blake2b of the stored bytes of record ``seq`` (the last one folded)."""
    run_digest: str
    """:func:`run_digest` of ``digests``: a digest of everything folded."""
    events: int
    llm_calls: int
    llm_invalid: int
    types: dict[str, int]
    digests: dict[str, tuple[str, int]]
    """The digests of the streams other than episodes' (those are in the episodes' entries)."""
    episodes: int
    """How many episodes it holds (as entries of the ``checkpoint_entries`` db)."""
    episode_events: int
    """The events of the episodes' streams."""
    finished_prefix: dict[str, int]
    """Per task, how many of its attempts g0, g1, ... had all finished (what is left to
    run is known without reading their entries)."""
    domains: dict[str, DomainView]
    tasks: dict[str, StoredTask]
    """The tasks without their states (:mod:`scaleenv._replay.stored_tasks`: every field of
    a ``TaskView`` but ``initial_state`` and ``expected_final``)."""
    task_states: dict[str, int] = {}
    """Per task with any, which of its states are not None (``stored_tasks.HAS_*`` flags)."""
    goldens: dict[str, msgspec.Raw] = {}
    """Per task with one, its golden chain (msgpack bytes: decoded when first read)."""
    progress: RunProgress | None = None
    """The run-level summary of ``finished_prefix`` over the kept tasks (absent in
    checkpoints written before it existed: what is left is then asked per task)."""


def _enc_hook(obj: object) -> object:
    if isinstance(obj, StoredTask):  # a decoded checkpoint's task, stored again as it was: its light fields
        return light(obj)
    raise NotImplementedError(f"cannot encode {type(obj).__name__}")


_enc = msgspec.msgpack.Encoder(enc_hook=_enc_hook)
_head_dec = msgspec.msgpack.Decoder(_Head)
_dec = msgspec.msgpack.Decoder(Checkpoint)


def _record_digest(raw: bytes | memoryview) -> str:
    return hashlib.blake2b(raw, digest_size=16).hexdigest()


def _stored(event_log: Log, seq: int) -> bytes | None:
    for chunk in event_log.read_raw(seq, seq):
        for s, raw in chunk:
            if s == seq:
                return bytes(raw)
    return None


class Encoded(NamedTuple):
    value: bytes
    entries: list[tuple[bytes, bytes]]
    finished_prefix: dict[str, int]
    progress: RunProgress


def encode(event_log: Log, view: RunView, seq: int) -> Encoded:
    """The stored value of a checkpoint of ``view``, the fold of records ``1..seq`` of
    ``event_log``, and the episode entries to write with it (every episode, or for a view
    loaded from a checkpoint of this log, those decoded or added since); with the finished
    prefixes and run progress it holds."""
    if view.lean:
        raise ValueError("a lean view (finished episodes stripped) cannot be checkpointed")
    if not view.digested:
        raise ValueError("a checkpoint holds stream digests: fold with digests=True")
    raw = _stored(event_log, seq)
    if raw is None:
        raise ValueError(f"the log holds no record {seq}")
    episodes = view.episodes
    if isinstance(episodes, StoredEpisodes) and episodes.log is event_log:
        changed = sorted(set(episodes.changed()) | set(episodes.changed_digests()))
    else:
        changed = sorted(episodes)
    entries = []
    for eid in changed:
        ep = episodes[eid]
        if not isinstance(ep, EpisodeSummary):
            raise ValueError(f"a checkpoint holds episode summaries (replay.partial), not whole episodes ({eid})")
        entries.append((eid.encode(), encode_entry(eid, seq, ep, view.digests[episode_stream(eid)], view.tasks)))
    others: dict[str, tuple[str, int]] = {}
    hexes: dict[str, str] = {}
    episode_events = 0
    for s, d in view.digests.items():
        hexes[s] = d.hexdigest()
        if s.startswith(EPISODE_PREFIX):
            episode_events += d.count
        else:
            others[s] = (hexes[s], d.count)
    prefixes = finished_prefixes(view.tasks, episodes)
    progress = run_progress(view.tasks, prefixes)
    payload = _enc.encode(Checkpoint(
        format=CHECKPOINT_FORMAT, fold_version=FOLD_VERSION, seq=seq, last_record=_record_digest(raw),
        run_digest=run_digest(hexes), events=view.events, llm_calls=view.llm_calls, llm_invalid=view.llm_invalid,
        types=view.types, digests=others, episodes=len(episodes), episode_events=episode_events,
        finished_prefix=prefixes, domains=view.domains, progress=progress,
        tasks={tid: light(t) for tid, t in view.tasks.items()},  # type: ignore[misc]
        task_states={tid: f for tid, t in view.tasks.items() if (f := stored_flags(t))},
        goldens={tid: g for tid, t in view.tasks.items() if (g := golden_bytes(t)) is not None},
    ))
    return Encoded(hashlib.blake2b(payload, digest_size=_SUM).digest() + payload, entries, prefixes, progress)


def save(event_log: Log, view: RunView, seq: int) -> None:
    """Store a checkpoint of ``view`` (the fold of records ``1..seq``) and its changed
    episodes' entries in one transaction, keeping the newest :data:`KEEP`. A view read
    from a checkpoint then knows the run progress the new one holds (it is the fold
    through ``seq`` too), so asking it what is left costs nothing per episode."""
    encoded = encode(event_log, view, seq)
    event_log.put_checkpoint(seq, encoded.value, keep=KEEP, entries=encoded.entries)
    if isinstance(view.episodes, StoredEpisodes):
        view.episodes.finished_prefix = encoded.finished_prefix
        view.episodes.progress = encoded.progress


def resealed(value: bytes, **changes: Any) -> bytes:
    """A stored checkpoint with fields of its :class:`Checkpoint` changed and its checksum
    made to hold again (what another version of this code could have written: for tests
    of the checks that do not rely on the checksum)."""
    cp = _dec.decode(memoryview(value)[_SUM:])
    payload = _enc.encode(msgspec.structs.replace(cp, **changes))
    return hashlib.blake2b(payload, digest_size=_SUM).digest() + payload


def validate(event_log: Log, seq: int, value: bytes | None, last_seq: int) -> tuple[RunView | None, str]:
    """The view a stored checkpoint holds, or None and why it cannot be trusted. Its
    episodes (and their stream digests) are read from the log when asked for, while
    ``event_log`` is open."""
    if value is None:
        return None, "missing"
    payload = memoryview(value)[_SUM:]
    if len(value) <= _SUM or hashlib.blake2b(payload, digest_size=_SUM).digest() != value[:_SUM]:
        return None, "damaged (checksum mismatch)"
    try:
        head = _head_dec.decode(payload)
    except msgspec.MsgspecError as exc:
        return None, f"undecodable header: {exc}"
    if head.format != CHECKPOINT_FORMAT:
        return None, f"format {head.format}, this code reads format {CHECKPOINT_FORMAT}"
    if head.fold_version != FOLD_VERSION:
        return None, f"fold version {head.fold_version}, this code folds version {FOLD_VERSION}"
    try:
        cp = _dec.decode(payload)
    except msgspec.MsgspecError as exc:
        return None, f"undecodable: {exc}"
    if cp.seq != seq:
        return None, f"stored under seq {seq} but says {cp.seq}"
    if seq > last_seq:
        return None, f"stale: covers seq {seq} but the log ends at seq {last_seq}"
    raw = _stored(event_log, seq)
    if raw is None or _record_digest(raw) != cp.last_record:
        return None, f"stale: the log's record {seq} is not the one it folded"
    if sum(n for _, n in cp.digests.values()) + cp.episode_events != cp.events or \
            any(s.startswith(EPISODE_PREFIX) for s in cp.digests):
        return None, "inconsistent: its stream digests do not give its run digest or event count"
    progress = cp.progress
    if progress is not None:
        problem = progress_problem(progress, cp.tasks, cp.finished_prefix)
        if problem:
            log.warning(f"run progress of the projection checkpoint at seq {seq} of {event_log.path} ignored: "
                        f"{problem}; what is left is asked per task")
            progress = None
    source = TaskSource(event_log, seq)
    for tid, task in cp.tasks.items():
        source.adopt(task, cp.task_states.get(tid, 0), cp.goldens.get(tid))
    episodes = StoredEpisodes(event_log, seq, cp.tasks, cp.episodes, cp.finished_prefix, progress)
    digests = StoredDigests({s: StreamDigest.restore(d, n) for s, (d, n) in cp.digests.items()}, episodes)
    view = RunView(domains=cp.domains, tasks=cp.tasks, episodes=episodes,  # type: ignore[arg-type]
                   llm_calls=cp.llm_calls, llm_invalid=cp.llm_invalid, events=cp.events, types=cp.types,
                   digested=True, digests=digests)  # type: ignore[arg-type]
    return view, ""


def load_newest(event_log: Log, last_seq: int | None = None) -> tuple[RunView, int] | None:
    """The newest valid checkpoint's view and the seq it covers (None if none is valid);
    each one ignored is logged as a one-line warning."""
    last = event_log.last_seq() if last_seq is None else last_seq
    for seq in reversed(event_log.checkpoint_seqs()):
        view, why = validate(event_log, seq, event_log.get_checkpoint(seq), last)
        if view is not None:
            return view, seq
        log.warning(f"projection checkpoint at seq {seq} of {event_log.path} ignored: {why}")
    return None


class Projected(NamedTuple):
    """What :func:`projected` did: the view, the checkpoint it started from (0: none) and
    how many records it folded after it."""

    view: RunView
    checkpoint: int
    folded: int


SEGMENT = 100_000
"""Records a lean projection of a writable log folds between two checkpoints (see :func:`projected`)."""


def _fold_in_segments(event_log: Log, view: RunView, seq: int, last: int, segment: int) -> RunView:
    """Records ``seq+1..last`` folded into ``view`` ``segment`` at a time, each segment
    checkpointed and the view then read back from that checkpoint (its episodes lazily),
    so the episodes held in memory are at most one segment's."""
    while seq < last:
        stop = min(last, seq + segment)
        view = fold_log(event_log, view, from_seq=seq + 1, to_seq=stop, digests=True)
        save(event_log, view, stop)
        reread, why = validate(event_log, stop, event_log.get_checkpoint(stop), last)
        if reread is None:  # not expected: it was just written; go on with the view in memory
            log.warning(f"projection checkpoint at seq {stop} of {event_log.path} not read back: {why}")
        else:
            view = reread
        seq = stop
    return view


def projected(event_log: Log, *, write: bool | None = None, digests: bool = True, lean: bool = False,
              segment: int = SEGMENT) -> Projected:
    """The whole log folded (episodes as summaries): the newest valid checkpoint plus the
    records after it. ``write`` (default: when the log is writable) stores a checkpoint
    when records were folded past the one loaded. ``digests=False`` lets a reader that
    needs no stream digests fold a log without checkpoints faster (the view then has none).

    ``lean``: memory that does not grow with the episodes finished after the checkpoint
    (a planner's view). With ``write``, the records are folded ``segment`` at a time, each
    segment checkpointed and read back (the view is an ordinary one, its episodes read
    lazily); without, the view is lean (``RunView.lean``: finished episodes stripped to
    their rewards, end and counts; no stream digests).

    While the log is open and has not grown, the next call returns the same view (a
    command's stages share one load of the checkpoint; see :class:`_Newest`): a reader
    treats the view as read-only, and one that folds into it gets its own next time.

    Synchronous; reads one consistent prefix of the log (records appended meanwhile wait
    for the next call)."""
    write = not event_log.readonly if write is None else write
    newest = _newest_of(event_log)
    last = event_log.last_seq()
    held = newest.get(last)
    if held is not None:
        return Projected(held, last, 0)
    found = load_newest(event_log, last)
    if found is None:
        view, seq = RunView(digested=digests or write), 0
    else:
        view, seq = found
    if last > seq:
        if lean and write:
            view = _fold_in_segments(event_log, view, seq, last, segment)
            newest.hold(last, view)  # read back from the checkpoint at ``last``
        elif lean:
            view.digested = False  # a planning view needs none: the lean decoding is faster
            view = fold_log(event_log, view, from_seq=seq + 1, to_seq=last, lean=True)
        else:
            view = fold_log(event_log, view, from_seq=seq + 1, to_seq=last, digests=view.digested)
            if write:
                save(event_log, view, last)
    else:  # the checkpoint at ``last`` as loaded: the next caller may share it
        newest.hold(last, view)
    return Projected(view, seq, last - seq)


class _Newest:
    """A log's newest projection (the fold through its last seq, as a checkpoint holds it)
    while the log is open: the stages of one command, and the summary after them, share
    it instead of each loading the checkpoint again, as long as the log has not grown.

    Never extended in place: a call after the log grew loads the newest checkpoint and
    folds into that new view (the view held stays the fold through its seq for whoever
    still reads it). A view changed by its reader (any event folded into it) is not
    handed out again. Cleared just before the log closes, ahead of the close hooks of the
    views' lazy parts (registered before any of them), so a view nobody else holds reads
    nothing more."""

    def __init__(self, event_log: Log) -> None:
        self.held: tuple[int, RunView, int] | None = None  # (seq, view, its events then): one assignment, for threads
        event_log.on_close(self.clear)

    def get(self, last: int) -> RunView | None:
        held = self.held
        if held is None:
            return None
        seq, view, events = held
        return view if seq == last and view.events == events and view.digested and not view.lean else None

    def hold(self, seq: int, view: RunView) -> None:
        self.held = (seq, view, view.events) if view.digested and not view.lean else None

    def clear(self) -> None:
        self.held = None


_newest: weakref.WeakKeyDictionary[Log, _Newest] = weakref.WeakKeyDictionary()
_newest_lock = threading.Lock()


def _newest_of(event_log: Log) -> _Newest:
    with _newest_lock:
        newest = _newest.get(event_log)
        if newest is None:
            newest = _newest[event_log] = _Newest(event_log)
        return newest


def project(event_log: Log, *, write: bool | None = None, digests: bool = True, lean: bool = False) -> RunView:
    """The view of :func:`projected`."""
    return projected(event_log, write=write, digests=digests, lean=lean).view

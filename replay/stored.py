"""A checkpoint's episodes, kept in the log and decoded one at a time when asked for.

A projection checkpoint (:mod:`scaleenv._replay.checkpoint`) stores each episode as one
entry of the log's ``checkpoint_entries`` database, keyed by episode id: a fixed header
(checksum, the checkpoint seq that wrote it, whether the episode ended and was rewarded,
its latest reward, its stream digest and event count) and the msgpack of its
:class:`~scaleenv._replay.episode.EpisodeSummary` with its state as a change from its
task's initial state. Loading a checkpoint reads none of them; :class:`StoredEpisodes`
(the view's ``episodes``) and :class:`StoredDigests` (its ``digests``) read an entry
when a key is asked for, so knowing what is left to run costs one small read per episode
asked about (:meth:`StoredEpisodes.finished` reads the header only) and nothing per
episode not asked about.

An entry is shared by every checkpoint: a save rewrites the entries of the episodes that
changed since the checkpoint it continued (those it decoded or added) and leaves the
others, which still equal their fold through the new seq. An entry is used for a
checkpoint at seq S only when it was written at or before S and its checksum holds;
otherwise (written by a newer checkpoint that was then found damaged, or damaged
itself) the episode is folded from its own stream's records through S (with a warning
when damaged), so a lazily read episode always equals the cold fold's.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from typing import Any

import attrs
import msgspec

from scaleenv._logs import get_logger
from scaleenv._model.state import apply_delta, compute_delta
from scaleenv._store.events.episodes import EpisodeStarted
from scaleenv._store.events.tasks import RecordChange
from scaleenv._store.log import Log
from scaleenv._store.record import StreamDigest
from scaleenv._store.specs import DbState
from scaleenv._streams import episode_id, episode_stream

from .episode import EpisodeSummary, apply_summary
from .projection import TaskView

log = get_logger("scaleenv._replay.stored")

_HEAD = struct.Struct("<IIQBdQ32s")
"""crc32 of the key and the rest of the header, crc32 of the body, written at (checkpoint
seq), flags, latest reward (0.0 when none), stream event count, stream digest (32 bytes)."""
HEAD_SIZE = _HEAD.size
ENDED, REWARDED = 1, 2
EPISODE_PREFIX = "episode/"


class EpisodeState(msgspec.Struct, array_like=True):
    """An episode's database in a checkpoint: the change from its task's initial state
    (most of a state is the task's, shared in memory but not on disk), or the whole state
    where that change does not rebuild it exactly."""

    delta: list[RecordChange] | None = None
    whole: DbState | None = None


class StoredEpisode(msgspec.Struct, array_like=True):
    summary: EpisodeSummary
    """Without its ``state``, which is ``state``."""
    state: EpisodeState | None


class _StoredSummary(msgspec.Struct, array_like=True):
    summary: EpisodeSummary
    state: msgspec.Raw  # left undecoded (nil, or an EpisodeState)


_enc = msgspec.msgpack.Encoder()
_dec = msgspec.msgpack.Decoder(StoredEpisode)
_summary_dec = msgspec.msgpack.Decoder(_StoredSummary)


def _base(tasks: dict[str, TaskView], ep: EpisodeSummary) -> DbState:
    task = tasks.get(ep.task_id)
    return task.initial_state if task is not None and task.initial_state is not None else {}


def pack_state(tasks: dict[str, TaskView], ep: EpisodeSummary) -> EpisodeState | None:
    if ep.state is None:
        return None
    base = _base(tasks, ep)
    delta = compute_delta(base, ep.state)
    return EpisodeState(delta=delta) if apply_delta(base, delta) == ep.state else EpisodeState(whole=ep.state)


def unpack_state(tasks: dict[str, TaskView], ep: EpisodeSummary, packed: EpisodeState | None) -> DbState | None:
    if packed is None:
        return None
    if packed.whole is not None:
        return packed.whole
    return apply_delta(_base(tasks, ep), packed.delta or [])


def encode_entry(eid: str, written_at: int, ep: EpisodeSummary, digest: StreamDigest,
                 tasks: dict[str, TaskView]) -> bytes:
    """The stored entry of episode ``eid`` (see the module doc)."""
    reward = ep.reward
    flags = (ENDED if ep.ended is not None else 0) | (REWARDED if reward is not None else 0)
    body = _enc.encode(StoredEpisode(attrs.evolve(ep, state=None), pack_state(tasks, ep)))
    head = _HEAD.pack(0, zlib.crc32(body), written_at, flags, reward.reward if reward is not None else 0.0,
                      digest.count, bytes.fromhex(digest.hexdigest()))[4:]
    return struct.pack("<I", zlib.crc32(head, zlib.crc32(eid.encode()))) + head + body


@attrs.frozen
class Entry:
    """An entry's header, checked."""

    body_crc: int
    written_at: int
    flags: int
    reward: float
    count: int
    digest: bytes


def read_head(key: bytes, value: bytes) -> Entry | None:
    """The header of an entry (``value`` may be the header alone), or None when its
    checksum does not hold."""
    if len(value) < HEAD_SIZE:
        return None
    crc, body_crc, written_at, flags, reward, count, digest = _HEAD.unpack_from(value)
    if zlib.crc32(value[4:HEAD_SIZE], zlib.crc32(key)) != crc:
        return None
    return Entry(body_crc, written_at, flags, reward, count, digest)


def read_body(entry: Entry, value: bytes) -> memoryview | None:
    """The body of a whole entry whose header is ``entry``, or None when its checksum does not hold."""
    body = memoryview(value)[HEAD_SIZE:]
    return body if zlib.crc32(body) == entry.body_crc else None


class StoredEpisodes(MutableMapping[str, EpisodeSummary]):
    """The episodes of a checkpoint at ``seq``: read from the log's entries when asked for
    (decoded ones are kept), plus those folded or added since (see the module doc).

    Reads go to ``event_log`` while it is open; when it closes, the bytes of the entries
    not decoded yet are kept (:meth:`_detach`), so a view may outlive its log. Every
    decoded or added episode counts as changed (:meth:`changed`) for the next save, since
    a caller may change it in place. Not safe to share between threads while it reads."""

    def __init__(self, event_log: Log, seq: int, tasks: dict[str, TaskView], count: int,
                 finished_prefix: dict[str, int] | None = None, progress: RunProgress | None = None) -> None:
        self.log, self.seq, self.tasks = event_log, seq, tasks
        self.finished_prefix = finished_prefix or {}
        """Per task, how many of its local attempts (``g0``, ``g1``, ...) had all finished
        at ``seq``: those are known finished without reading their entries (an episode
        with its reward keeps it)."""
        self.progress = progress
        """The run-level summary of :attr:`finished_prefix` over the kept tasks, while the
        view is the fold through ``seq`` (a fold past it clears it: see
        :func:`scaleenv._replay.partial.fold_raw`); None: not known, ask per task."""
        self.live: dict[str, EpisodeSummary] = {}
        self.live_digests: dict[str, StreamDigest] = {}
        self._stored_count = count
        self._added: set[str] = set()
        self._removed: set[str] = set()
        self.damaged = 0
        """Damaged entries met (each episode folded from its stream instead)."""
        self._absent: set[str] = set()  # not in this checkpoint (looked up already)
        self._detached: dict[bytes, bytes] | None = None  # the entries, once the log closed
        event_log.on_close(self._detach)

    # -- one entry ----------------------------------------------------------------
    def _damaged(self, eid: str) -> None:
        self.damaged += 1
        if self.damaged == 1:  # once: a damaged page may hold many entries
            log.warning(f"checkpoint entry of episode {eid!r} in {self.log.path} ignored: damaged "
                        "(checksum mismatch); folded from its stream (and any other damaged entry, unreported)")

    def _entry(self, eid: str, whole: bool = False) -> tuple[Entry | None, bytes, bool]:
        """(the entry's header if usable at ``seq``, its bytes (the header alone unless
        ``whole``), whether the episode exists at ``seq`` at all); an unusable entry
        means: fold the episode from its stream (:meth:`_fold`)."""
        if eid in self._absent:
            return None, b"", False
        key = eid.encode()
        if self._detached is not None:
            value = self._detached.get(key)
        else:
            value = self.log.get_checkpoint_entry(key, None if whole else HEAD_SIZE)
        if value is None:
            self._absent.add(eid)
            return None, b"", False
        entry = read_head(key, value)
        if entry is None:
            self._damaged(eid)
            return None, b"", True
        if entry.written_at > self.seq:
            return None, b"", True  # written by a newer checkpoint: not this one's state
        return entry, value, True

    def _detach(self) -> None:
        """Before the log closes: keep the bytes of the entries not decoded yet (episodes
        whose entry cannot be used are folded from their streams now), so the mapping
        still answers afterwards. Costs a copy of those entries, only for a view that
        outlives its log."""
        kept: dict[bytes, bytes] = {}
        for key, value in self.log.checkpoint_entries():
            eid = key.decode()
            if eid in self.live or eid in self._removed or eid in self._added:
                continue
            entry = read_head(key, value)
            if entry is not None and entry.written_at <= self.seq and read_body(entry, value) is not None:
                kept[key] = value
            else:
                if entry is None or entry.written_at <= self.seq:
                    self._damaged(eid)
                self._load(eid)
        self._detached = kept

    def _fold(self, eid: str) -> tuple[EpisodeSummary, StreamDigest] | None:
        """The episode folded from its own stream's records through ``seq`` (None: it has none)."""
        ep, digest = EpisodeSummary(episode_id=eid), StreamDigest()
        for r in self.log.read_stream(episode_stream(eid)):
            if r.seq > self.seq:
                break
            digest.update(r)
            if isinstance(r.event, EpisodeStarted):
                task = self.tasks.get(r.event.task_id)
                ep.state = task.initial_state if task else None
            apply_summary(ep, r.event, r.type)
        return (ep, digest) if digest.count else None

    def _load(self, eid: str) -> bool:
        """Decode ``eid`` into :attr:`live` (False: the checkpoint has no such episode)."""
        if eid in self._removed or eid in self._added:
            return False
        entry, value, exists = self._entry(eid, whole=True)
        if not exists:
            return False
        body = read_body(entry, value) if entry is not None else None
        if entry is not None and body is None:
            self._damaged(eid)
        if entry is not None and body is not None:
            stored = _dec.decode(body)
            ep = stored.summary
            ep.state = unpack_state(self.tasks, ep, stored.state)
            digest = StreamDigest.restore(entry.digest.hex(), entry.count)
        else:
            folded = self._fold(eid)
            if folded is None:
                self._absent.add(eid)  # only in checkpoints newer than this one
                return False
            ep, digest = folded
        self.live[eid] = ep
        self.live_digests.setdefault(eid, digest)
        return True

    def finished(self, eid: str) -> bool:
        """Whether episode ``eid`` has its reward, reading only its entry's header."""
        ep = self.live.get(eid)
        if ep is not None:
            return ep.reward is not None
        if eid in self._removed or eid in self._added:
            return False
        tid, _, attempt = eid.rpartition("/")
        known = self.finished_prefix.get(tid, 0)
        if known and attempt[:1] == "g" and attempt[1:].isdigit() and int(attempt[1:]) < known \
                and episode_id(tid, int(attempt[1:])) == eid:
            return True
        entry, _, exists = self._entry(eid)
        if entry is not None:
            return bool(entry.flags & REWARDED)
        return exists and self._load(eid) and self.live[eid].reward is not None

    def ended(self, eid: str) -> bool:
        """Whether episode ``eid`` has ended (an ``EpisodeEnded``), reading only its entry's header."""
        ep = self.live.get(eid)
        if ep is not None:
            return ep.ended is not None
        if eid in self._removed or eid in self._added:
            return False
        entry, _, exists = self._entry(eid)
        if entry is not None:
            return bool(entry.flags & ENDED)
        return exists and self._load(eid) and self.live[eid].ended is not None

    def digest(self, eid: str) -> StreamDigest | None:
        """Episode ``eid``'s stream digest (its entry's header; None: no such episode)."""
        d = self.live_digests.get(eid)
        if d is not None:
            return d
        if eid in self.live or eid in self._removed or eid in self._added:
            return None  # added since the checkpoint, without a digest yet
        entry, _, exists = self._entry(eid)
        if entry is not None:
            d = self.live_digests[eid] = StreamDigest.restore(entry.digest.hex(), entry.count)
            return d
        if exists and self._load(eid):
            return self.live_digests[eid]
        return None

    # -- the mapping ----------------------------------------------------------------
    def __getitem__(self, eid: str) -> EpisodeSummary:
        ep = self.live.get(eid)
        if ep is None:
            if not self._load(eid):
                raise KeyError(eid)
            ep = self.live[eid]
        return ep

    def __contains__(self, eid: object) -> bool:
        if not isinstance(eid, str):
            return False
        if eid in self.live:
            return True
        if eid in self._removed or eid in self._added:
            return False
        entry, _, exists = self._entry(eid)
        return entry is not None or (exists and self._load(eid))

    def __setitem__(self, eid: str, ep: EpisodeSummary) -> None:
        if eid not in self.live and eid not in self._added:
            if eid in self._removed:
                self._removed.discard(eid)
                self._stored_count += 1
            elif eid not in self:
                self._added.add(eid)
                self._absent.discard(eid)
        self.live[eid] = ep

    def __delitem__(self, eid: str) -> None:
        if eid not in self:
            raise KeyError(eid)
        self.live.pop(eid, None)
        self.live_digests.pop(eid, None)
        if eid in self._added:
            self._added.discard(eid)
        else:
            self._removed.add(eid)
            self._stored_count -= 1

    def __len__(self) -> int:
        return self._stored_count + len(self._added)

    def __iter__(self) -> Iterator[str]:
        """The stored episodes (by id), then those added since; each read once."""
        for eid, value in self._stored():
            if eid in self.live:
                yield eid
                continue
            entry = read_head(eid.encode(), value)
            if entry is not None and entry.written_at <= self.seq:
                yield eid
            elif self._load(eid):  # damaged, or newer than this checkpoint: from its stream
                yield eid
        yield from [e for e in self.live if e in self._added]

    def summaries(self) -> Iterator[EpisodeSummary]:
        """Every episode, like iterating the mapping's values, but a stored one is decoded
        without its database state (``state`` None: neither decoded nor rebuilt from its
        task's) and not kept in memory. For a reader of counts, ends, rewards and messages
        over a whole run (the run summary): memory does not grow with the episodes read."""
        for eid, value in self._stored():
            ep = self.live.get(eid)
            if ep is not None:
                yield ep
                continue
            entry = read_head(eid.encode(), value)
            body = read_body(entry, value) if entry is not None and entry.written_at <= self.seq else None
            if body is not None:
                yield _summary_dec.decode(body).summary
            elif self._load(eid):  # damaged, or newer than this checkpoint: from its stream
                yield self.live[eid]
        yield from [ep for e, ep in self.live.items() if e in self._added]

    def _stored(self) -> Iterator[tuple[str, bytes]]:
        """(id, entry bytes) of the stored episodes not removed (b"" for one decoded before
        the log closed)."""
        if self._detached is None:
            entries: Iterable[tuple[bytes, bytes]] = self.log.checkpoint_entries()
        else:  # the bytes kept, and the episodes decoded before the log closed (not among them)
            kept = self._detached
            keys = set(kept) | {e.encode() for e in self.live if e not in self._added}
            entries = [(k, kept.get(k, b"")) for k in sorted(keys)]
        for key, value in entries:
            eid = key.decode()
            if eid not in self._removed and eid not in self._added:
                yield eid, value

    def changed(self) -> dict[str, EpisodeSummary]:
        """The episodes decoded or added since loading (a save writes these)."""
        return self.live

    def changed_digests(self) -> dict[str, StreamDigest]:
        return self.live_digests

    def __repr__(self) -> str:
        return f"StoredEpisodes({self.log.path}, seq={self.seq}, {len(self)} episodes, {len(self.live)} decoded)"


class StoredDigests(MutableMapping[str, StreamDigest]):
    """A checkpoint's stream digests: the non-episode streams' in memory, the episode
    streams' read from their episodes' entries when asked for."""

    def __init__(self, others: dict[str, StreamDigest], episodes: StoredEpisodes) -> None:
        self.others = others
        self.episodes = episodes

    def __getitem__(self, stream: str) -> StreamDigest:
        if stream.startswith(EPISODE_PREFIX):
            d = self.episodes.digest(stream[len(EPISODE_PREFIX):])
            if d is None:
                raise KeyError(stream)
            return d
        return self.others[stream]

    def __setitem__(self, stream: str, d: StreamDigest) -> None:
        if stream.startswith(EPISODE_PREFIX):
            self.episodes.live_digests[stream[len(EPISODE_PREFIX):]] = d
        else:
            self.others[stream] = d

    def __delitem__(self, stream: str) -> None:
        if stream.startswith(EPISODE_PREFIX):
            if self.episodes.live_digests.pop(stream[len(EPISODE_PREFIX):], None) is None:
                raise KeyError(stream)
        else:
            del self.others[stream]

    def __iter__(self) -> Iterator[str]:
        yield from self.others
        for eid in self.episodes:
            if self.episodes.digest(eid) is not None:
                yield EPISODE_PREFIX + eid

    def __len__(self) -> int:
        return len(self.others) + len(self.episodes)

    def __contains__(self, stream: object) -> bool:
        if not isinstance(stream, str):
            return False
        if stream.startswith(EPISODE_PREFIX):
            return self.episodes.digest(stream[len(EPISODE_PREFIX):]) is not None
        return stream in self.others


class RunProgress(msgspec.Struct, kw_only=True, frozen=True):
    """How far the rollouts of a checkpoint's kept tasks had got, in the checkpoint's
    head: what is left to run is known from it without walking the tasks when nothing
    (or little) is left. A projection of :attr:`StoredEpisodes.finished_prefix` over the
    kept tasks, checked against it at load (:func:`progress_problem`)."""

    kept: int
    """Kept tasks."""
    ceiling: int
    """The most attempts ``g0, g1, ...`` all finished of any kept task."""
    lagging: dict[str, int]
    """The kept tasks with fewer all-finished attempts than :attr:`ceiling`: how many."""
    outside: int = 0
    """The all-finished attempts of tasks that are not kept (none in a run's log)."""

    @property
    def floor(self) -> int:
        """The fewest attempts all finished of any kept task (0 without kept tasks)."""
        return min(self.lagging.values(), default=self.ceiling) if self.kept else 0


def run_progress(tasks: Mapping[str, TaskView], finished_prefix: Mapping[str, int]) -> RunProgress:
    """The :class:`RunProgress` of a view's ``tasks`` whose finished prefixes are ``finished_prefix``."""
    kept = {tid: finished_prefix.get(tid, 0) for tid, t in tasks.items() if t.status == "kept"}
    ceiling = max(kept.values(), default=0)
    return RunProgress(kept=len(kept), ceiling=ceiling, lagging={t: n for t, n in kept.items() if n < ceiling},
                       outside=sum(n for t, n in finished_prefix.items() if t not in kept))


def progress_problem(progress: RunProgress, tasks: Mapping[str, TaskView], finished_prefix: Mapping[str, int]) -> str:
    """Why ``progress`` cannot be the summary of ``finished_prefix`` over the kept tasks
    (empty: it can). Costs a sum over the prefixes and a look at each lagging task, not a
    walk of the tasks: the head it came from is checksummed and names the record it
    covers, so this catches a summary written by faulty code, not a damaged one."""
    if progress.kept > len(tasks) or len(progress.lagging) > progress.kept:
        return f"it counts {progress.kept} kept tasks ({len(progress.lagging)} lagging) of {len(tasks)}"
    for tid, n in progress.lagging.items():
        task = tasks.get(tid)
        if task is None or task.status != "kept" or n >= progress.ceiling or finished_prefix.get(tid, 0) != n:
            return f"lagging task {tid!r} at {n} is not a kept task with {n} < {progress.ceiling} attempts finished"
    total = progress.ceiling * (progress.kept - len(progress.lagging)) + sum(progress.lagging.values()) + progress.outside
    if total != sum(finished_prefix.values()):
        return f"it counts {total} finished attempts, the prefixes {sum(finished_prefix.values())}"
    return ""


def left_to_run(tasks: Mapping[str, TaskView], episodes: Mapping[str, Any], attempts: int) -> list[tuple[str, int]]:
    """``(task id, attempt)`` of every local attempt ``g < attempts`` of a kept task that
    has no reward, by task id then attempt. On a checkpoint's episodes, the attempts known
    finished are not asked about, and with its :class:`RunProgress` only the lagging tasks
    are looked at when the others have ``attempts`` finished: a finished run's answer
    costs nothing per task or episode."""
    known: Mapping[str, int] = {}
    tids: Iterable[str] | None = None
    if isinstance(episodes, StoredEpisodes):
        known = episodes.finished_prefix
        progress = episodes.progress
        if progress is not None:
            if attempts <= progress.floor:
                return []
            if attempts <= progress.ceiling:
                tids = sorted(progress.lagging)
    left = []
    for tid in sorted(tasks) if tids is None else tids:
        if tasks[tid].status != "kept":
            continue
        for g in range(known.get(tid, 0), attempts):
            if not episode_finished(episodes, episode_id(tid, g)):
                left.append((tid, g))
    return left


def finished_prefixes(tasks: Iterable[str], episodes: Mapping[str, Any]) -> dict[str, int]:
    """Per task, how many of its local attempts ``g0, g1, ...`` have all finished (tasks
    with none left out); for a checkpoint's episodes, starting from the prefixes it knew."""
    known = episodes.finished_prefix if isinstance(episodes, StoredEpisodes) else {}
    out: dict[str, int] = {}
    for tid in tasks:
        g = known.get(tid, 0)
        while episode_finished(episodes, episode_id(tid, g)):
            g += 1
        if g:
            out[tid] = g
    return out


def episode_summaries(episodes: Mapping[str, Any]) -> Iterable[Any]:
    """A view's episodes for a reader that needs no database state: a checkpoint's are
    read without it, one at a time (:meth:`StoredEpisodes.summaries`); others as they are."""
    return episodes.summaries() if isinstance(episodes, StoredEpisodes) else episodes.values()


def episode_finished(episodes: Mapping[str, Any], eid: str) -> bool:
    """Whether episode ``eid`` of a view's ``episodes`` has its reward (for a checkpoint's
    episodes, read from the entry's header without decoding the episode)."""
    if isinstance(episodes, StoredEpisodes):
        return episodes.finished(eid)
    ep = episodes.get(eid)
    return ep is not None and ep.reward is not None


def episode_ended(episodes: Mapping[str, Any], eid: str) -> bool:
    """Whether episode ``eid`` of a view's ``episodes`` has ended (for a checkpoint's
    episodes, read from the entry's header without decoding the episode)."""
    if isinstance(episodes, StoredEpisodes):
        return episodes.ended(eid)
    ep = episodes.get(eid)
    return ep is not None and ep.ended is not None

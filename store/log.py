"""The event log: one LMDB environment per run, read synchronously, written by one task.

Layout (named LMDB databases in one environment, a directory):

- ``events``: big-endian u64 seq -> record bytes (see :mod:`scaleenv._store.record`);
- ``streams``: utf-8 stream id + ``b"\\0"`` + big-endian u64 n -> big-endian u64 seq;
- ``meta``: utf-8 key -> msgpack value; keys starting with ``scaleenv.`` are the log's
  own header (format version, LMDB engine, creator), everything else is run config;
- ``snapshots``: bytes -> bytes, episode-state snapshots (:mod:`scaleenv._replay.snapshots`);
- ``checkpoints`` (created on the first checkpoint; older logs have none): big-endian u64
  seq -> a checkpoint of the run projection through that seq
  (:mod:`scaleenv._replay.checkpoint`);
- ``checkpoint_entries`` (created with it): utf-8 key -> one entry a checkpoint keeps
  beside its head (an episode's summary), written in the head's transaction and read
  one at a time, so loading a checkpoint does not read them all.

Durability: ``sync=True`` (default) fsyncs every commit, so an acknowledged event
survives an OS crash. ``sync=False`` is faster and process-crash safe; an OS crash (or
power loss) may lose the last commits, never corrupt earlier ones.

Writing goes through :meth:`Log.writer` (see :mod:`scaleenv._store.writer`). A writable
``Log`` holds an exclusive ``flock`` on ``writer.lock`` in the directory; readers
(``readonly=True``) take no lock and keep working while a writer runs, in any process.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, NamedTuple

import lmdb
import msgspec
import trio

from .gc_tuning import engine_gc
from .errors import LogError, LogLocked, NewerLogFormat, NotALog, RecordDamaged
from .events.llm import CallRefs, LlmCalled, UnresolvableCall
from .keys import U64, seq_key, stream_key, stream_len
from .lmdbfile import check_data_file, from_lmdb_error
from .record import FORMAT_VERSION, Codec, Record, default_codec, unframe
from .writer import Writer, commit_with_growth


LOG_FORMAT_VERSION = 3
"""The version of the log's layout and of what its events mean.

1: the layout (named dbs, key encodings). 2: an ``llm.called`` event may refer to
earlier calls of its stream instead of repeating their messages and schema
(:mod:`scaleenv._store.events.llm`). 3: an ``llm.called`` that offered tools records
them (``tools``, or ``tools_n``: a reference to an earlier call carrying the same list).
A format-1 log is a format-2 log without references, and a format-2 log a format-3 log
whose calls recorded no tools, so this code reads all three (their events keep their
digests: the new fields are ``digest_added``); a writer opened on an older log marks it 3
before its first append, so that older code refuses it (it would misread the
references, or re-run its calls without the tools they now record).
"""

LMDB_LIB_VERSION = 0
"""New logs are created with py-lmdb's LMDB 0.9 engine (data format v1), pinned."""

DEFAULT_MAP_SIZE = 256 << 20
READ_CHUNK = 1024
LOCK_FILE = "writer.lock"
META_PREFIX = "scaleenv."

_meta_enc = msgspec.msgpack.Encoder()
_meta_dec = msgspec.msgpack.Decoder()


def _created_by() -> str:
    try:
        from importlib.metadata import version

        return f"scaleenv {version('scaleenv')}"
    except Exception:  # noqa: BLE001 - metadata missing in odd installs
        return "scaleenv"



_OPEN: dict[str, weakref.WeakSet[Log]] = {}
"""The logs open in this process, by where their files are (:meth:`Log.open_at`)."""


def _where(path: Path) -> str:
    return os.path.realpath(path)

class Log:
    """An open event log. Use :meth:`Log.open`; close with :meth:`close` or ``with``."""

    def __init__(self, path: Path, env: lmdb.Environment, dbs: dict[str, Any], *,
                 readonly: bool, sync: bool, codec: Codec, lock_fd: int | None) -> None:
        self.path = path
        self.env = env
        self._events = dbs["events"]
        self._streams = dbs["streams"]
        self._meta = dbs["meta"]
        self._snapshots = dbs["snapshots"]
        self._checkpoints: Any = None  # opened on first use: logs older than checkpoints lack the db
        self._entries: Any = None  # the checkpoints' entries, likewise
        self._close_hooks: list[weakref.WeakMethod[Any]] = []
        self.readonly = readonly
        self.sync = sync
        self.codec = codec
        self._lock_fd = lock_fd
        self._writer: Writer | None = None

    # -- opening ------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike[str], *, readonly: bool = False, create: bool = True,
             sync: bool = True, map_size: int = DEFAULT_MAP_SIZE, codec: Codec | None = None,
             max_readers: int = 1024) -> Log:
        """Open (or create) the log in directory ``path``.

        ``readonly=True`` never creates and takes no writer lock. Raises
        :class:`NotALog`, :class:`NewerLogFormat`, :class:`LogLocked` or
        :class:`LogDamaged` (a truncated file, checked before LMDB maps it, or pages
        LMDB reports as corrupt).
        ``sync=False``: process-crash safe; an OS crash may lose the last commits.
        """
        p = Path(path)
        codec = codec or default_codec()
        exists = p.exists()
        if exists and not p.is_dir():
            raise NotALog(str(p), "not a directory")
        has_data = (p / "data.mdb").exists()
        if not has_data:
            if readonly or not create:
                raise NotALog(str(p), "no such directory" if not exists else "no data.mdb in it")
            if exists and any(c.name != LOCK_FILE and c.name != "lock.mdb" for c in p.iterdir()):
                raise NotALog(str(p), "the directory is not empty and holds no log; "
                              "refusing to create one inside it")
            p.mkdir(parents=True, exist_ok=True)
        else:
            check_data_file(p / "data.mdb")  # a truncated file would SIGBUS once mapped
        lock_fd = None if readonly else _take_lock(p)
        try:
            env = _open_env(p, readonly=readonly, sync=sync, map_size=map_size,
                            max_readers=max_readers, new=not has_data)
        except BaseException:
            _release_lock(lock_fd)
            raise
        try:
            try:
                dbs = _open_dbs(env, p, readonly=readonly)
                log = cls(p, env, dbs, readonly=readonly, sync=sync, codec=codec, lock_fd=lock_fd)
                log._check_header()
            except lmdb.Error as exc:  # MDB_CORRUPTED, MDB_PAGE_NOTFOUND, ...: damaged pages
                raise from_lmdb_error(p, exc) from exc
        except BaseException:
            env.close()
            _release_lock(lock_fd)
            raise
        _OPEN.setdefault(_where(p), weakref.WeakSet()).add(log)
        return log

    @staticmethod
    def open_at(path: str | os.PathLike[str]) -> Log | None:
        """A log of this process open at ``path`` now (None: none). A reader whose log
        closed reads through it rather than open the same LMDB file a second time in the
        process (which LMDB forbids: closing one drops the other's file locks)."""
        for log in list(_OPEN.get(_where(Path(path)), ())):
            if log.env is not None:
                return log
        return None

    def _check_header(self) -> None:
        fmt = self.meta_get(META_PREFIX + "format")
        if not isinstance(fmt, int):
            raise NotALog(str(self.path), "LMDB environment without a scaleenv header")
        if fmt > LOG_FORMAT_VERSION:
            raise NewerLogFormat(fmt, LOG_FORMAT_VERSION, str(self.path))
        rfmt = self.meta_get(META_PREFIX + "record_format", 1)
        if isinstance(rfmt, int) and rfmt > FORMAT_VERSION:
            raise NewerLogFormat(rfmt, FORMAT_VERSION, str(self.path))

    def on_close(self, hook: Callable[[], None]) -> None:
        """Call ``hook`` (a bound method, held weakly) just before the log closes, while it
        can still be read: a reader that reads lazily takes what it still needs."""
        self._close_hooks = [r for r in self._close_hooks if r() is not None]  # drop those gone
        self._close_hooks.append(weakref.WeakMethod(hook))  # type: ignore[arg-type]

    def close(self) -> None:
        """Close the environment and release the writer lock. Idempotent."""
        if self.env is not None:
            hooks, self._close_hooks = self._close_hooks, []
            for ref in hooks:
                hook = ref()
                if hook is not None:
                    hook()
            self.env.close()
            self.env = None  # type: ignore[assignment]
            _OPEN.get(_where(self.path), weakref.WeakSet()).discard(self)
        _release_lock(self._lock_fd)
        self._lock_fd = None

    def __enter__(self) -> Log:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = "readonly" if self.readonly else "writable"
        return f"Log({str(self.path)!r}, {mode})"

    # -- read txns ----------------------------------------------------------------
    def _begin(self, **kw: Any) -> lmdb.Transaction:
        """A read txn; adopts a map grown by a writer in another process."""
        try:
            return self.env.begin(**kw)
        except lmdb.MapResizedError:
            self.env.set_mapsize(0)
            return self.env.begin(**kw)

    # -- meta and snapshots -------------------------------------------------------
    def meta_get(self, key: str, default: Any = None) -> Any:
        """A value from the ``meta`` db (run config or the log's own header)."""
        with self._begin(db=self._meta) as txn:
            raw = txn.get(key.encode())
        return default if raw is None else _meta_dec.decode(raw)

    def meta_items(self) -> dict[str, Any]:
        """Every meta key and value."""
        with self._begin(db=self._meta) as txn:
            return {bytes(k).decode(): _meta_dec.decode(v) for k, v in txn.cursor()}

    def meta_set(self, key: str, value: Any) -> None:
        """Store a msgspec-encodable value (a short write txn; blocks while a commit runs)."""
        if key.startswith(META_PREFIX):
            raise ValueError(f"meta keys starting with {META_PREFIX!r} are reserved")
        self._write_small(self._meta, key.encode(), _meta_enc.encode(value))

    def put_snapshot(self, key: bytes, value: bytes) -> None:
        """Store a snapshot blob (reserved for projection snapshots)."""
        self._write_small(self._snapshots, key, value)

    def get_snapshot(self, key: bytes) -> bytes | None:
        with self._begin(db=self._snapshots) as txn:
            v = txn.get(key)
        return None if v is None else bytes(v)

    def _named_db(self, attr: str, name: bytes, create: bool) -> Any:
        if getattr(self, attr) is None:
            if create:
                if self.readonly:
                    raise LogError(f"{self.path} is open readonly")
                setattr(self, attr, commit_with_growth(
                    self, lambda txn: self.env.open_db(name, txn=txn, create=True)))
            else:
                with self._begin() as txn:
                    if txn.get(name) is None:
                        return None  # never checkpointed (or a log older than checkpoints)
                setattr(self, attr, self.env.open_db(name, create=False))
        return getattr(self, attr)

    def _checkpoint_db(self, create: bool) -> Any:
        return self._named_db("_checkpoints", CHECKPOINT_DB, create)

    def _entry_db(self, create: bool) -> Any:
        return self._named_db("_entries", CHECKPOINT_ENTRY_DB, create)

    def put_checkpoint(self, seq: int, value: bytes, keep: int = 2,
                       entries: Iterable[tuple[bytes, bytes]] = ()) -> None:
        """Store a projection checkpoint covering seqs ``1..seq`` and drop all but the newest
        ``keep``; ``entries`` (key, value) are put in the ``checkpoint_entries`` db in the
        same transaction (replacing what those keys held; entries are never dropped). One
        write txn; blocks while a commit runs."""
        if keep < 1:
            raise ValueError("keep at least one checkpoint")
        db = self._checkpoint_db(create=True)
        entries = list(entries) if not isinstance(entries, list) else entries
        edb = self._entry_db(create=True) if entries else None

        def put(txn: lmdb.Transaction) -> None:
            for k, v in entries:
                txn.put(k, v, db=edb)
            txn.put(seq_key(seq), value, db=db)
            cur = txn.cursor(db=db)
            held = [bytes(k) for k in cur.iternext(keys=True, values=False)]
            for k in held[:-keep]:
                txn.delete(k, db=db)

        commit_with_growth(self, put)

    def get_checkpoint_entry(self, key: bytes, head: int | None = None) -> bytes | None:
        """One entry of the ``checkpoint_entries`` db (None if none); only its first
        ``head`` bytes when given."""
        db = self._entries if self._entries is not None else self._entry_db(create=False)
        if db is None:
            return None
        with self._begin(db=db, buffers=True) as txn:
            v = txn.get(key)
            return None if v is None else bytes(v[:head] if head is not None else v)

    def checkpoint_entries(self, prefix: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        """Every ``(key, value)`` of the ``checkpoint_entries`` db whose key starts with
        ``prefix``, sorted by key (in chunks, one short read txn each)."""
        db = self._entry_db(create=False)
        if db is None:
            return
        start = prefix
        while True:
            out: list[tuple[bytes, bytes]] = []
            with self._begin(db=db) as txn:
                cur = txn.cursor()
                if cur.set_range(start):
                    for k, v in cur:
                        if not k.startswith(prefix):
                            break
                        out.append((bytes(k), bytes(v)))
                        if len(out) >= READ_CHUNK:
                            break
            yield from out
            if len(out) < READ_CHUNK:
                return
            start = out[-1][0] + b"\0"

    def checkpoint_seqs(self) -> list[int]:
        """The seqs the stored projection checkpoints cover, oldest first."""
        db = self._checkpoint_db(create=False)
        if db is None:
            return []
        with self._begin(db=db) as txn:
            return [int.from_bytes(k, "big") for k in txn.cursor().iternext(keys=True, values=False)]

    def get_checkpoint(self, seq: int) -> bytes | None:
        """The checkpoint stored for ``seq`` (None if none)."""
        db = self._checkpoint_db(create=False)
        if db is None:
            return None
        with self._begin(db=db) as txn:
            v = txn.get(seq_key(seq))
        return None if v is None else bytes(v)

    def _write_small(self, db: Any, key: bytes, value: bytes) -> None:
        if self.readonly:
            raise LogError(f"{self.path} is open readonly")
        def put(txn: lmdb.Transaction) -> None:
            txn.put(key, value, db=db)

        commit_with_growth(self, put)

    # -- readers ------------------------------------------------------------------
    def last_seq(self) -> int:
        """The highest committed seq (0 for an empty log)."""
        with self._begin(db=self._events) as txn:
            cur = txn.cursor()
            return int.from_bytes(cur.key(), "big") if cur.last() else 0

    def get(self, seq: int) -> Record:
        """The record at ``seq``; KeyError if there is none."""
        with self._begin(db=self._events, buffers=True) as txn:
            raw = txn.get(seq_key(seq))
            if raw is None:
                raise KeyError(seq)
            return self.codec.decode(raw, seq)

    def _raw_chunks(self, from_seq: int, to_seq: int | None = None) -> Iterator[list[tuple[int, bytes]]]:
        """(seq, bytes) pairs in chunks, one short read txn per chunk."""
        nxt = max(from_seq, 1)
        while True:
            chunk: list[tuple[int, bytes]] = []
            with self._begin(db=self._events) as txn:
                cur = txn.cursor()
                if not cur.set_range(seq_key(nxt)):
                    return
                for k, v in cur:
                    s = int.from_bytes(k, "big")
                    if to_seq is not None and s > to_seq:
                        break
                    chunk.append((s, v))
                    if len(chunk) >= READ_CHUNK:
                        break
            if not chunk:
                return
            yield chunk
            nxt = chunk[-1][0] + 1
            if len(chunk) < READ_CHUNK:
                return

    def read_raw(self, from_seq: int = 1, to_seq: int | None = None) -> Iterator[list[tuple[int, bytes]]]:
        """Undecoded records in global order from ``from_seq``, in chunks of ``(seq, bytes)``
        pairs (one short read txn per chunk), for readers that decode only what they need
        (:func:`scaleenv._store.record.unframe` checks a record's frame and CRC)."""
        return self._raw_chunks(from_seq, to_seq)

    def read(self, from_seq: int = 1, to_seq: int | None = None) -> Iterator[Record]:
        """Records in global order from ``from_seq``; raises on the first damaged one."""
        dec = self.codec.decode
        for chunk in self._raw_chunks(from_seq, to_seq):
            for s, v in chunk:
                yield dec(v, s)

    def read_stream(self, stream: str, from_n: int = 0) -> Iterator[Record]:
        """Records of one stream in stream order, from position ``from_n``."""
        dec = self.codec.decode
        for s, raw in self.read_stream_raw(stream, from_n):
            yield dec(raw, s)

    def read_stream_raw(self, stream: str, from_n: int = 0, to_seq: int | None = None) -> Iterator[tuple[int, bytes]]:
        """``(seq, record bytes)`` of one stream in stream order, from position ``from_n``
        (through seq ``to_seq`` when given), through the per-stream index: for a reader that
        decodes only the records it needs (:func:`scaleenv._store.record.decode_envelope`,
        :func:`~scaleenv._store.record.peek_tag`). Raises :class:`RecordDamaged` for a
        record the index names but the log lacks."""
        prefix = stream.encode() + b"\0"
        n = from_n
        while True:
            seqs: list[int] = []
            with self._begin(db=self._streams) as txn:
                cur = txn.cursor()
                if cur.set_range(prefix + n.to_bytes(U64, "big")):
                    for k, v in cur:
                        if not k.startswith(prefix) or len(k) != len(prefix) + U64:
                            break
                        seqs.append(int.from_bytes(v, "big"))
                        if len(seqs) >= READ_CHUNK:
                            break
            if not seqs:
                return
            if to_seq is not None:
                seqs = [s for s in seqs if s <= to_seq]  # a stream's seqs grow with its positions
            if not seqs:
                return
            with self._begin(db=self._events) as txn:
                raws = [(s, txn.get(seq_key(s))) for s in seqs]
            for s, raw in raws:
                if raw is None:
                    raise RecordDamaged(s, f"indexed by stream {stream!r} but missing")
                yield s, raw
            n += len(seqs)
            if len(seqs) < READ_CHUNK or (to_seq is not None and seqs[-1] >= to_seq):
                return

    def stream_seq(self, stream: str, n: int = 0) -> int | None:
        """The seq of ``stream``'s record at position ``n`` (None: it has none), from the
        per-stream index alone (no record is read)."""
        with self._begin(db=self._streams) as txn:
            v = txn.get(stream.encode() + b"\0" + n.to_bytes(U64, "big"))
        return None if v is None else int.from_bytes(v, "big")

    def stream_length(self, stream: str) -> int:
        """How many events ``stream`` holds (0 if none)."""
        prefix = stream.encode() + b"\0"
        with self._begin(db=self._streams) as txn:
            return stream_len(txn.cursor(), prefix)

    def streams(self, prefix: str = "") -> Iterator[tuple[str, int]]:
        """``(stream id, length)`` for every stream starting with ``prefix``, sorted."""
        p = prefix.encode()
        start = p
        while True:
            with self._begin(db=self._streams) as txn:
                cur = txn.cursor()
                out: list[tuple[str, int]] = []
                while len(out) < READ_CHUNK and cur.set_range(start):
                    k = bytes(cur.key())
                    if not k.startswith(p):
                        break
                    sid = k[: k.index(b"\0")]
                    out.append((sid.decode(), stream_len(cur, sid + b"\0")))
                    start = sid + b"\1"
            yield from out
            if len(out) < READ_CHUNK:
                return

    def count(self) -> int:
        """The number of stored records."""
        with self._begin(db=self._events) as txn:
            return int(txn.stat(self._events)["entries"])

    def check(self) -> list[RecordDamaged]:
        """Scan every record; return every damaged one (an empty list means intact).

        Records whose event type is unknown or incompatible are not damage and are not
        reported here. A record stored under a key other than the seq in its body (a
        damaged LMDB key) is reported once, under the key it sits at, naming the seq it
        says it is; it does not open gaps. Each run of missing seqs is one entry: ``seq``
        is the first missing seq, ``through`` the last (``None`` for a single one).
        """
        found: list[RecordDamaged] = []
        gaps: list[tuple[int, int]] = []  # inclusive runs of seqs with no record at their key
        misplaced: dict[int, _Body] = {}  # key -> the record there, whose body says another seq
        unreadable: set[int] = set()
        expect = 1
        where: dict[int, tuple[str, int]] = {}  # seq -> (stream, n) of every readable record
        calls = CallRefs()  # llm.called events may refer to earlier calls of their stream
        for chunk in self._raw_chunks(1):
            for s, v in chunk:
                try:
                    b = self._check_one(v, s)
                except RecordDamaged as exc:
                    found.append(exc)
                    unreadable.add(s)
                    b = None  # take the key at its word
                if b is not None and b.seq != s:
                    misplaced[s] = b  # leaves `expect` alone: a wrong key opens no gap
                    continue
                if b is not None and isinstance(b.event, LlmCalled):
                    problem = calls.problem(b.stream, b.n, b.event)
                    if problem is not None:
                        found.append(RecordDamaged(s, str(UnresolvableCall(b.stream, b.n, problem))))
                if s != expect:
                    gaps.append((expect, s - 1))
                expect = s + 1
                if b is not None and b.readable:
                    where[s] = (b.stream, b.n)
        for key, b in misplaced.items():
            if b.seq in where:
                there = f"seq {b.seq} also holds a record saying seq={b.seq}"
            elif b.seq in unreadable:
                there = f"the record under seq {b.seq} is damaged"
            elif b.seq in misplaced:
                there = f"seq {b.seq} holds the one saying seq={misplaced[b.seq].seq}"
            else:
                there = f"nothing is stored under seq {b.seq}"
            found.append(RecordDamaged(key, f"stored under seq={key} but says seq={b.seq} "
                                            f"({b.stream}#{b.n}; {there}): a damaged key"))
        for b in misplaced.values():
            if b.readable:  # the stream index still points at the seq the record says
                where.setdefault(b.seq, (b.stream, b.n))
        claimed = {b.seq for b in misplaced.values()}
        for lo, hi in gaps:
            found.extend(_gap_entries(lo, hi, claimed))
        found.sort(key=lambda d: d.seq)
        found.extend(self._check_stream_index(where))
        return found

    def _check_one(self, raw: bytes, key: int) -> _Body:
        """What a record's body says it is; raises :class:`RecordDamaged` (named by key)."""
        try:
            r = self.codec.decode(raw, 0)  # seq 0: decode without comparing it with the key
        except RecordDamaged as exc:
            raise RecordDamaged(key, exc.reason) from None
        except LogError:
            # An unknown or incompatible event type: intact, not damage. Read the envelope
            # generically (a record from a newer format: take the key at its word).
            try:
                t = msgspec.msgpack.decode(unframe(raw, key))
                if (isinstance(t, list) and len(t) == 7 and isinstance(t[0], int)
                        and isinstance(t[1], str) and isinstance(t[2], int)):
                    return _Body(t[0], t[1], t[2], readable=False)
            except (msgspec.DecodeError, LogError):
                pass
            return _Body(key, "?", -1, readable=False)
        return _Body(r.seq, r.stream, r.n, readable=True, event=r.event)

    def _check_stream_index(self, where: dict[int, tuple[str, int]]) -> list[RecordDamaged]:
        """The per-stream index must point every (stream, n) at the record that holds it."""
        bad: list[RecordDamaged] = []
        indexed: set[int] = set()
        with self._begin(db=self._streams) as txn:
            for k, v in txn.cursor():
                stream, n = k[:-9].decode(errors="replace"), int.from_bytes(k[-8:], "big")
                seq = int.from_bytes(v, "big")
                indexed.add(seq)
                held = where.get(seq)
                if held is not None and held != (stream, n):
                    bad.append(RecordDamaged(seq, f"stream index entry {stream}#{n} points here, "
                                                  f"but this record is {held[0]}#{held[1]}"))
        bad.extend(RecordDamaged(seq, f"record {st}#{n} has no stream index entry")
                   for seq, (st, n) in sorted(where.items()) if seq not in indexed)
        return bad

    async def follow(self, from_seq: int = 1, poll_interval: float = 0.05) -> AsyncIterator[Record]:
        """Yield records from ``from_seq`` on, waiting for new commits (any process).

        Never ends by itself; to stop early, iterate inside
        ``async with contextlib.aclosing(log.follow(...)) as records:`` (trio needs
        async generators closed explicitly).
        """
        nxt = from_seq
        while True:
            got = False
            for chunk in self._raw_chunks(nxt):
                for s, v in chunk:
                    yield self.codec.decode(v, s)
                    nxt = s + 1
                    got = True
                await trio.lowlevel.checkpoint()
            if not got:
                await trio.sleep(poll_interval)

    # -- writing ------------------------------------------------------------------
    @asynccontextmanager
    async def writer(self, nursery: trio.Nursery | None = None, *, channel_size: int = 256,
                     max_batch: int = 4096) -> AsyncIterator[Writer]:
        """Start the writer task; ``async with log.writer() as w: await w.append(...)``.

        ``channel_size`` bounds the append calls in flight (backpressure);
        ``max_batch`` bounds the events group-committed in one transaction.
        On exit (or cancellation) everything already sent is committed first.
        """
        if self.readonly:
            raise LogError(f"{self.path} is open readonly")
        if self._writer is not None:
            raise LogError("this log already has a writer task")
        self._check_tail()
        if self.meta_get(META_PREFIX + "format") != LOG_FORMAT_VERSION:
            self._write_small(self._meta, (META_PREFIX + "format").encode(), _meta_enc.encode(LOG_FORMAT_VERSION))
        w = Writer(self, channel_size=channel_size, max_batch=max_batch)
        self._writer = w
        try:
            with engine_gc():  # the writer's batches allocate a lot: collect cycles less often
                async with self._running(w, nursery):
                    yield w
        finally:
            self._writer = None

    def _check_tail(self) -> None:
        """Refuse to append after a last record whose key is not its seq.

        New events are numbered from the last key: a damaged key there (a bit flip that
        moved a record far past the end) would number everything after it wrongly."""
        last = self.last_seq()
        if not last:
            return
        try:
            self.get(last)
        except RecordDamaged as exc:
            raise RecordDamaged(exc.seq, f"{exc.reason}; new events would be numbered after it, so this "
                                         f"log takes no appends: see `scaleenv log check --log {self.path}`") from None
        except LogError:
            pass  # an event type this code does not know: not damage

    @asynccontextmanager
    async def _running(self, w: Writer, nursery: trio.Nursery | None) -> AsyncIterator[None]:
        """Run ``w`` in ``nursery`` (or an own one); on exit commit what was sent, then stop it."""
        if nursery is None:
            async with trio.open_nursery() as own:
                own.start_soon(w.run)
                try:
                    yield
                finally:
                    await w.aclose()
        else:
            nursery.start_soon(w.run)
            try:
                yield
            finally:
                await w.aclose()

    # -- info ---------------------------------------------------------------------
    def size_on_disk(self) -> int:
        return sum(f.stat().st_size for f in self.path.iterdir() if f.is_file())


class _Body(NamedTuple):
    """What :meth:`Log.check` reads from one record's body."""

    seq: int
    stream: str
    n: int
    readable: bool
    """False for an event type this code cannot decode (not damage)."""
    event: Any = None


def _gap_entries(a: int, b: int, claimed: set[int]) -> Iterator[RecordDamaged]:
    """One entry per run of missing seqs in ``a..b`` not claimed by a misplaced record."""
    start = None
    for m in [*sorted(x for x in claimed if a <= x <= b), b + 1]:
        lo = a if start is None else start
        if m > lo:
            hi = m - 1
            yield (RecordDamaged(lo, "missing (gap in seqs)") if lo == hi else
                   RecordDamaged(lo, f"missing: seqs {lo}..{hi}, {hi - lo + 1} records "
                                     "(gap in seqs)", through=hi))
        start = m + 1


def _take_lock(p: Path) -> int:
    fd = os.open(p / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        pid = None
        try:
            txt = os.pread(fd, 32, 0).decode().strip()
            pid = int(txt) if txt else None
        except (OSError, ValueError):
            pass
        os.close(fd)
        if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            raise LogLocked(str(p), pid) from None
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _release_lock(fd: int | None) -> None:
    if fd is not None:
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass
        os.close(fd)  # closing drops the flock


def _open_env(p: Path, *, readonly: bool, sync: bool, map_size: int, max_readers: int,
              new: bool) -> lmdb.Environment:
    try:
        return lmdb.open(
            str(p), map_size=map_size, readonly=readonly, sync=sync, metasync=sync,
            max_dbs=8, max_readers=max_readers, create=False, writemap=False,
            lib_version=LMDB_LIB_VERSION if new else None,
        )
    except lmdb.Error as exc:
        if "already open in this process" in str(exc):
            raise LogError(f"{p} is already open in this process; share one Log object") from exc
        raise NotALog(str(p), f"LMDB refused to open it: {exc}") from exc


_DB_NAMES = ("events", "streams", "meta", "snapshots")
CHECKPOINT_DB = b"checkpoints"
CHECKPOINT_ENTRY_DB = b"checkpoint_entries"


def _open_dbs(env: lmdb.Environment, p: Path, *, readonly: bool) -> dict[str, Any]:
    dbs: dict[str, Any] = {}
    with env.begin() as txn:
        main_names = {bytes(k) for k, _ in txn.cursor()}
    if not main_names and not readonly:
        # A brand-new (or never-initialised) environment: create the layout and header.
        with env.begin(write=True) as txn:
            for name in _DB_NAMES:
                dbs[name] = env.open_db(name.encode(), txn=txn)
            header = {
                "format": LOG_FORMAT_VERSION,
                "record_format": FORMAT_VERSION,
                "lmdb_lib_version": list(env.lib_version()),
                "lmdb_binding_version": lmdb.__version__,
                "created_by": _created_by(),
                "created_wall_ns": time.time_ns(),
            }
            for k, v in header.items():
                txn.put((META_PREFIX + k).encode(), _meta_enc.encode(v), db=dbs["meta"])
        return dbs
    missing = [n for n in _DB_NAMES if n.encode() not in main_names]
    if missing:
        raise NotALog(str(p), f"foreign LMDB environment (no {', '.join(missing)} database)")
    for name in _DB_NAMES:
        # No txn argument: py-lmdb opens the handle in its own committed txn, which keeps
        # it valid for later txns (a handle opened in an aborted read txn is not).
        dbs[name] = env.open_db(name.encode(), create=False)
    return dbs

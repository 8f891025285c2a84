"""The one writer task: group-commits appends it receives over a bounded channel.

Every ``await w.append(items)`` sends one request over a bounded trio memory channel
(a full channel makes appenders wait: backpressure). The writer task takes a request,
drains whatever else is already queued (up to ``max_batch`` events), and commits the
lot in ONE ``trio.to_thread.run_sync`` call that begins, puts and commits the LMDB
write transaction (a write txn is bound to its thread). Appenders get their records
back only after the commit returned, so an acknowledged event is durable (with
``sync=True``) and survives a process crash in any mode.

Each request is atomic (all its items or none) and is validated on its own: every
item's ``n`` must be exactly its stream's next position, else that request fails with
:class:`StreamPositionError` and the rest of the batch still commits; an event that
cannot be encoded (a str with lone surrogates, nesting too deep) fails its own request
with :class:`UnencodableEvent`, never the writer.
"""

from __future__ import annotations

import errno
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, NamedTuple, TypeVar, overload

import lmdb
import trio

from .errors import LogFull, StreamPositionError, UnencodableEvent, WriterClosed
from .events.base import Event, Ref
from .keys import U64, stream_len
from .record import Record, frame

if TYPE_CHECKING:
    from .log import Log

T = TypeVar("T")

MAX_STREAM_ID_BYTES = 400
_FULL_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EIO}
"""LMDB reports a short write (what a full disk or a file size limit gives) as EIO."""


class Pending(NamedTuple):
    """One event to append: its stream, its position there, cause, actor and payload."""

    stream: str
    n: int
    cause: Ref | None
    actor: str
    event: Event


Item = Pending | tuple[str, int, Ref | None, str, Event]


def _pending(items: Sequence[Item]) -> list[Pending]:
    return [i if type(i) is Pending else Pending(*i) for i in items]  # noqa: E721


def _is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, lmdb.DiskError):
        return True
    if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
        return True
    if isinstance(exc, lmdb.Error):
        codes = [a for a in exc.args if isinstance(a, int)]
        text = str(exc)
        return bool(set(codes) & _FULL_ERRNOS) or any(
            s in text for s in ("No space left", "File too large", "quota exceeded",
                                "Input/output error"))
    return False


def commit_with_growth(log: Log, fn: Callable[[lmdb.Transaction], T]) -> T:
    """Run ``fn`` in one write txn and commit; grow the map on MapFull and retry.

    Must be called on one thread from begin to commit (it is: it is one call).
    Disk full becomes :class:`LogFull`; nothing of the txn is then committed.
    """
    env = log.env
    while True:
        try:
            with env.begin(write=True) as txn:
                out = fn(txn)
            return out
        except lmdb.MapFullError:
            env.set_mapsize(env.info()["map_size"] * 2)
        except (lmdb.Error, OSError) as exc:
            if _is_disk_full(exc):
                raise LogFull(str(log.path), f"disk full or failing ({exc})") from exc
            raise


class Ack:
    """One append in flight: its items, then its outcome; ``await ack.committed()``.

    A waiting task parks with ``trio.lowlevel.wait_task_rescheduled`` (cheaper than a
    ``trio.Event`` per call, and an append is the hottest path in the engine); the
    writer task reschedules it once ``result`` or ``error`` is set. Appends are
    committed in the order they were sent, so once an ack is committed every append
    sent before it by the same task is decided too (committed or failed).
    """

    __slots__ = ("items", "after", "task", "waiting", "done", "result", "error")

    def __init__(self, items: list[Pending], after: Ack | None = None) -> None:
        self.items = items
        # The same stream's previous append not yet known committed: if it failed, this
        # one fails with the same error (a stream in the log is always a prefix of what
        # its agent emitted, never a prefix with a hole).
        self.after = after
        self.task: trio.lowlevel.Task | None = None
        self.waiting = False
        self.done = False
        # (first seq, wall_ns) once committed: the records are built by the appender, off the
        # writer thread, and only when the caller looks at them (see Committed).
        self.result: tuple[int, int] | None = None
        self.error: BaseException | None = None

    def finish(self) -> None:
        """Mark done and wake the appender if it is (still) parked waiting for this."""
        self.done = True
        if self.waiting:
            self.waiting = False
            assert self.task is not None
            trio.lowlevel.reschedule(self.task)

    async def wait(self) -> None:
        """Park until :meth:`finish`; a cancellation stops the wait, not the append."""
        if self.done:
            await trio.lowlevel.checkpoint()
            return
        self.task = trio.lowlevel.current_task()
        self.waiting = True

        def abort(_: object) -> trio.lowlevel.Abort:
            self.waiting = False
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    async def committed(self) -> Committed:
        """Wait until the writer decided this append; its records, or its error raised."""
        await self.wait()
        if self.error is not None:
            raise self.error
        assert self.result is not None
        first, wall = self.result
        return Committed(self.items, first, wall)


class Committed(Sequence[Record]):
    """The records of one committed append, built from its items on first access.

    Most appenders only need to know the append is durable; building a ``Record`` per
    event for every append was a measurable share of the append path.
    """

    __slots__ = ("_items", "_first", "_wall", "_records")

    def __init__(self, items: list[Pending], first_seq: int, wall_ns: int) -> None:
        self._items = items
        self._first = first_seq
        self._wall = wall_ns
        self._records: list[Record] | None = None

    def _all(self) -> list[Record]:
        if self._records is None:
            first, wall = self._first, self._wall
            self._records = [Record(seq=first + i, stream=it.stream, n=it.n, cause=it.cause, actor=it.actor,
                                    wall_ns=wall, event=it.event) for i, it in enumerate(self._items)]
        return self._records

    def __len__(self) -> int:
        return len(self._items)

    @overload
    def __getitem__(self, i: int) -> Record: ...
    @overload
    def __getitem__(self, i: slice) -> list[Record]: ...
    def __getitem__(self, i: int | slice) -> Record | list[Record]:
        return self._all()[i]

    def __iter__(self) -> Iterator[Record]:
        return iter(self._all())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Committed):
            other = other._all()
        return isinstance(other, list) and self._all() == other

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Committed(seq {self._first}..{self._first + len(self._items) - 1}, {len(self._items)} records)"


class Writer:
    """The handle appenders use; its :meth:`run` is the single writer task."""

    def __init__(self, log: Log, *, channel_size: int, max_batch: int) -> None:
        if channel_size < 1:
            raise ValueError("channel_size must be >= 1 (the channel is always bounded)")
        self.log = log
        self.max_batch = max_batch
        self._send, self._recv = trio.open_memory_channel[Ack](channel_size)
        self._next_n: dict[str, int] = {}
        self._last_seq = log.last_seq()
        self._stopped = trio.Event()
        self._failure: BaseException | None = None
        self.batches = 0
        self.events = 0

    # -- appender side ------------------------------------------------------------
    async def append(self, items: Sequence[Item]) -> Sequence[Record]:
        """Append items atomically; return the stored records once committed.

        The records come back as a :class:`Committed` sequence (built when first looked at).
        """
        if not items:
            return []
        return await (await self.submit(items)).committed()

    async def submit(self, items: Sequence[Item], *, after: Ack | None = None) -> Ack:
        """Send an append to the writer without waiting for its commit.

        Waits only while the channel is full (backpressure). The returned :class:`Ack`
        tells when (and whether) it was committed; nothing is durable before that.
        ``after``: the previous append of the same stream(s), sent earlier; if it fails,
        this one fails with the same error instead of being committed after a hole.
        """
        try:
            return self.submit_nowait(items, after=after)
        except trio.WouldBlock:
            req = Ack(_pending(items), after)
            try:
                await self._send.send(req)
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                raise WriterClosed("the log writer has stopped") from self._failure
            return req

    def submit_nowait(self, items: Sequence[Item], *, after: Ack | None = None) -> Ack:
        """:meth:`submit` if the channel has room now; else raises ``trio.WouldBlock``."""
        req = Ack(_pending(items), after)
        try:
            self._send.send_nowait(req)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise WriterClosed("the log writer has stopped") from self._failure
        return req

    async def aclose(self) -> None:
        """Stop accepting appends, commit everything already sent, wait for the task."""
        with trio.CancelScope(shield=True):
            await self._send.aclose()
            await self._stopped.wait()

    def next_n(self, stream: str) -> int:
        """The next position of ``stream`` as the writer knows it (committed only)."""
        n = self._next_n.get(stream)
        if n is None:
            n = self.log.stream_length(stream)
        return n

    def forget(self, stream: str) -> None:
        """Drop a finished stream's cached next position (it is reloaded from the index if
        the stream is ever appended to again), so memory does not grow with streams done."""
        self._next_n.pop(stream, None)

    @property
    def last_seq(self) -> int:
        return self._last_seq

    # -- the task -----------------------------------------------------------------
    async def run(self) -> None:
        """The writer task. Started by :meth:`Log.writer`; do not call twice."""
        try:
            try:
                while True:
                    try:
                        first = await self._recv.receive()
                    except trio.EndOfChannel:
                        return
                    await self._commit(self._gather(first))
            except trio.Cancelled:
                # Flush what was already sent, then let the cancellation through.
                with trio.CancelScope(shield=True):
                    while True:
                        try:
                            first = self._recv.receive_nowait()
                        except (trio.WouldBlock, trio.EndOfChannel):
                            break
                        await self._commit(self._gather(first))
                raise
        except BaseException as exc:
            if not isinstance(exc, trio.Cancelled):
                self._failure = exc
            self._fail_pending(exc)
            raise
        finally:
            self._recv.close()
            self._stopped.set()

    def _gather(self, first: Ack) -> list[Ack]:
        batch = [first]
        count = len(first.items)
        while count < self.max_batch:
            try:
                r = self._recv.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                break
            batch.append(r)
            count += len(r.items)
        return batch

    def _fail_pending(self, cause: BaseException) -> None:
        while True:
            try:
                r = self._recv.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                return
            err = WriterClosed("the log writer stopped before committing this append")
            err.__cause__ = cause
            r.error = err
            r.finish()

    async def _commit(self, batch: list[Ack]) -> None:
        try:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(self._commit_sync, batch)
        except LogFull as exc:
            for r in batch:
                if not r.done:
                    r.error = LogFull(exc.path, exc.reason)
                    r.finish()
            return
        except BaseException as exc:
            for r in batch:
                if not r.done:
                    err = WriterClosed(f"the log writer failed: {exc!r}")
                    err.__cause__ = exc
                    r.error = err
                    r.finish()
            raise
        for r in batch:
            r.finish()

    # -- the worker thread --------------------------------------------------------
    def _commit_sync(self, batch: list[Ack]) -> None:
        """Runs in a worker thread: begin, put, commit (retrying on map growth)."""
        log = self.log
        events_db, streams_db = log._events, log._streams
        encode_body = log.codec.encode_body
        known = self._next_n

        def build(txn: lmdb.Transaction) -> tuple[dict[str, int], int]:
            # One pass per request: check each item's position and encode it; a request
            # that fails is cut back out of the batch (it is atomic), the rest go on.
            wall = time.time_ns()
            overlay: dict[str, int] = {}
            seq = self._last_seq
            ev_pairs: list[tuple[bytes, bytes]] = []
            st_pairs: list[tuple[bytes, bytes]] = []
            scur: lmdb.Cursor | None = None
            for r in batch:
                r.error = None
                r.result = None
                if r.after is not None and r.after.error is not None:
                    r.error = r.after.error  # decided already: it was sent (and built) first
                    continue
                local: dict[str, int] = {}
                mark = len(ev_pairs)
                r_seq = seq
                it: Pending | None = None
                try:
                    for it in r.items:
                        s = it.stream
                        nxt = local.get(s)
                        if nxt is None:
                            nxt = overlay.get(s)
                            if nxt is None:
                                nxt = known.get(s)
                                if nxt is None:
                                    _check_stream_id(s)
                                    if scur is None:
                                        scur = txn.cursor(db=streams_db)
                                    nxt = stream_len(scur, s.encode() + b"\0")
                        if it.n != nxt:
                            raise StreamPositionError(s, nxt, it.n)
                        local[s] = nxt + 1
                        r_seq += 1
                        sk = r_seq.to_bytes(U64, "big")
                        body = encode_body(r_seq, s, nxt, it.cause, it.actor, wall, it.event)
                        ev_pairs.append((sk, frame(body)))
                        st_pairs.append((s.encode() + b"\0" + nxt.to_bytes(U64, "big"), sk))
                except (StreamPositionError, BadStreamId) as exc:
                    r.error = exc
                except lmdb.Error:
                    raise  # the store itself failed: the whole batch fails (see _commit)
                except Exception as exc:  # noqa: BLE001 - an unencodable event fails its own append only
                    assert it is not None
                    r.error = UnencodableEvent(it.stream, it.n, f"{type(exc).__name__}: {exc}")
                if r.error is not None:
                    del ev_pairs[mark:], st_pairs[mark:]
                    continue
                r.result = (seq + 1, wall)
                seq = r_seq
                overlay.update(local)
            if ev_pairs:
                consumed, added = txn.cursor(db=events_db).putmulti(ev_pairs, append=True)
                if added != len(ev_pairs):
                    raise RuntimeError(f"events db out of order: added {added} of {len(ev_pairs)}")
                txn.cursor(db=streams_db).putmulti(st_pairs)
            return overlay, seq

        overlay, seq = commit_with_growth(log, build)
        known.update(overlay)
        self._last_seq = seq
        self.batches += 1
        self.events += sum(len(r.items) for r in batch if r.result is not None)


class BadStreamId(ValueError):
    """A stream id that is empty, not a str, holds NUL or is too long."""


def _check_stream_id(s: str) -> None:
    if not isinstance(s, str) or not s:
        raise BadStreamId(f"stream id must be a non-empty str, got {s!r}")
    if "\0" in s:
        raise BadStreamId(f"stream id {s!r} contains NUL")
    if len(s.encode()) > MAX_STREAM_ID_BYTES:
        raise BadStreamId(f"stream id {s[:40]!r}... is longer than {MAX_STREAM_ID_BYTES} bytes")

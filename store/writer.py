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
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NamedTuple, TypeVar

import lmdb
import trio

from .errors import LogFull, StreamPositionError, UnencodableEvent, WriterClosed
from .events.base import Event, Ref
from .log import _U64, _stream_len, seq_key
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


class _Request:
    __slots__ = ("items", "done", "result", "error")

    def __init__(self, items: list[Pending]) -> None:
        self.items = items
        self.done = trio.Event()
        # (first seq, wall_ns) once committed: the records are built by the appender, off the
        # writer thread, so building them overlaps the next batch's commit.
        self.result: tuple[int, int] | None = None
        self.error: BaseException | None = None


class Writer:
    """The handle appenders use; its :meth:`run` is the single writer task."""

    def __init__(self, log: Log, *, channel_size: int, max_batch: int) -> None:
        if channel_size < 1:
            raise ValueError("channel_size must be >= 1 (the channel is always bounded)")
        self.log = log
        self.max_batch = max_batch
        self._send, self._recv = trio.open_memory_channel[_Request](channel_size)
        self._next_n: dict[str, int] = {}
        self._last_seq = log.last_seq()
        self._stopped = trio.Event()
        self._failure: BaseException | None = None
        self.batches = 0
        self.events = 0

    # -- appender side ------------------------------------------------------------
    async def append(self, items: Sequence[Pending | tuple[str, int, Ref | None, str, Event]]
                     ) -> list[Record]:
        """Append items atomically; return the stored records once committed."""
        if not items:
            return []
        req = _Request([i if isinstance(i, Pending) else Pending(*i) for i in items])
        try:
            await self._send.send(req)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise WriterClosed("the log writer has stopped") from self._failure
        await req.done.wait()
        if req.error is not None:
            raise req.error
        assert req.result is not None
        first, wall = req.result
        return [Record(seq=first + i, stream=it.stream, n=it.n, cause=it.cause, actor=it.actor,
                       wall_ns=wall, event=it.event) for i, it in enumerate(req.items)]

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

    def _gather(self, first: _Request) -> list[_Request]:
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
            r.done.set()

    async def _commit(self, batch: list[_Request]) -> None:
        try:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(self._commit_sync, batch)
        except LogFull as exc:
            for r in batch:
                if not r.done.is_set():
                    r.error = LogFull(exc.path, exc.reason)
                    r.done.set()
            return
        except BaseException as exc:
            for r in batch:
                if not r.done.is_set():
                    err = WriterClosed(f"the log writer failed: {exc!r}")
                    err.__cause__ = exc
                    r.error = err
                    r.done.set()
            raise
        for r in batch:
            r.done.set()

    # -- the worker thread --------------------------------------------------------
    def _commit_sync(self, batch: list[_Request]) -> None:
        """Runs in a worker thread: begin, put, commit (retrying on map growth)."""
        log = self.log
        events_db, streams_db = log._events, log._streams
        encode_body = log.codec.encode_body

        def build(txn: lmdb.Transaction) -> tuple[dict[str, int], int, list[_Request]]:
            wall = time.time_ns()
            overlay: dict[str, int] = {}
            seq = self._last_seq
            ev_pairs: list[tuple[bytes, bytes]] = []
            st_pairs: list[tuple[bytes, bytes]] = []
            scur = txn.cursor(db=streams_db)
            for r in batch:
                r.error = None
                r.result = None
                local: dict[str, int] = {}
                prefixes: dict[str, bytes] = {}
                try:
                    for it in r.items:
                        s = it.stream
                        nxt = local.get(s)
                        if nxt is None:
                            nxt = overlay.get(s)
                            if nxt is None:
                                nxt = self._next_n.get(s)
                            if nxt is None:
                                _check_stream_id(s)
                                nxt = _stream_len(scur, s.encode() + b"\0")
                        if it.n != nxt:
                            raise StreamPositionError(s, nxt, it.n)
                        local[s] = nxt + 1
                except (StreamPositionError, ValueError) as exc:
                    r.error = exc
                    continue
                r_ev: list[tuple[bytes, bytes]] = []
                r_st: list[tuple[bytes, bytes]] = []
                r_seq = seq
                try:
                    for it in r.items:
                        r_seq += 1
                        sk = seq_key(r_seq)
                        r_ev.append((sk, frame(encode_body(
                            r_seq, it.stream, it.n, it.cause, it.actor, wall, it.event))))
                        p = prefixes.get(it.stream)
                        if p is None:
                            p = prefixes[it.stream] = it.stream.encode() + b"\0"
                        st_pairs_key = p + it.n.to_bytes(_U64, "big")
                        r_st.append((st_pairs_key, sk))
                except Exception as exc:  # noqa: BLE001 - an unencodable event fails its own append only
                    r.error = UnencodableEvent(it.stream, it.n, f"{type(exc).__name__}: {exc}")
                    continue
                r.result = (seq + 1, wall)
                seq = r_seq
                ev_pairs.extend(r_ev)
                st_pairs.extend(r_st)
                overlay.update(local)
            if ev_pairs:
                consumed, added = txn.cursor(db=events_db).putmulti(ev_pairs, append=True)
                if added != len(ev_pairs):
                    raise RuntimeError(f"events db out of order: added {added} of {len(ev_pairs)}")
                txn.cursor(db=streams_db).putmulti(st_pairs)
            return overlay, seq, batch

        overlay, seq, _ = commit_with_growth(log, build)
        self._next_n.update(overlay)
        self._last_seq = seq
        self.batches += 1
        self.events += sum(len(r.items) for r in batch if r.result is not None)


def _check_stream_id(s: str) -> None:
    if not isinstance(s, str) or not s:
        raise ValueError(f"stream id must be a non-empty str, got {s!r}")
    if "\0" in s:
        raise ValueError(f"stream id {s!r} contains NUL")
    if len(s.encode()) > MAX_STREAM_ID_BYTES:
        raise ValueError(f"stream id {s[:40]!r}... is longer than {MAX_STREAM_ID_BYTES} bytes")

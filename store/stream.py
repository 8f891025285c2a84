"""The per-stream handle every agent emits through, and replay divergence.

Agents run deterministically, so re-running one against what the log already holds
for its stream must emit the same events in the same order. Three modes:

- ``"append"``: emit new events after whatever ``recorded`` holds;
- ``"resume"``: re-run an interrupted agent: events at positions the log already has
  are compared with the recorded ones (not appended); once past them, append;
- ``"verify"``: re-run without writing; every event is compared; extra or missing
  events are divergences.

A mismatch raises :class:`Divergence` naming the stream, the position, both sides and
the first differing fields, as Temporal's non-determinism errors do.

Two ways to wait for the log (``ack``):

- ``"each"`` (the default): every ``emit`` returns once its events are committed;
- ``"deferred"``: ``emit`` returns once its events are sent to the writer (in order,
  with backpressure); ``await stream.flush()`` waits until everything sent is committed
  and raises the first failure. Episodes use this: they flush when they end, so an
  episode is acknowledged as a whole, and none of a thousand episodes in flight sits
  idle waiting for a commit in the middle of a conversation. A crash then loses at
  most the unacknowledged tail of unfinished episodes, which resume re-runs (the writer
  commits a stream's appends in order, so what survives is always a prefix).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import trio

from .errors import LogError
from .events.base import Event, Ref
from .record import Record, StreamDigest, digest_bytes, event_digest_builtins, event_tag
from .writer import Ack, Pending, Writer

Mode = Literal["append", "resume", "verify"]
AckMode = Literal["each", "deferred"]
Emitted = tuple[Event, str, "Ref | None"]


def _short(v: Any, limit: int = 120) -> str:
    s = repr(v)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def _side(event: Event, actor: str, cause: Ref | None) -> dict[str, Any]:
    return {"actor": actor, "cause": None if cause is None else str(cause),
            "type": event_tag(event), "event": event_digest_builtins(event)}


class Divergence(LogError):
    """A re-run emitted something other than what the log recorded for this stream."""

    def __init__(self, stream: str, n: int, expected: Record | None,
                 got: tuple[Event, str, Ref | None] | None, note: str = "") -> None:
        super().__init__(stream, n, expected, got)
        self.stream = stream
        self.n = n
        self.expected = expected
        self.got = got
        self.note = note

    def differences(self) -> list[tuple[str, Any, Any]]:
        """``(field, recorded, got)`` for each differing field, in a stable order."""
        if self.expected is None or self.got is None:
            return []
        e = self.expected
        a = _side(e.event, e.actor, e.cause)
        b = _side(*self.got)
        out: list[tuple[str, Any, Any]] = []
        if a["type"] != b["type"]:
            return [("type", a["type"], b["type"])]
        for k in ("actor", "cause"):
            if a[k] != b[k]:
                out.append((k, a[k], b[k]))
        ea, eb = a["event"], b["event"]
        for k in sorted(set(ea) | set(eb)):
            if ea.get(k, "<absent>") != eb.get(k, "<absent>"):
                out.append((f"event.{k}", ea.get(k, "<absent>"), eb.get(k, "<absent>")))
        return out

    def __str__(self) -> str:
        head = f"Divergence in stream {self.stream!r} at n={self.n}"
        if self.expected is None and self.got is not None:
            ev, actor, _ = self.got
            return (f"{head}: unexpected extra event: the recorded stream ends at n={self.n}, "
                    f"but the run emitted {event_tag(ev)!r} (actor {actor!r}) "
                    f"{_short(event_digest_builtins(ev))}")
        if self.got is None and self.expected is not None:
            e = self.expected
            return (f"{head}: missing event: the run finished after {self.n} events, but the "
                    f"log recorded {event_tag(e.event)!r} (actor {e.actor!r}, seq {e.seq}) "
                    f"{_short(event_digest_builtins(e.event))}")
        lines = [f"{head}: the run's event does not match the recorded one"
                 + (f" (seq {self.expected.seq})" if self.expected else "")]
        for field, rec, got in self.differences():
            lines.append(f"  {field}: recorded {_short(rec)} but got {_short(got)}")
        if self.note:
            lines.append(f"  {self.note}")
        return "\n".join(lines)


class Stream:
    """Emit events into one stream, in one of the modes ``append``/``resume``/``verify``."""

    def __init__(self, writer: Writer | None, stream_id: str, *,
                 recorded: Sequence[Record] = (), mode: Mode = "append", ack: AckMode = "each") -> None:
        if mode not in ("append", "resume", "verify"):
            raise ValueError(f"mode must be append, resume or verify, not {mode!r}")
        if ack not in ("each", "deferred"):
            raise ValueError(f"ack must be each or deferred, not {ack!r}")
        if writer is None and mode != "verify":
            raise ValueError(f"mode {mode!r} needs a writer (only 'verify' runs without one)")
        for i, r in enumerate(recorded):
            if r.stream != stream_id or r.n != i:
                raise ValueError(f"recorded[{i}] is {r.stream!r}#{r.n}, not {stream_id!r}#{i}")
        self.writer = writer
        self.stream_id = stream_id
        self.recorded = tuple(recorded)
        self.mode: Mode = mode
        self._digest = StreamDigest()
        # What the digest has yet to cover, in order: digest bytes already computed, or
        # (n, cause, actor, event) whose bytes nothing has needed yet (see `digest`).
        self._undigested: list[bytes | tuple[int, Ref | None, str, Event]] = []
        self.ack: AckMode = ack
        self._unacked: list[Ack] = []
        self._lock = trio.Lock()
        self.memo: dict[str, Any] = {}
        """State the agents writing this stream keep about it (e.g. the LLM port's memory
        of its earlier calls); it lives and dies with this stream object."""
        if mode == "append":
            self._undigested.extend((r.n, r.cause, r.actor, r.event) for r in self.recorded)
            self.next_n = len(self.recorded)
        else:
            self.next_n = 0

    @property
    def digest(self) -> StreamDigest:
        """The running digest of the stream's events so far.

        Computed when asked, not per emit: nothing at run time reads it (a run's digest
        is folded from the log), and an episode's thousand-odd events would otherwise pay
        for canonical encoding and hashing that nobody looks at. Events compared with a
        recorded stream (resume, verify) have their bytes computed anyway and are hashed
        at once (recorded positions come first in a stream, so the chain stays in order).
        """
        if self._undigested:
            sid = self.stream_id
            for d in self._undigested:
                self._digest.update_bytes(d if isinstance(d, bytes) else digest_bytes(sid, *d))
            self._undigested.clear()
        return self._digest

    @property
    def id(self) -> str:
        """The stream id (what agents and the LLM port call it)."""
        return self.stream_id

    def peek(self) -> Record | None:
        """The recorded record at the next position, if the log has one."""
        if self.next_n < len(self.recorded):
            return self.recorded[self.next_n]
        return None

    async def emit(self, event: Event, *, actor: str, cause: Ref | None = None) -> Ref:
        """Emit one event; returns its ``Ref`` once committed (or confirmed on replay)."""
        return (await self.emit_many([(event, actor, cause)]))[0]

    async def emit_many(self, items: Sequence[Emitted]) -> list[Ref]:
        """Emit several events in one append call (one transaction)."""
        if self.ack == "deferred" and not self._lock.locked():
            # Nobody else is emitting here and nothing is awaited unless the channel is
            # full: the lock is only taken then.
            await trio.lowlevel.checkpoint_if_cancelled()
            prepared = self._prepare(items)
            n, refs, new, digests = prepared
            if new:
                assert self.writer is not None
                try:
                    self._unacked.append(self.writer.submit_nowait(new, after=self._last_unacked()))
                except trio.WouldBlock:
                    async with self._lock:  # acquired before any other emit can run
                        return await self._emit(items, prepared)
            self._advance(n, digests)
            return refs
        async with self._lock:
            return await self._emit(items)

    async def _emit(self, items: Sequence[Emitted],
                    prepared: tuple[int, list[Ref], list[Pending], list[Any]] | None = None) -> list[Ref]:
        n, refs, new, digests = prepared or self._prepare(items)
        if new:
            assert self.writer is not None
            ack = await self.writer.submit(new, after=self._last_unacked())
            if self.ack == "deferred":
                self._unacked.append(ack)
            else:
                await ack.committed()
        self._advance(n, digests)
        return refs

    def _prepare(self, items: Sequence[Emitted]) -> tuple[int, list[Ref], list[Pending], list[Any]]:
        """Check the items against the mode and the recorded stream; nothing changes yet."""
        n = self.next_n
        refs: list[Ref] = []
        new: list[Pending] = []
        digests: list[bytes | tuple[int, Ref | None, str, Event]] = []
        sid, mode, recorded = self.stream_id, self.mode, self.recorded
        for event, actor, cause in items:
            if not isinstance(event, Event):
                raise TypeError(f"expected an Event, got {type(event).__name__}")
            if mode != "append" and n < len(recorded):
                rec = recorded[n]
                db = digest_bytes(sid, n, cause, actor, event)
                if _record_bytes(rec) != db:
                    raise Divergence(sid, n, rec, (event, actor, cause))
                digests.append(db)
            elif mode == "verify":
                raise Divergence(sid, n, None, (event, actor, cause))
            else:
                new.append(Pending(sid, n, cause, actor, event))
                digests.append((n, cause, actor, event))
            refs.append(Ref(sid, n))
            n += 1
        return n, refs, new, digests

    def _last_unacked(self) -> Ack | None:
        return self._unacked[-1] if self._unacked else None

    def _advance(self, n: int, digests: list[Any]) -> None:
        for d in digests:
            if not self._undigested and isinstance(d, bytes):
                self._digest.update_bytes(d)  # computed for a comparison already: hash it now
            else:
                self._undigested.append(d)
        self.next_n = n

    async def flush(self) -> None:
        """Wait until everything this stream sent is committed; raise the first failure.

        A no-op with ``ack="each"`` (every emit already waited). Failed appends stay
        failed: the stream's later appends were refused too (their positions no longer
        follow), so the error is raised again by every later flush.
        """
        if not self._unacked:
            await trio.lowlevel.checkpoint()
            return
        await self._unacked[-1].wait()  # committed in order: the last one decides last
        for a in self._unacked:
            if a.error is not None:
                raise a.error
        self._unacked.clear()

    def finish(self) -> None:
        """Declare the agent done; raises Divergence if the log recorded more events."""
        if self.mode != "append" and self.next_n < len(self.recorded):
            raise Divergence(self.stream_id, self.next_n, self.recorded[self.next_n], None)
        if any(not a.done for a in self._unacked):
            raise LogError(f"stream {self.stream_id!r} finished with appends not yet committed: "
                           "await stream.flush() first")
        if self.writer is not None:
            self.writer.forget(self.stream_id)

    def __repr__(self) -> str:
        return (f"Stream({self.stream_id!r}, mode={self.mode!r}, next_n={self.next_n}, "
                f"recorded={len(self.recorded)})")


def _record_bytes(r: Record) -> bytes:
    return digest_bytes(r.stream, r.n, r.cause, r.actor, r.event)


__all__ = ["Divergence", "Mode", "Stream"]

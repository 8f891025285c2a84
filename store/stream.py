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
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import trio

from .errors import LogError
from .events.base import Event, Ref
from .record import Record, StreamDigest, digest_bytes, event_digest_builtins, event_tag
from .writer import Pending, Writer

Mode = Literal["append", "resume", "verify"]
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
                 recorded: Sequence[Record] = (), mode: Mode = "append") -> None:
        if mode not in ("append", "resume", "verify"):
            raise ValueError(f"mode must be append, resume or verify, not {mode!r}")
        if writer is None and mode != "verify":
            raise ValueError(f"mode {mode!r} needs a writer (only 'verify' runs without one)")
        for i, r in enumerate(recorded):
            if r.stream != stream_id or r.n != i:
                raise ValueError(f"recorded[{i}] is {r.stream!r}#{r.n}, not {stream_id!r}#{i}")
        self.writer = writer
        self.stream_id = stream_id
        self.recorded = tuple(recorded)
        self.mode: Mode = mode
        self.digest = StreamDigest()
        self._lock = trio.Lock()
        if mode == "append":
            for r in self.recorded:
                self.digest.update(r)
            self.next_n = len(self.recorded)
        else:
            self.next_n = 0

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
        async with self._lock:
            n = self.next_n
            refs: list[Ref] = []
            new: list[Pending] = []
            digests: list[bytes] = []
            for event, actor, cause in items:
                if not isinstance(event, Event):
                    raise TypeError(f"expected an Event, got {type(event).__name__}")
                db = digest_bytes(self.stream_id, n, cause, actor, event)
                if self.mode != "append" and n < len(self.recorded):
                    rec = self.recorded[n]
                    if _record_bytes(rec) != db:
                        raise Divergence(self.stream_id, n, rec, (event, actor, cause))
                elif self.mode == "verify":
                    raise Divergence(self.stream_id, n, None, (event, actor, cause))
                else:
                    new.append(Pending(self.stream_id, n, cause, actor, event))
                digests.append(db)
                refs.append(Ref(self.stream_id, n))
                n += 1
            if new:
                assert self.writer is not None
                await self.writer.append(new)
            for d in digests:
                self.digest.update_bytes(d)
            self.next_n = n
            return refs

    def finish(self) -> None:
        """Declare the agent done; raises Divergence if the log recorded more events."""
        if self.mode != "append" and self.next_n < len(self.recorded):
            raise Divergence(self.stream_id, self.next_n, self.recorded[self.next_n], None)
        if self.writer is not None:
            self.writer.forget(self.stream_id)

    def __repr__(self) -> str:
        return (f"Stream({self.stream_id!r}, mode={self.mode!r}, next_n={self.next_n}, "
                f"recorded={len(self.recorded)})")


def _record_bytes(r: Record) -> bytes:
    return digest_bytes(r.stream, r.n, r.cause, r.actor, r.event)


__all__ = ["Divergence", "Mode", "Stream"]

"""Server-sent events (the ``text/event-stream`` format) parsed from bytes as they arrive.

Per the HTML standard's event-stream rules: lines end with LF, CRLF or CR; an empty line
dispatches the event; ``data:`` lines of one event are joined with LF; a single space
after the colon is dropped; lines starting with ``:`` are comments; ``event:``, ``id:``
and ``retry:`` are read and the event type kept. Pure: no I/O.
"""

from __future__ import annotations

from typing import NamedTuple


class Event(NamedTuple):
    data: str
    event: str = "message"


class SseParser:
    """Feed bytes in, get whole events out; :attr:`pending` says whether a partial event is buffered."""

    __slots__ = ("_buf", "_data", "_event")

    def __init__(self) -> None:
        self._buf = b""
        self._data: list[str] = []
        self._event = ""

    @property
    def pending(self) -> bool:
        return bool(self._buf.strip()) or bool(self._data)

    def feed(self, chunk: bytes) -> list[Event]:
        buf = self._buf + chunk if self._buf else chunk
        if b"\r" in buf:
            # CRLF and lone CR are line ends too; a CR at the very end may be half of a CRLF.
            keep_cr = buf.endswith(b"\r")
            buf = buf[:-1] if keep_cr else buf
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n") + (b"\r" if keep_cr else b"")
        events: list[Event] = []
        start = 0
        while True:
            end = buf.find(b"\n", start)
            if end < 0:
                break
            line = buf[start:end]
            start = end + 1
            if not line:
                if self._data:
                    events.append(Event("\n".join(self._data), self._event or "message"))
                self._data = []
                self._event = ""
                continue
            if line[:1] == b":":
                continue
            name, sep, value = line.partition(b":")
            if sep and value[:1] == b" ":
                value = value[1:]
            if name == b"data":
                self._data.append(value.decode("utf-8", "replace"))
            elif name == b"event":
                self._event = value.decode("utf-8", "replace")
        self._buf = buf[start:]
        return events

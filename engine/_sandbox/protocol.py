"""Wire protocol between the pool and its workers: length-prefixed msgpack frames.

Each frame is a 4-byte big-endian length followed by a msgspec msgpack payload.
Requests carry an id; a worker answers strictly in request order (FIFO), which
lets the parent pipeline many requests per worker and know which one is running.
"""

from __future__ import annotations

import struct
from typing import Any

import msgspec

from scaleenv._model.integrity import Constraints
from scaleenv._sandbox.types import CallOutcome, Limits

HEADER = struct.Struct(">I")
MAX_FRAME = 256 * 1024 * 1024


class Hello(msgspec.Struct, tag="hello", array_like=True):
    """First frame to a fresh worker: its limits."""

    limits: Limits


class OpenReq(msgspec.Struct, tag="open", array_like=True):
    """Compile `tools` and make `state` resident under `session`.

    ``code_id`` names the tool set (a digest of it). A worker keeps the tool sets it was
    sent; the pool sends ``tools=None`` for a set the worker already holds (the same
    domain's code for every episode was most of what crossed the pipe). A worker that
    does not hold it answers :data:`UNKNOWN_CODE` and the pool sends it again in full.
    The integrity constraints the session enforces belong to the set (``code_id`` covers
    them; None: none enforced) and travel with the tools.
    """

    id: int
    session: str
    tools: dict[str, str] | None
    state: Any
    code_id: str = ""
    constraints: Constraints | None = None


UNKNOWN_CODE = "unknown code set"
"""The error a worker answers to an OpenReq naming a tool set it does not hold."""


class CallReq(msgspec.Struct, tag="call", array_like=True):
    """Run one tool of a session."""

    id: int
    session: str
    tool: str
    args: Any
    now_us: int = 0
    """The session clock's reading for this call (microseconds since 1970, naive UTC)."""


class StateReq(msgspec.Struct, tag="state", array_like=True):
    """Return a session's committed state."""

    id: int
    session: str


class CloseReq(msgspec.Struct, tag="close", array_like=True):
    """Forget a session."""

    id: int
    session: str


Request = Hello | OpenReq | CallReq | StateReq | CloseReq


class Reply(msgspec.Struct, array_like=True, omit_defaults=True):
    """Answer to request `id` (id 0 answers Hello)."""

    id: int
    outcome: CallOutcome | None = None
    state: Any = None
    error: str | None = None


request_encoder = msgspec.msgpack.Encoder()
request_decoder = msgspec.msgpack.Decoder(Request)
reply_encoder = msgspec.msgpack.Encoder()
reply_decoder = msgspec.msgpack.Decoder(Reply)


def frame(payload: bytes) -> bytes:
    """Prefix `payload` with its length."""
    return HEADER.pack(len(payload)) + payload


class FrameBuffer:
    """Accumulates bytes and yields complete frame payloads."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """Add `data`; return every payload now complete. Raises ValueError on a bad length."""
        self._buf += data
        out: list[bytes] = []
        while len(self._buf) >= HEADER.size:
            (size,) = HEADER.unpack_from(self._buf)
            if size > MAX_FRAME:
                raise ValueError(f"frame of {size} bytes exceeds {MAX_FRAME}")
            end = HEADER.size + size
            if len(self._buf) < end:
                break
            out.append(bytes(self._buf[HEADER.size : end]))
            del self._buf[:end]
        return out

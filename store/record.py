"""The stored record, its on-disk codec, and the digests that cover it.

On disk a record is ``b"SE" + format byte + CRC32(body) (big-endian u32) + body`` where
the body is the msgpack array ``[seq, stream, n, cause, actor, wall_ns, event]``. The
envelope is an array (frozen forever: new envelope fields mean a new format byte); the
event itself is a msgpack *map* with its ``type`` tag, so event types can evolve by
adding defaulted fields (see :mod:`scaleenv._store.events.base`).

Digests never cover ``seq`` (it depends on how trio interleaved streams) nor
``wall_ns`` nor an event's ``digest_exclude`` fields.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple, Union

import msgspec

from .errors import IncompatibleEvent, NewerLogFormat, RecordDamaged, UnknownEventType
from .events import ALL_EVENT_TYPES
from .events.base import Event, Ref
from .specs import drop_added

MAGIC = b"SE"
FORMAT_VERSION = 1
"""The record format this code writes and the newest it reads."""

_HEADER = struct.Struct(">2sBI")
HEADER_SIZE = _HEADER.size  # 7


class Record(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One event as the log stores it.

    ``seq`` is global (1-based, assigned by the log's writer); ``n`` is the 0-based
    position within ``stream``. ``cause`` points at the event this one follows from.
    ``wall_ns`` is wall-clock time of the commit batch and is excluded from digests.
    (``gc=False``: a record cannot be part of a reference cycle; it only holds values.)
    """

    seq: int
    stream: str
    n: int
    cause: Ref | None
    actor: str
    wall_ns: int
    event: Event

    @property
    def ref(self) -> Ref:
        """The deterministic pointer to this record: ``Ref(stream, n)``."""
        return Ref(self.stream, self.n)

    @property
    def type(self) -> str:
        """The event's tag, e.g. ``"llm.called"``."""
        return event_tag(self.event)


def event_tag(event: Event) -> str:
    """The wire tag of an event instance."""
    return type(event).__struct_config__.tag  # type: ignore[return-value]


class Codec:
    """Encodes records to bytes and decodes them with a fixed set of event types.

    ``Codec()`` uses :data:`scaleenv._store.events.ALL_EVENT_TYPES`, resolved at first
    use; tests pass their own ``Codec(event_types)``.
    """

    def __init__(self, event_types: Iterable[type[Event]] | None = None) -> None:
        self._given = tuple(event_types) if event_types is not None else None
        self._decoder: msgspec.msgpack.Decoder[Any] | None = None
        self._tags: frozenset[str] = frozenset()
        self._encoder = msgspec.msgpack.Encoder()
        self._generic = msgspec.msgpack.Decoder()

    @property
    def event_types(self) -> tuple[type[Event], ...]:
        if self._given is not None:
            return self._given
        return ALL_EVENT_TYPES

    def _build(self) -> msgspec.msgpack.Decoder[Any]:
        types = self.event_types
        if not types:
            raise ValueError("no event types registered: pass Codec(event_types)")
        union: Any = types[0] if len(types) == 1 else Union[types]  # noqa: UP007
        body = tuple[int, str, int, Union[Ref, None], str, int, union]  # noqa: UP007
        self._tags = frozenset(event_tag_of_type(t) for t in types)
        self._decoder = msgspec.msgpack.Decoder(body)
        return self._decoder

    @property
    def tags(self) -> frozenset[str]:
        if self._decoder is None:
            self._build()
        return self._tags

    # -- encode -------------------------------------------------------------------
    def encode_body(self, seq: int, stream: str, n: int, cause: Ref | None, actor: str,
                    wall_ns: int, event: Event) -> bytes:
        return self._encoder.encode((seq, stream, n, cause, actor, wall_ns, event))

    def encode(self, record: Record) -> bytes:
        """The on-disk bytes of a record."""
        body = self.encode_body(record.seq, record.stream, record.n, record.cause,
                                record.actor, record.wall_ns, record.event)
        return frame(body)

    # -- decode -------------------------------------------------------------------
    def decode(self, data: bytes | memoryview, seq: int = 0) -> Record:
        """Decode on-disk bytes; ``seq`` (the key) names the record in errors."""
        body = unframe(data, seq)
        decoder = self._decoder or self._build()
        try:
            t = decoder.decode(body)
        except msgspec.ValidationError as exc:
            raise self._explain(body, seq, exc) from None
        except msgspec.DecodeError as exc:
            raise RecordDamaged(seq, f"undecodable body: {exc}") from None
        if seq and t[0] != seq:
            raise RecordDamaged(seq, f"stored under seq={seq} but says seq={t[0]}")
        return Record(seq=t[0], stream=t[1], n=t[2], cause=t[3], actor=t[4], wall_ns=t[5],
                      event=t[6])

    def _explain(self, body: bytes | memoryview, seq: int, exc: Exception) -> Exception:
        try:
            raw = self._generic.decode(body)
            tag = raw[6].get("type") if isinstance(raw, list) and len(raw) == 7 and isinstance(
                raw[6], dict) else None
        except Exception:  # noqa: BLE001 - any failure here means the body is bad
            return RecordDamaged(seq, f"undecodable body: {exc}")
        if tag is None:
            return RecordDamaged(seq, f"malformed envelope: {exc}")
        if tag not in self.tags:
            return UnknownEventType(seq, tag)
        return IncompatibleEvent(seq, tag, str(exc))


def event_tag_of_type(t: type[Event]) -> str:
    tag = t.__struct_config__.tag
    if not isinstance(tag, str):
        raise TypeError(f"{t.__name__} needs an explicit string tag (class X(Event, tag='a.b'))")
    return tag


def frame(body: bytes) -> bytes:
    """Prefix a body with magic, format byte and CRC32."""
    return _HEADER.pack(MAGIC, FORMAT_VERSION, zlib.crc32(body)) + body


def unframe(data: bytes | memoryview, seq: int = 0) -> memoryview:
    """Check magic, format byte and CRC; return the body. Raises typed errors."""
    if len(data) < HEADER_SIZE + 1:
        raise RecordDamaged(seq, f"truncated: {len(data)} bytes")
    magic, version, crc = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise RecordDamaged(seq, f"bad magic {bytes(magic)!r}")
    if version > FORMAT_VERSION:
        raise NewerLogFormat(version, FORMAT_VERSION, f"record seq={seq}")
    if version < 1:
        raise RecordDamaged(seq, f"bad format byte {version}")
    body = memoryview(data)[HEADER_SIZE:]
    if zlib.crc32(body) != crc:
        raise RecordDamaged(seq, "CRC mismatch")
    return body


class Envelope(NamedTuple):
    """A record's envelope with its ``cause`` and ``event`` left undecoded (msgpack bytes)."""

    seq: int
    stream: str
    n: int
    cause: msgspec.Raw
    actor: str
    wall_ns: int
    event: msgspec.Raw


_ENVELOPE = msgspec.msgpack.Decoder(tuple[int, str, int, msgspec.Raw, str, int, msgspec.Raw])


def decode_envelope(data: bytes | memoryview, seq: int = 0) -> Envelope:
    """The envelope of on-disk bytes (frame and CRC checked), its event left as bytes for
    :func:`peek_tag` and a decoder of the caller's choice. Raises :class:`RecordDamaged`."""
    try:
        t = _ENVELOPE.decode(unframe(data, seq))
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise RecordDamaged(seq, f"malformed envelope: {exc}") from None
    if seq and t[0] != seq:
        raise RecordDamaged(seq, f"stored under seq={seq} but says seq={t[0]}")
    return Envelope(*t)


class _Tag(msgspec.Struct):
    """Only the tag of an event (msgspec skips every other field without building it)."""

    type: str


_TAG = msgspec.msgpack.Decoder(_Tag)


def peek_tag(event: msgspec.Raw | bytes | memoryview, seq: int = 0) -> str:
    """An event's tag, read from its first bytes without decoding the event.

    msgspec writes a tagged struct's tag first (``{"type": "llm.called", ...}``); an event
    laid out otherwise (another writer) is read the slow way, skipping the other fields."""
    b = memoryview(event)
    head = b[0] if len(b) else 0
    i = 1 if 0x80 <= head <= 0x8F else 3 if head == 0xDE else 5 if head == 0xDF else 0
    if i and b[i:i + 5] == b"\xa4type":
        size = b[i + 5]
        if 0xA0 <= size <= 0xBF:
            return bytes(b[i + 6:i + 6 + (size & 0x1F)]).decode()
    try:
        return _TAG.decode(b).type
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise RecordDamaged(seq, f"event without a readable type tag: {exc}") from None


_default_codec: Codec | None = None


def default_codec() -> Codec:
    """The process-wide codec over ``ALL_EVENT_TYPES`` (built on first use)."""
    global _default_codec
    if _default_codec is None:
        _default_codec = Codec()
    return _default_codec


# -- digests ----------------------------------------------------------------------

_det = msgspec.msgpack.Encoder(order="deterministic")


def event_digest_builtins(event: Event) -> dict[str, Any]:
    """The event as builtins, minus its class's ``digest_exclude`` fields and the
    ``digest_added`` fields that hold their default (see :mod:`.events.base`)."""
    b: dict[str, Any] = msgspec.to_builtins(event)
    cls = type(event)
    for name in cls.digest_exclude:
        b.pop(name, None)
    for name, default in cls.digest_added:
        if b.get(name, default) == default:
            b.pop(name, None)
    if cls.digest_nested:
        drop_added(event, b)
    return b


def digest_bytes(stream: str, n: int, cause: Ref | None, actor: str, event: Event) -> bytes:
    """Deterministic bytes of what a digest covers (never seq nor wall time)."""
    c = None if cause is None else [cause.stream, cause.n]
    return _det.encode((stream, n, c, actor, event_digest_builtins(event)))


def record_digest_bytes(record: Record) -> bytes:
    """Deterministic bytes of a record for digests: stream, n, cause, actor, event."""
    return digest_bytes(record.stream, record.n, record.cause, record.actor, record.event)


_ZERO = bytes(32)


class StreamDigest:
    """A running blake2b chain over a stream's records: ``d_n = H(d_{n-1} || bytes_n)``."""

    __slots__ = ("_d", "count")

    def __init__(self) -> None:
        self._d = _ZERO
        self.count = 0

    def update_bytes(self, b: bytes) -> None:
        self._d = hashlib.blake2b(self._d + b, digest_size=32).digest()
        self.count += 1

    def update(self, record: Record) -> None:
        self.update_bytes(record_digest_bytes(record))

    def hexdigest(self) -> str:
        return self._d.hex()

    @classmethod
    def restore(cls, hexdigest: str, count: int) -> StreamDigest:
        """A digest that continues from a stored value (e.g. a snapshot's)."""
        d = cls()
        d._d, d.count = bytes.fromhex(hexdigest), count
        return d

    def copy(self) -> StreamDigest:
        d = StreamDigest()
        d._d, d.count = self._d, self.count
        return d

    @classmethod
    def of(cls, records: Iterable[Record]) -> StreamDigest:
        d = cls()
        for r in records:
            d.update(r)
        return d

    def __repr__(self) -> str:
        return f"StreamDigest(count={self.count}, {self.hexdigest()[:16]}...)"


CHECK_STREAMS = "check/"
"""The prefix of the streams that record checks of a run (``scaleenv._store.events.checks``);
the same as ``scaleenv._streams.CHECK`` (the store does not import the stream ids' module)."""


def run_digest(stream_digests: dict[str, str]) -> str:
    """One digest over the run's streams: blake2b of the sorted ``(stream, digest)`` pairs.

    Check streams (:data:`CHECK_STREAMS`: what ``replay --verify`` and ``rerun`` found) are
    left out: a check is a fact about the run, and recording one must not change its digest."""
    pairs: Sequence[tuple[str, str]] = sorted((s, d) for s, d in stream_digests.items()
                                              if not s.startswith(CHECK_STREAMS))
    return hashlib.blake2b(_det.encode(pairs), digest_size=32).hexdigest()


def stream_digests(records: Iterable[Record]) -> dict[str, str]:
    """Per-stream digests of records in any global order (each stream in its own order)."""
    ds: dict[str, StreamDigest] = {}
    for r in records:
        d = ds.get(r.stream)
        if d is None:
            d = ds[r.stream] = StreamDigest()
        d.update(r)
    return {k: v.hexdigest() for k, v in ds.items()}

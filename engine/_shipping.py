"""Records on the wire between a driver and its shard workers: encoded, in bounded chunks.

A chunk is a list of encoded records (the log's own framed bytes: header, msgpack body,
CRC; :class:`scaleenv._store.record.Codec`), at most :data:`CHUNK_RECORDS` records and
about :data:`CHUNK_BYTES` bytes (one record larger than that travels alone). Nothing here
knows about Ray: the driver puts chunks in Ray's object store, the in-process executor
hands them over as they are. Pure helpers, no I/O beyond reading a log.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from scaleenv._store.log import Log
from scaleenv._store.record import Codec, Record, default_codec
from scaleenv._store.writer import Pending

CHUNK_RECORDS = 1024
CHUNK_BYTES = 4 << 20

Chunk = list[bytes]


def chunked(encoded: Iterable[bytes], *, max_records: int = CHUNK_RECORDS,
            max_bytes: int = CHUNK_BYTES) -> Iterator[Chunk]:
    """Group encoded records into chunks of at most ``max_records`` records and ~``max_bytes`` bytes."""
    if max_records < 1 or max_bytes < 1:
        raise ValueError("chunk bounds must be at least 1")
    buf: Chunk = []
    size = 0
    for b in encoded:
        if buf and (len(buf) >= max_records or size + len(b) > max_bytes):
            yield buf
            buf, size = [], 0
        buf.append(b)
        size += len(b)
    if buf:
        yield buf


def encoded_streams(log: Log, streams: Iterable[str], codec: Codec | None = None) -> Iterator[bytes]:
    """The records of ``streams``, stream after stream in the order given, encoded."""
    enc = (codec or default_codec()).encode
    for sid in streams:
        for r in log.read_stream(sid):
            yield enc(r)


def encoded_log(log: Log, from_seq: int = 1) -> Iterator[bytes]:
    """Every record of ``log`` from ``from_seq`` on, in seq order, as stored (no decoding)."""
    for part in log.read_raw(from_seq):
        for _seq, raw in part:
            yield raw


def take(log: Log, after_seq: int, *, max_records: int = CHUNK_RECORDS, max_bytes: int = CHUNK_BYTES) -> Chunk:
    """The next chunk of ``log`` past ``after_seq`` (empty if there is nothing new)."""
    out: Chunk = []
    size = 0
    for raw in encoded_log(log, after_seq + 1):
        if out and (len(out) >= max_records or size + len(raw) > max_bytes):
            break
        out.append(bytes(raw))
        size += len(raw)
    return out


def decode_chunk(chunk: Sequence[bytes], codec: Codec | None = None) -> list[Record]:
    """The records of a chunk (their ``seq`` is the sender's)."""
    dec = (codec or default_codec()).decode
    return [dec(b) for b in chunk]


def as_pending(records: Iterable[Record]) -> list[Pending]:
    """Records as writer items for another log (the receiver assigns its own ``seq``)."""
    return [Pending(r.stream, r.n, r.cause, r.actor, r.event) for r in records]


__all__ = ["CHUNK_BYTES", "CHUNK_RECORDS", "Chunk", "as_pending", "chunked", "decode_chunk", "encoded_log",
           "encoded_streams", "take"]

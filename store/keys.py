"""The log's keys: a seq in ``events``, a (stream, position) in ``streams``."""

from __future__ import annotations

import lmdb

U64 = 8
"""Width of the big-endian integers in keys (seqs and stream positions)."""


def seq_key(seq: int) -> bytes:
    """The ``events`` key of record ``seq``."""
    return seq.to_bytes(U64, "big")


def stream_key(stream: str, n: int) -> bytes:
    """The ``streams`` key of position ``n`` of ``stream``."""
    return stream.encode() + b"\0" + n.to_bytes(U64, "big")


def stream_len(cur: lmdb.Cursor, prefix: bytes) -> int:
    """Length of the stream whose keys start with ``prefix`` (id + NUL)."""
    if cur.set_range(prefix[:-1] + b"\1"):
        if not cur.prev():
            return 0
    elif not cur.last():
        return 0
    k = bytes(cur.key())
    if not k.startswith(prefix) or len(k) != len(prefix) + U64:
        return 0
    return int.from_bytes(k[len(prefix):], "big") + 1

"""The record codec: bytes round trip, typed damage errors, digests."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from store_testevents import Blob, Measured, Said

from scaleenv._store import (
    Codec,
    Record,
    RecordDamaged,
    StreamDigest,
    record_digest_bytes,
    run_digest,
    stream_digests,
)
from scaleenv._store.events.base import Ref
from scaleenv._store.record import HEADER_SIZE, MAGIC


def rec(seq: int = 1, stream: str = "episode/1", n: int = 0, event=None, **kw) -> Record:
    return Record(seq=seq, stream=stream, n=n, cause=kw.get("cause"), actor=kw.get("actor", "policy"),
                  wall_ns=kw.get("wall_ns", 123), event=event or Said(text="hi"))


CODEC = Codec((Said, Measured, Blob))

events = st.one_of(
    st.builds(Said, text=st.text(max_size=30), k=st.integers(-(2**63), 2**63 - 1)),
    st.builds(Measured, value=st.floats(allow_nan=False), latency_s=st.floats(0, 10)),
    st.builds(Blob, data=st.binary(max_size=64), tags=st.lists(st.text(max_size=5), max_size=3)),
)


@given(ev=events, seq=st.integers(1, 2**40), n=st.integers(0, 2**40),
       cause=st.none() | st.builds(Ref, st.text(min_size=1, max_size=10), st.integers(0, 99)))
def test_round_trip(ev, seq, n, cause) -> None:
    codec = CODEC
    r = rec(seq=seq, n=n, event=ev, cause=cause)
    data = codec.encode(r)
    assert data[:2] == MAGIC
    assert codec.decode(data, seq) == r


def test_damage_is_typed_and_names_the_seq(codec: Codec) -> None:
    data = bytearray(codec.encode(rec(seq=7)))
    bad_magic = b"XX" + bytes(data[2:])
    with pytest.raises(RecordDamaged, match="seq=7.*magic"):
        codec.decode(bad_magic, 7)
    flipped = bytearray(data)
    flipped[HEADER_SIZE + 3] ^= 0x40
    with pytest.raises(RecordDamaged, match="CRC"):
        codec.decode(bytes(flipped), 7)
    with pytest.raises(RecordDamaged, match="truncated"):
        codec.decode(bytes(data[:5]), 7)
    with pytest.raises(RecordDamaged, match="CRC"):
        codec.decode(bytes(data[:-3]), 7)
    # A record stored under the wrong key is damage too.
    with pytest.raises(RecordDamaged, match="says seq=7"):
        codec.decode(bytes(data), 8)


def test_digest_ignores_seq_wall_time_and_excluded_fields() -> None:
    a = rec(seq=1, wall_ns=1, event=Measured(value=2.0, latency_s=0.5))
    b = rec(seq=99, wall_ns=2, event=Measured(value=2.0, latency_s=9.0))
    assert record_digest_bytes(a) == record_digest_bytes(b)
    c = rec(seq=1, event=Measured(value=2.5))
    assert record_digest_bytes(a) != record_digest_bytes(c)
    d = rec(seq=1, actor="user", event=Measured(value=2.0))
    assert record_digest_bytes(a) != record_digest_bytes(d)
    e = rec(seq=1, cause=Ref("x", 0), event=Measured(value=2.0))
    assert record_digest_bytes(a) != record_digest_bytes(e)


def test_stream_digest_chains() -> None:
    rs = [rec(seq=i + 1, n=i, event=Said(text=str(i))) for i in range(5)]
    d = StreamDigest.of(rs)
    assert d.count == 5
    assert d.hexdigest() != StreamDigest.of(rs[:4]).hexdigest()
    swapped = [rs[1], rs[0], *rs[2:]]
    assert StreamDigest.of(swapped).hexdigest() != d.hexdigest()


@given(seed=st.integers(0, 2**32))
def test_run_digest_is_independent_of_interleaving(seed: int) -> None:
    streams = {f"s{k}": [rec(stream=f"s{k}", n=i, event=Said(text=f"{k}.{i}")) for i in range(4)]
               for k in range(4)}
    rng = random.Random(seed)
    order = [s for s, rs in streams.items() for _ in rs]
    rng.shuffle(order)
    it = {s: iter(rs) for s, rs in streams.items()}
    interleaved = []
    for seq, s in enumerate(order, 1):
        r = next(it[s])
        interleaved.append(Record(seq=seq, stream=r.stream, n=r.n, cause=r.cause, actor=r.actor,
                                  wall_ns=seq, event=r.event))
    canonical = [r for rs in streams.values() for r in rs]
    assert stream_digests(interleaved) == stream_digests(canonical)
    assert run_digest(stream_digests(interleaved)) == run_digest(stream_digests(canonical))

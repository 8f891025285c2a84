"""Schema evolution: defaulted new fields, unknown tags, newer formats."""

from __future__ import annotations

import lmdb
import msgspec
import pytest
from store_testevents import TEST_EVENT_TYPES, Said

from scaleenv._store import Codec, IncompatibleEvent, Log, NewerLogFormat, Record, UnknownEventType
from scaleenv._store.events.base import Event
from scaleenv._store.log import META_PREFIX, seq_key
from scaleenv._store.record import frame


class ToolV1(Event, tag="test.tool"):
    name: str


class ToolV2(Event, tag="test.tool"):
    name: str
    retries: int = 3
    notes: list[str] = []


class ToolV3Bad(Event, tag="test.tool"):
    name: int  # changed type: forbidden by the rules


class Novel(Event, tag="test.novel"):
    x: int


def _rec(event: Event, seq: int = 1) -> Record:
    return Record(seq=seq, stream="tool/x", n=0, cause=None, actor="coder", wall_ns=0, event=event)


def test_new_version_reads_old_events_with_defaults() -> None:
    old = Codec([ToolV1]).encode(_rec(ToolV1(name="cancel_order")))
    got = Codec([ToolV2]).decode(old, 1)
    assert got.event == ToolV2(name="cancel_order", retries=3, notes=[])


def test_old_version_skips_new_fields() -> None:
    new = Codec([ToolV2]).encode(_rec(ToolV2(name="a", retries=5)))
    assert Codec([ToolV1]).decode(new, 1).event == ToolV1(name="a")


def test_changed_field_type_is_a_typed_error() -> None:
    old = Codec([ToolV1]).encode(_rec(ToolV1(name="a"), seq=4))
    with pytest.raises(IncompatibleEvent, match="seq=4.*test.tool"):
        Codec([ToolV3Bad]).decode(old, 4)


def test_unknown_tag_names_tag_and_seq() -> None:
    data = Codec([Novel]).encode(_rec(Novel(x=1), seq=12))
    with pytest.raises(UnknownEventType) as ei:
        Codec(TEST_EVENT_TYPES).decode(data, 12)
    assert ei.value.seq == 12 and ei.value.tag == "test.novel"
    assert "test.novel" in str(ei.value) and "seq=12" in str(ei.value)


def test_newer_record_format_byte() -> None:
    data = bytearray(Codec(TEST_EVENT_TYPES).encode(_rec(Said(text="x"), seq=3)))
    data[2] = 9
    with pytest.raises(NewerLogFormat) as ei:
        Codec(TEST_EVENT_TYPES).decode(bytes(data), 3)
    assert (ei.value.found, ei.value.supported) == (9, 1)


async def test_unknown_tag_in_a_log(log_path, codec) -> None:
    with Log.open(log_path, codec=Codec([*TEST_EVENT_TYPES, Novel])) as log:
        async with log.writer() as w:
            await w.append([("a", 0, None, "x", Said(text="1")), ("a", 1, None, "x", Novel(x=2)),
                            ("a", 2, None, "x", Said(text="3"))])
    with Log.open(log_path, readonly=True, codec=codec) as log:
        assert log.get(1).event == Said(text="1")
        with pytest.raises(UnknownEventType, match="seq=2.*test.novel"):
            log.get(2)
        assert log.check() == []  # an unknown type is not damage


def test_newer_log_format_in_meta(log_path, codec) -> None:
    Log.open(log_path, codec=codec).close()
    env = lmdb.open(str(log_path), max_dbs=8)
    meta = env.open_db(b"meta")
    with env.begin(write=True) as txn:
        txn.put((META_PREFIX + "format").encode(), msgspec.msgpack.encode(7), db=meta)
    env.close()
    with pytest.raises(NewerLogFormat) as ei:
        Log.open(log_path, readonly=True, codec=codec)
    assert ei.value.found == 7
    with pytest.raises(NewerLogFormat):
        Log.open(log_path, codec=codec)


def test_newer_record_in_a_log(log_path, codec) -> None:
    Log.open(log_path, codec=codec).close()
    env = lmdb.open(str(log_path), max_dbs=8)
    events = env.open_db(b"events")
    body = msgspec.msgpack.encode((1, "a", 0, None, "x", 0, {"type": "test.said", "text": "t"}))
    data = bytearray(frame(body))
    data[2] = 2
    with env.begin(write=True) as txn:
        txn.put(seq_key(1), bytes(data), db=events)
    env.close()
    with Log.open(log_path, readonly=True, codec=codec) as log:
        with pytest.raises(NewerLogFormat, match="seq=1"):
            list(log.read())

"""The log with a real LMDB: round trips, positions, opening errors, meta, map growth."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import lmdb
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from store_testevents import TEST_EVENT_TYPES, Blob, Measured, Said

from scaleenv._store import (
    Codec,
    Log,
    LogError,
    LogLocked,
    NotALog,
    StreamPositionError,
    WriterClosed,
)
from scaleenv._store.log import LOG_FORMAT_VERSION

CODEC = Codec(TEST_EVENT_TYPES)
CHILD = Path(__file__).parent / "store_child.py"

event_st = st.one_of(
    st.builds(Said, text=st.text(max_size=20), k=st.integers(0, 1000)),
    st.builds(Measured, value=st.floats(allow_nan=False, allow_infinity=False)),
    st.builds(Blob, data=st.binary(max_size=200)),
)
# A script: a list of append calls, each a list of (stream index, event).
script_st = st.lists(st.lists(st.tuples(st.integers(0, 4), event_st), min_size=1, max_size=6),
                     min_size=1, max_size=25)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(script=script_st)
async def test_round_trip_global_and_per_stream(script) -> None:
    with tempfile.TemporaryDirectory() as d:
        expected: dict[str, list] = {}
        flat = []
        with Log.open(Path(d) / "log", codec=CODEC, sync=False, map_size=1 << 16) as log:
            async with log.writer() as w:
                for call in script:
                    items = []
                    for k, ev in call:
                        sid = f"episode/{k}"
                        n = len(expected.setdefault(sid, []))
                        expected[sid].append(ev)
                        items.append((sid, n, None, "policy", ev))
                        flat.append((sid, n, ev))
                    recs = await w.append(items)
                    assert [(r.stream, r.n, r.event) for r in recs] == [(s, n, e) for s, n, _, _, e in items]
            records = list(log.read())
            assert [r.seq for r in records] == list(range(1, len(flat) + 1))
            assert [(r.stream, r.n, r.event) for r in records] == flat
            assert log.last_seq() == len(flat) == log.count()
            assert dict(log.streams()) == {s: len(v) for s, v in expected.items()}
            for sid, evs in expected.items():
                rs = list(log.read_stream(sid))
                assert [r.n for r in rs] == list(range(len(evs)))
                assert [r.event for r in rs] == evs
                assert log.stream_length(sid) == len(evs)
                assert [r.n for r in log.read_stream(sid, from_n=1)] == list(range(1, len(evs)))
                assert [log.stream_seq(sid, n) for n in range(len(evs) + 1)] == [r.seq for r in rs] + [None]
            assert list(log.read(from_seq=3)) == records[2:]
            assert log.check() == []


async def test_reopen_keeps_everything_and_continues(log_path) -> None:
    with Log.open(log_path, codec=CODEC) as log:
        async with log.writer() as w:
            await w.append([("a", 0, None, "x", Said(text="0"))])
    with Log.open(log_path, codec=CODEC) as log:
        async with log.writer() as w:
            with pytest.raises(StreamPositionError):
                await w.append([("a", 0, None, "x", Said(text="dup"))])
            recs = await w.append([("a", 1, None, "x", Said(text="1")), ("b", 0, None, "x", Said(text="b"))])
        assert [r.seq for r in recs] == [2, 3]
        assert [r.event.text for r in log.read_stream("a")] == ["0", "1"]
        assert log.get(3).stream == "b"
        with pytest.raises(KeyError):
            log.get(4)


async def test_position_errors_reject_only_that_call(log) -> None:
    async with log.writer() as w:
        async def bad_gap():
            with pytest.raises(StreamPositionError, match="a gap") as ei:
                await w.append([("s", 5, None, "x", Said(text="gap"))])
            assert (ei.value.expected, ei.value.got) == (0, 5)

        async def good():
            await w.append([("t", 0, None, "x", Said(text="ok"))])

        async with trio.open_nursery() as n:
            n.start_soon(bad_gap)
            n.start_soon(good)
        await w.append([("s", 0, None, "x", Said(text="0")), ("s", 1, None, "x", Said(text="1"))])
        with pytest.raises(StreamPositionError, match="a duplicate"):
            await w.append([("s", 2, None, "x", Said(text="2")), ("s", 1, None, "x", Said(text="dup"))])
        # The rejected call is atomic: n=2 was not written.
        assert log.stream_length("s") == 2
        with pytest.raises(ValueError, match="NUL"):
            await w.append([("bad\0id", 0, None, "x", Said(text=""))])
    assert [r.stream for r in log.read()] == ["t", "s", "s"]


async def test_map_grows_from_a_tiny_map(log_path) -> None:
    with Log.open(log_path, codec=CODEC, map_size=64 << 10) as log:
        async with log.writer(max_batch=500) as w:
            async def producer(k: int) -> None:
                for i in range(20):
                    await w.append([(f"s{k}", i * 10 + j, None, "x", Blob(data=bytes(300)))
                                    for j in range(10)])

            async with trio.open_nursery() as n:
                for k in range(20):
                    n.start_soon(producer, k)
        assert log.count() == 4000
        assert log.env.info()["map_size"] > 64 << 10
        assert log.check() == []
        log.meta_set("after_growth", {"ok": True})
    with Log.open(log_path, readonly=True, codec=CODEC) as log:
        assert sum(1 for _ in log.read()) == 4000
        assert log.meta_get("after_growth") == {"ok": True}


async def test_meta_and_snapshots(log_path) -> None:
    with Log.open(log_path, codec=CODEC) as log:
        log.meta_set("run", {"seed": 7, "llm": "sim", "concurrency": 64})
        log.put_snapshot(b"env/retail@120", b"\x00state")
        assert log.meta_get("missing", "dflt") == "dflt"
        with pytest.raises(ValueError, match="reserved"):
            log.meta_set("scaleenv.format", 99)
        header = log.meta_items()
        assert header["scaleenv.format"] == LOG_FORMAT_VERSION
        assert header["scaleenv.lmdb_lib_version"][:2] == [0, 9]
        assert header["scaleenv.created_by"].startswith("scaleenv")
    with Log.open(log_path, readonly=True, codec=CODEC) as log:
        assert log.meta_get("run") == {"seed": 7, "llm": "sim", "concurrency": 64}
        assert log.get_snapshot(b"env/retail@120") == b"\x00state"
        assert log.get_snapshot(b"nope") is None
        with pytest.raises(LogError, match="readonly"):
            log.meta_set("x", 1)
        assert log.env.lib_version()[:2] == (0, 9)


def test_not_a_log(tmp_path: Path) -> None:
    with pytest.raises(NotALog, match="no such directory"):
        Log.open(tmp_path / "missing", readonly=True, codec=CODEC)
    with pytest.raises(NotALog):
        Log.open(tmp_path / "missing", create=False, codec=CODEC)
    f = tmp_path / "file"
    f.write_text("hello")
    with pytest.raises(NotALog, match="not a directory"):
        Log.open(f, codec=CODEC)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(NotALog, match="not empty"):
        Log.open(other, codec=CODEC)
    assert sorted(p.name for p in other.iterdir()) == ["notes.txt"]
    foreign = tmp_path / "foreign"
    env = lmdb.open(str(foreign))
    with env.begin(write=True) as txn:
        txn.put(b"k", b"v")
    env.close()
    with pytest.raises(NotALog, match="foreign LMDB"):
        Log.open(foreign, codec=CODEC)
    with pytest.raises(NotALog, match="foreign LMDB"):
        Log.open(foreign, readonly=True, codec=CODEC)
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "data.mdb").write_bytes(os.urandom(20000))
    with pytest.raises(NotALog):
        Log.open(garbage, readonly=True, codec=CODEC)


def test_two_writers_get_log_locked(log_path) -> None:
    Log.open(log_path, codec=CODEC).close()
    with subprocess.Popen([sys.executable, str(CHILD), "hold", str(log_path)],
                          stdout=subprocess.PIPE, text=True) as child:
        _holding(child, log_path)
    # A SIGKILLed holder leaves no stale lock.
    Log.open(log_path, codec=CODEC).close()


def _holding(child: subprocess.Popen, log_path: Path) -> None:
    try:
        assert child.stdout.readline().strip() == "ready"
        with pytest.raises(LogLocked) as ei:
            Log.open(log_path, codec=CODEC)
        assert ei.value.pid == child.pid
        assert str(child.pid) in str(ei.value) and str(log_path) in str(ei.value)
        # Readers keep working while the writer holds the log.
        with Log.open(log_path, readonly=True, codec=CODEC) as r:
            assert r.last_seq() == 0
    finally:
        child.kill()
        child.wait()


async def test_writer_flushes_on_cancel_and_fails_late_appenders(log) -> None:
    acked: list[int] = []
    with trio.CancelScope() as scope:  # cancelled once appends are flowing, wherever they are
        async with log.writer() as w:
            async def producer(k: int) -> None:
                i = 0
                while True:
                    recs = await w.append([(f"p{k}", i, None, "x", Said(text=str(i)))])
                    acked.append(recs[0].seq)
                    if len(acked) >= 200:
                        scope.cancel()
                    i += 1

            async with trio.open_nursery() as n:
                for k in range(10):
                    n.start_soon(producer, k)
    assert acked, "some appends were acknowledged"
    # Everything acknowledged is there; the log is a contiguous prefix.
    assert log.last_seq() >= max(acked)
    assert [r.seq for r in log.read()] == list(range(1, log.last_seq() + 1))
    with pytest.raises(WriterClosed):
        await w.append([("late", 0, None, "x", Said(text="late"))])


async def test_writer_in_a_given_nursery(log, nursery) -> None:
    async with log.writer(nursery, channel_size=2) as w:
        recs = await w.append([("a", 0, None, "x", Said(text="hi"))])
    assert recs[0].seq == 1

async def test_readonly_log_has_no_writer(log_path) -> None:
    Log.open(log_path, codec=CODEC).close()
    with Log.open(log_path, readonly=True, codec=CODEC) as ro:
        with pytest.raises(LogError, match="readonly"):
            async with ro.writer():
                pass

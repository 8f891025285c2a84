"""Deferred acknowledgement: emits return once sent, ``flush`` waits for the commits."""

from __future__ import annotations

import pytest
import trio
from store_testevents import Said

from scaleenv._store import Log, Stream, StreamPositionError
from scaleenv._store.errors import LogError


async def test_deferred_emits_are_committed_in_order_by_flush(log: Log) -> None:
    async with log.writer() as w:
        s = Stream(w, "episode/a", ack="deferred")
        eager = Stream(w, "episode/b")
        for i in range(50):
            await s.emit(Said(text=f"a{i}"), actor="x")
        await eager.emit(Said(text="b0"), actor="x")  # an "each" emit returns committed
        assert log.stream_length("episode/b") == 1
        await s.flush()
        assert log.stream_length("episode/a") == 50
        s.finish()
    assert [r.event.text for r in log.read_stream("episode/a")] == [f"a{i}" for i in range(50)]


async def test_deferred_emits_do_not_wait_for_a_commit(log: Log) -> None:
    # The writer task cannot run until this task yields, so nothing sent can be committed
    # yet: a deferred emit returns anyway, an "each" emit could not.
    async with log.writer() as w:
        s = Stream(w, "episode/a", ack="deferred")
        for i in range(5):
            await s.emit(Said(text=f"a{i}"), actor="x")
        assert w.events == 0 and log.stream_length("episode/a") == 0
        with pytest.raises(LogError, match="flush"):
            s.finish()
        await s.flush()
        assert w.events == 5
        s.finish()


async def test_a_refused_deferred_append_is_raised_by_flush(log: Log) -> None:
    async with log.writer() as w:
        await w.append([("episode/a", 0, None, "x", Said(text="someone else was here"))])
        s = Stream(w, "episode/a", ack="deferred")  # believes the stream is empty
        await s.emit(Said(text="mine"), actor="x")
        await s.emit(Said(text="mine too"), actor="x")
        with pytest.raises(StreamPositionError):
            await s.flush()
        with pytest.raises(StreamPositionError):  # still failed: it is not forgotten
            await s.flush()
        other = Stream(w, "episode/c", ack="deferred")
        await other.emit(Said(text="fine"), actor="x")
        await other.flush()  # one stream's failure is not another's
    assert [r.event.text for r in log.read_stream("episode/a")] == ["someone else was here"]


async def test_deferred_emits_wait_for_room_when_the_channel_is_full(log: Log) -> None:
    async with log.writer(channel_size=1) as w:
        streams = [Stream(w, f"episode/{k}", ack="deferred") for k in range(20)]

        async def agent(s: Stream) -> None:
            for i in range(10):
                await s.emit(Said(text=f"{s.id}:{i}"), actor="x")
            await s.flush()
            s.finish()

        async with trio.open_nursery() as n:
            for s in streams:
                n.start_soon(agent, s)
    for k in range(20):
        assert [r.event.text for r in log.read_stream(f"episode/{k}")] == [f"episode/{k}:{i}" for i in range(10)]

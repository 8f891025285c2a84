"""Stream handles: append, resume and verify modes; Divergence messages; digests."""

from __future__ import annotations

import random

import pytest
import trio
from store_testevents import Measured, Said

from scaleenv._store import Divergence, Log, Stream, StreamDigest, run_digest
from scaleenv._store.events.base import Ref


async def agent(stream: Stream, variant: int = 0, steps: int = 4) -> None:
    """A deterministic toy agent: what it emits depends only on its inputs."""
    prev = None
    for i in range(steps):
        text = f"step {i}" if not (variant and i == 2) else f"step {i} (changed)"
        prev = await stream.emit(Said(text=text, k=i), actor="policy", cause=prev)
    await stream.emit_many([(Measured(value=1.5, latency_s=random.random()), "env", prev),
                            (Said(text="done"), "user", None)])


async def test_append_then_resume_then_verify(log) -> None:
    async with log.writer() as w:
        s = Stream(w, "episode/1")
        await agent(s, steps=2)  # interrupted early: 2 steps + 2 closing events
        first = list(log.read_stream("episode/1"))
        assert [r.n for r in first] == [0, 1, 2, 3]
        assert first[1].cause == Ref("episode/1", 0)

        # A fresh stream runs the whole agent; resume on another stream replays a prefix.
        s2 = Stream(w, "episode/2")
        await agent(s2, steps=2)
        recorded = list(log.read_stream("episode/2"))[:3]
        resumed = Stream(w, "episode/2b", recorded=[], mode="resume")
        await agent(resumed, steps=2)

    # Resume an interrupted run: the recorded prefix is confirmed, the rest appended.
    with Log.open(log.path.parent / "b", codec=log.codec) as log2:
        async with log2.writer() as w2:
            s = Stream(w2, "episode/9")
            await s.emit(Said(text="step 0", k=0), actor="policy")
            await s.emit(Said(text="step 1", k=1), actor="policy", cause=Ref("episode/9", 0))
            before = log2.last_seq()
            rec = list(log2.read_stream("episode/9"))
            r = Stream(w2, "episode/9", recorded=rec, mode="resume")
            assert r.peek() == rec[0]
            await agent(r, steps=4)
            r.finish()
            assert log2.last_seq() == before + 4  # steps 2, 3 and the two closing events
            full = list(log2.read_stream("episode/9"))
            assert [x.n for x in full] == list(range(6))
            assert r.digest.hexdigest() == StreamDigest.of(full).hexdigest()

        # Verify without a writer: the same agent matches, digests equal.
        v = Stream(None, "episode/9", recorded=full, mode="verify")
        await agent(v, steps=4)
        v.finish()
        assert v.digest.hexdigest() == r.digest.hexdigest()
        assert v.peek() is None


async def test_divergence_names_the_differing_field(log) -> None:
    async with log.writer() as w:
        await agent(Stream(w, "tool/retail.cancel_order"))
    rec = list(log.read_stream("tool/retail.cancel_order"))
    v = Stream(None, "tool/retail.cancel_order", recorded=rec, mode="verify")
    with pytest.raises(Divergence) as ei:
        await agent(v, variant=1)
    d = ei.value
    assert (d.stream, d.n) == ("tool/retail.cancel_order", 2)
    assert d.expected == rec[2]
    assert d.got[1] == "policy"
    msg = str(d)
    assert "tool/retail.cancel_order" in msg and "n=2" in msg
    assert "event.text: recorded 'step 2' but got 'step 2 (changed)'" in msg
    assert d.differences() == [("event.text", "step 2", "step 2 (changed)")]
    # Resume mode diverges the same way and appends nothing.
    async with log.writer() as w:
        before = log.last_seq()
        with pytest.raises(Divergence):
            await agent(Stream(w, "tool/retail.cancel_order", recorded=rec, mode="resume"), variant=1)
        assert log.last_seq() == before


async def test_divergence_on_actor_type_extra_and_missing(log) -> None:
    async with log.writer() as w:
        s = Stream(w, "episode/x")
        await s.emit(Said(text="a"), actor="policy")
        await s.emit(Said(text="b"), actor="policy")
    rec = list(log.read_stream("episode/x"))

    v = Stream(None, "episode/x", recorded=rec, mode="verify")
    with pytest.raises(Divergence, match="actor: recorded 'policy' but got 'user'"):
        await v.emit(Said(text="a"), actor="user")

    v = Stream(None, "episode/x", recorded=rec, mode="verify")
    with pytest.raises(Divergence, match="type: recorded 'test.said' but got 'test.measured'"):
        await v.emit(Measured(value=1.0), actor="policy")

    v = Stream(None, "episode/x", recorded=rec, mode="verify")
    await v.emit_many([(Said(text="a"), "policy", None), (Said(text="b"), "policy", None)])
    with pytest.raises(Divergence, match="unexpected extra event") as ei:
        await v.emit(Said(text="c"), actor="policy")
    assert ei.value.expected is None and ei.value.n == 2

    v = Stream(None, "episode/x", recorded=rec, mode="verify")
    await v.emit(Said(text="a"), actor="policy")
    with pytest.raises(Divergence, match="missing event") as ei:
        v.finish()
    assert ei.value.n == 1 and ei.value.got is None

    v = Stream(None, "episode/x", recorded=rec, mode="verify")
    with pytest.raises(Divergence, match="cause: recorded None but got 'episode/x#0'"):
        await v.emit(Said(text="a"), actor="policy", cause=Ref("episode/x", 0))

    # The digest ignores digest_exclude fields: latency differs, no divergence.
    async with log.writer() as w:
        await Stream(w, "m").emit(Measured(value=2.0, latency_s=0.1), actor="env")
    v = Stream(None, "m", recorded=list(log.read_stream("m")), mode="verify")
    await v.emit(Measured(value=2.0, latency_s=9.9), actor="env")
    v.finish()


async def test_append_mode_continues_after_recorded(log) -> None:
    async with log.writer() as w:
        s = Stream(w, "a")
        await s.emit(Said(text="0"), actor="x")
        rec = list(log.read_stream("a"))
        s2 = Stream(w, "a", recorded=rec)
        assert s2.next_n == 1 and s2.peek() is None
        ref = await s2.emit(Said(text="1"), actor="x")
        assert ref == Ref("a", 1)
        assert s2.digest.hexdigest() == StreamDigest.of(log.read_stream("a")).hexdigest()
    with pytest.raises(ValueError, match="needs a writer"):
        Stream(None, "a")


async def test_run_digest_independent_of_task_interleaving(tmp_path, codec) -> None:
    digests = []
    for trial in range(3):
        with Log.open(tmp_path / f"t{trial}", codec=codec, sync=False) as log:
            async with log.writer() as w:
                streams = [Stream(w, f"episode/{k}") for k in range(12)]

                async def run(s: Stream, k: int) -> None:
                    for i in range(5):
                        if random.random() < 0.5:
                            await trio.sleep(0)
                        await s.emit(Said(text=f"{k}:{i}"), actor="policy")

                async with trio.open_nursery() as n:
                    for k, s in enumerate(streams):
                        n.start_soon(run, s, k)
            order = [r.stream for r in log.read()]
            live = run_digest({s.stream_id: s.digest.hexdigest() for s in streams})
            replayed = run_digest({sid: StreamDigest.of(log.read_stream(sid)).hexdigest()
                                   for sid, _ in log.streams()})
            assert live == replayed
            digests.append((live, order))
    assert len({d for d, _ in digests}) == 1


async def test_a_finished_stream_is_forgotten_by_the_writer_and_can_still_continue(log_path, codec) -> None:
    """Memory per finished stream is released; appending again later resumes at the right n."""
    with Log.open(log_path, codec=codec) as log:
        async with log.writer() as w:
            s = Stream(w, "episode/a")
            await s.emit(Said(text="one"), actor="t")
            await s.emit(Said(text="two"), actor="t")
            s.finish()
            assert "episode/a" not in w._next_n  # noqa: SLF001 - the point of the test
            again = Stream(w, "episode/a", recorded=list(log.read_stream("episode/a")), mode="append")
            ref = await again.emit(Said(text="three"), actor="t")
            assert ref.n == 2
        assert [r.n for r in log.read_stream("episode/a")] == [0, 1, 2]


async def test_the_digest_covers_compared_and_appended_events_in_order(log) -> None:
    """Resume: recorded positions are compared (their bytes hashed at once), later ones are
    appended (hashed when the digest is asked for); read mid-way or at the end, the digest
    is the log's."""
    async with log.writer() as w:
        first = Stream(w, "r")
        for i in range(3):
            await first.emit(Said(text=str(i)), actor="x")
        resumed = Stream(w, "r", recorded=list(log.read_stream("r")), mode="resume")
        for i in range(3):
            await resumed.emit(Said(text=str(i)), actor="x")
        assert resumed.digest.hexdigest() == first.digest.hexdigest()
        for i in range(3, 6):
            await resumed.emit(Said(text=str(i)), actor="x")
            if i == 4:
                mid = resumed.digest.hexdigest()
                assert mid == StreamDigest.of(log.read_stream("r")).hexdigest()
        assert resumed.digest.count == 6
        assert resumed.digest.hexdigest() == StreamDigest.of(log.read_stream("r")).hexdigest() != mid

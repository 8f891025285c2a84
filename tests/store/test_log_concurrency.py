"""Concurrency: hundreds of appending tasks; a reader in another process follows live."""

from __future__ import annotations

import subprocess
from contextlib import aclosing
import sys
from pathlib import Path

import trio
from store_testevents import Blob, Said

from scaleenv._store import Log, LogFull

CHILD = Path(__file__).parent / "store_child.py"


async def test_many_tasks_and_a_follower_process(log_path, codec) -> None:
    tasks, calls = 300, 6
    with Log.open(log_path, codec=codec, map_size=128 << 10) as log:
        total = sum(1 + (k + c) % 4 for k in range(tasks) for c in range(calls))
        follower = await trio.lowlevel.open_process(
            [sys.executable, str(CHILD), "follow", str(log_path), str(total)],
            stdout=subprocess.PIPE)
        async with log.writer(channel_size=32) as w:
            async def producer(k: int) -> None:
                n = 0
                for c in range(calls):
                    size = 1 + (k + c) % 4
                    recs = await w.append([(f"episode/{k}", n + j, None, f"agent{k}",
                                            Said(text=f"{k}.{n + j}")) for j in range(size)])
                    assert [r.n for r in recs] == list(range(n, n + size))
                    n += size

            async with trio.open_nursery() as nursery:
                for k in range(tasks):
                    nursery.start_soon(producer, k)
        assert w.batches < tasks * calls, "appends were group-committed"
        out = b""
        with trio.fail_after(60):
            async for chunk in follower.stdout:
                out += chunk
            await follower.wait()
        assert follower.returncode == 0
        seen = [tuple(line.split()) for line in out.decode().splitlines()]
        expected = [(str(r.seq), r.stream, str(r.n)) for r in log.read()]
        assert len(expected) == total
        assert seen == expected
        for k in range(tasks):
            assert [r.event.text for r in log.read_stream(f"episode/{k}")] == [
                f"{k}.{i}" for i in range(log.stream_length(f"episode/{k}"))]


async def test_follow_in_process_waits_for_new_events(log, nursery) -> None:
    got: list[int] = []
    done = trio.Event()

    async def follower() -> None:
        async with aclosing(log.follow(1, poll_interval=0.01)) as records:
            async for r in records:
                got.append(r.seq)
                if len(got) == 5:
                    done.set()
                    return

    nursery.start_soon(follower)
    async with log.writer() as w:
        for i in range(5):
            await w.append([("a", i, None, "x", Said(text=str(i)))])
            await trio.sleep(0.01)
    with trio.fail_after(10):
        await done.wait()
    assert got == [1, 2, 3, 4, 5]


def test_disk_full_is_log_full_and_log_stays_readable(log_path, codec) -> None:
    # The child caps its own file size (RLIMIT_FSIZE): writes past it fail like ENOSPC.
    res = subprocess.run([sys.executable, str(CHILD), "fill", str(log_path)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    word, last, *reason = res.stdout.split(maxsplit=2)
    assert word == "full", res.stdout
    with Log.open(log_path, readonly=True, codec=codec) as log:
        assert log.last_seq() == int(last) > 0
        assert log.check() == []
        assert all(isinstance(r.event, Blob) for r in log.read())
    assert LogFull.__doc__

"""Subprocess helper for the store tests (real processes, no mocks).

    python store_child.py append PATH [SYNC]   append batches forever, print each acked seq
    python store_child.py follow PATH COUNT    follow the log, print "seq stream n", exit after COUNT
    python store_child.py hold PATH            open for writing, print "ready", sleep
    python store_child.py fill PATH            append until LogFull, print "full LAST_ACKED_SEQ"
"""

from __future__ import annotations

import os
import signal
import sys
from contextlib import aclosing
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import trio  # noqa: E402
from store_testevents import TEST_EVENT_TYPES, Blob, Said  # noqa: E402

from scaleenv._store import Codec, Log, LogFull  # noqa: E402

CODEC = Codec(TEST_EVENT_TYPES)


def out(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def append(path: str, sync: bool) -> None:
    with Log.open(path, codec=CODEC, sync=sync, map_size=1 << 20) as log:
        async with log.writer() as w:
            next_n: dict[str, int] = {}

            async def task(k: int) -> None:
                sid = f"s{k}"
                i = 0
                while True:
                    n = next_n.get(sid, log.stream_length(sid))
                    size = 1 + (i % 7)
                    items = [(sid, n + j, None, "child", Said(text=f"{sid}:{n + j}", k=n + j))
                             for j in range(size)]
                    next_n[sid] = n + size
                    recs = await w.append(items)
                    out(" ".join(str(r.seq) for r in recs))
                    i += 1

            async with trio.open_nursery() as nursery:
                for k in range(8):
                    nursery.start_soon(task, k)


async def follow(path: str, count: int) -> None:
    with Log.open(path, readonly=True, codec=CODEC) as log:
        seen = 0
        async with aclosing(log.follow(1, poll_interval=0.01)) as records:
            async for r in records:
                out(f"{r.seq} {r.stream} {r.n}")
                seen += 1
                if seen >= count:
                    return


async def fill(path: str) -> None:
    with Log.open(path, codec=CODEC, map_size=1 << 20) as log:
        last = 0
        async with log.writer() as w:
            n = 0
            try:
                while True:
                    recs = await w.append([("big", n + j, None, "child", Blob(data=os.urandom(3000)))
                                           for j in range(20)])
                    n += 20
                    last = recs[-1].seq
            except LogFull as exc:
                out(f"full {last} {exc}")


def main() -> None:
    cmd, path = sys.argv[1], sys.argv[2]
    if cmd == "append":
        trio.run(append, path, sys.argv[3] != "0" if len(sys.argv) > 3 else True)
    elif cmd == "follow":
        trio.run(follow, path, int(sys.argv[3]))
    elif cmd == "hold":
        with Log.open(path, codec=CODEC):
            out("ready")
            signal.pause()
    elif cmd == "fill":
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (3 << 20, 3 << 20))
        trio.run(fill, path)


if __name__ == "__main__":
    main()

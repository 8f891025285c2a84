"""A design probe: would a writer *process* (the commit work off the engine's GIL) lift
the event log's append throughput towards the raw LMDB ceiling?

The engine's writer is a trio task whose commits run in a worker thread, so its encode
and put work shares the GIL with the appenders (``bench/log_append.py``, row (b)). This
probe runs, on the same pre-built events as ``bench/log_append.py`` (10 per append, 200
trio tasks, fsync'd), a writer whose commits run in a child process instead:

- the engine process checks each append's stream positions, assigns seqs and encodes
  each record's body, as the engine's writer thread does now, and ships the bodies and
  stream-index keys of a batch as one msgpack message over a pipe;
- the child frames the records (CRC), puts and commits: every batch already waiting in
  the pipe goes into one transaction (group commit on its side too), and answers each
  batch with its last seq;
- up to 8 batches are in flight, each capped at ``--max-batch`` events, so the engine
  process prepares the next batches while the child commits.

(A first layout, in which the child also encoded the envelopes around event bytes
shipped pre-encoded, was slower: decoding the shipped batch alone cost the child
~1.5 us per event.)

It is not engine code (no failure handling: one happy path), only the measurement that
decided whether to build one. Each round runs the probe, the engine's writer and raw
py-lmdb at the engine's commit sizes, alternately; medians are printed.

    .venv/bin/python bench/log_writer_process.py [--rounds 3] [--max-batch 200,500,1000]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec
import trio

sys.path.insert(0, str(Path(__file__).parent))
import log_append as bench  # noqa: E402  (the same events, codec and contenders)

from scaleenv._store import Log  # noqa: E402
from scaleenv._store.gc_tuning import engine_gc  # noqa: E402
from scaleenv._store.writer import Ack, StreamPositionError, Writer  # noqa: E402

CHILD = r"""
import os, select, struct, sys, zlib
import lmdb, msgspec
env = lmdb.open(sys.argv[1], map_size=4 << 30, sync=True, metasync=True, max_dbs=8, lib_version=0)
events, streams = env.open_db(b"events"), env.open_db(b"streams")
dec = msgspec.msgpack.Decoder(tuple[int, list[bytes], list[bytes]])
header = struct.Struct(">2sBI")
def read(n):
    buf = bytearray()
    while len(buf) < n:
        chunk = os.read(0, n - len(buf))
        if not chunk:
            sys.exit(0)
        buf += chunk
    return bytes(buf)
while True:
    ev, st, done = [], [], []
    while True:
        seq, skeys, bodies = dec.decode(read(struct.unpack(">I", read(4))[0]))
        first = seq - len(bodies) + 1
        for i, (sk, body) in enumerate(zip(skeys, bodies)):
            k = (first + i).to_bytes(8, "big")
            ev.append((k, header.pack(b"SE", 1, zlib.crc32(body)) + body))
            st.append((sk, k))
        done.append(seq)
        if len(ev) >= 4096 or not select.select([0], [], [], 0)[0]:
            break
    with env.begin(write=True) as txn:
        txn.cursor(db=events).putmulti(ev, append=True)
        txn.cursor(db=streams).putmulti(st)
    os.write(1, b"".join(x.to_bytes(8, "big") for x in done))
"""

ENCODER = msgspec.msgpack.Encoder()
IN_FLIGHT = 8


class ProcessWriter(Writer):
    """The engine's Writer, its commits shipped to a child process (happy path only)."""

    def attach(self, out: trio.lowlevel.FdStream, inp: trio.lowlevel.FdStream) -> None:
        self.out, self.inp = out, inp
        self.inflight: collections.deque[tuple[list[Ack], int]] = collections.deque()
        self.slots = trio.Semaphore(IN_FLIGHT)

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._replies)
            try:
                while True:
                    try:
                        first = await self._recv.receive()
                    except trio.EndOfChannel:
                        break
                    await self.slots.acquire()
                    await self._ship(self._gather(first))
                for _ in range(IN_FLIGHT):  # every slot back: nothing in flight
                    await self.slots.acquire()
            finally:
                nursery.cancel_scope.cancel()
                self._stopped.set()

    async def _ship(self, batch: list[Ack]) -> None:
        wall = time.time_ns()
        seq = self._last_seq
        skeys: list[bytes] = []
        bodies: list[bytes] = []
        encode_body = self.log.codec.encode_body
        for r in batch:
            r.error, r.result = None, (seq + 1, wall)
            for it in r.items:
                nxt = self._next_n.get(it.stream)
                if nxt is None:
                    nxt = self.log.stream_length(it.stream)
                if it.n != nxt:
                    raise StreamPositionError(it.stream, nxt, it.n)
                self._next_n[it.stream] = nxt + 1
                seq += 1
                bodies.append(encode_body(seq, it.stream, nxt, it.cause, it.actor, wall, it.event))
                skeys.append(it.stream.encode() + b"\0" + nxt.to_bytes(8, "big"))
        self._last_seq = seq
        payload = ENCODER.encode((seq, skeys, bodies))
        self.inflight.append((batch, seq))
        await self.out.send_all(struct.pack(">I", len(payload)) + payload)

    async def _replies(self) -> None:
        while True:
            got = b""
            while len(got) < 8:
                got += await self.inp.receive_some(8 - len(got))
            batch, seq = self.inflight.popleft()
            if int.from_bytes(got, "big") != seq:
                raise RuntimeError(f"child committed through {int.from_bytes(got, 'big')}, expected {seq}")
            self.batches += 1
            self.events += sum(len(r.items) for r in batch)
            for r in batch:
                r.finish()
            self.slots.release()


def bench_process(path: Path, batches: list[list[Any]], tasks: int, max_batch: int) -> float:
    total = sum(len(b) for b in batches)
    with Log.open(path, sync=True, codec=bench.CODEC, map_size=4 << 30):
        pass  # the layout and header, as the engine creates them
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert child.stdin is not None and child.stdout is not None
    dt = 0.0

    async def main() -> None:
        nonlocal dt
        with Log.open(path, readonly=True, codec=bench.CODEC) as log:
            w = ProcessWriter(log, channel_size=256, max_batch=max_batch)
            w.attach(trio.lowlevel.FdStream(os.dup(child.stdin.fileno())),
                     trio.lowlevel.FdStream(os.dup(child.stdout.fileno())))
            async with trio.open_nursery() as nursery:
                nursery.start_soon(w.run)
                dt = await bench.append_all(w, batches, tasks)
                await w.aclose()
                await w.out.aclose()
                await w.inp.aclose()
            if log.count() != total:
                raise RuntimeError(f"the child committed {log.count()} events of {total}")

    trio.run(main)
    child.stdin.close()
    child.wait()
    return total / dt


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--max-batch", default="200,500,1000", help="the probe's batch caps (events), comma-separated")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    caps = [int(x) for x in args.max_batch.split(",")]
    batches = bench.build_events(args.events, 10, 1000)
    runs: dict[str, list[float]] = {"engine_writer": [], "raw_lmdb": [], **{f"process_{c}": [] for c in caps}}
    out = sys.stderr if args.json else sys.stdout
    with engine_gc(), tempfile.TemporaryDirectory(prefix="scaleenv-bench-wproc-") as tmp:
        for r in range(args.rounds):
            for c in caps:
                runs[f"process_{c}"].append(bench_process(Path(tmp) / f"p{r}_{c}", batches, 200, c))
            se, per_commit = bench.bench_scaleenv(Path(tmp) / f"s{r}", batches, True, 200)
            runs["engine_writer"].append(se)
            runs["raw_lmdb"].append(bench.bench_raw(Path(tmp) / f"r{r}", batches, True, max(1, int(per_commit) // 10)))
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:,.0f}" for k, v in runs.items()), file=out, flush=True)
    med = {k: statistics.median(v) for k, v in runs.items()}
    raw = med["raw_lmdb"]
    for k, v in med.items():
        print(f"{k:>16} {v:>12,.0f} events/s  {v / raw:.2f}x raw (median of {args.rounds})", file=out)
    if args.json:
        print(json.dumps({"events_per_s": med, "vs_raw": {k: v / raw for k, v in med.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

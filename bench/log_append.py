"""Append throughput of the scaleenv event log against raw LMDB and `eventsourcing`.

On identical pre-built events, in one run:

(a) raw py-lmdb: the same batches (``--batch`` events per append call) put and
    committed directly, sync setting as chosen: the ceiling. Measured two ways: one
    txn per append call (what the callers' batch size alone gives), and group commits
    of the same size scaleenv's writer reached (the real ceiling for (b));
(b) scaleenv: ``--tasks`` concurrent trio tasks each calling ``Writer.append`` with
    ``--batch`` events; the writer task group-commits them;
(c) eventsourcing 9.5 ``SQLiteApplicationRecorder.insert_events`` (WAL, its default),
    one call per batch of the same ``StoredEvent`` bytes (SQLite serialises writers);
(b') the same events through ``Stream(ack="deferred")`` (what rollout episodes use: emits
    do not wait for their commit, each stream flushes at its end), for reference; the
    targets are judged on (b);
(d) single-event appends (``--batch 1`` style): scaleenv and raw LMDB, durable;
(e) decode throughput of a full ``Log.read()``.

Every contender runs under the same cycle-collector setting: ``Log.writer()`` raises
generation 0's threshold while it runs (scaleenv._store.gc_tuning), so the baselines
get the same setting (``--default-gc`` runs them under CPython's default instead).

Prints events/s and ratios; ``--json`` prints one JSON object on the last line.
Run: ``.venv/bin/python bench/log_append.py [--json] [--events N] [--no-sync]``
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar

import lmdb
import msgspec
import trio

from scaleenv._store import Codec, Log, Pending
from scaleenv._store.events.base import Event, Ref
from scaleenv._store.gc_tuning import engine_gc
from scaleenv._store.log import seq_key, stream_key
from scaleenv._store.record import frame


class BenchToolCalled(Event, tag="bench.tool_called"):
    tool: str
    args: dict[str, Any]
    result: str
    ok: bool = True
    latency_s: float = 0.0

    digest_exclude: ClassVar[frozenset[str]] = frozenset({"latency_s"})


CODEC = Codec([BenchToolCalled])


def build_events(total: int, batch: int, streams: int) -> list[list[Pending]]:
    """Pre-built batches: stream ``episode/i`` gets consecutive batches of ``batch`` events."""
    per_stream = max(1, total // streams)
    out: list[list[Pending]] = []
    for s in range(streams):
        sid = f"episode/{s:05d}"
        n = 0
        while n < per_stream:
            b = []
            for _ in range(min(batch, per_stream - n)):
                ev = BenchToolCalled(tool="retail.cancel_order",
                                     args={"order_id": f"#W{s:04d}{n:04d}", "reason": "no longer needed"},
                                     result='{"status": "cancelled"}', latency_s=0.0012)
                b.append(Pending(sid, n, Ref(sid, n - 1) if n else None, "policy", ev))
                n += 1
            out.append(b)
    return out


def bench_raw(path: Path, batches: list[list[Pending]], sync: bool, group: int) -> float:
    """Raw py-lmdb: commit ``group`` appends' worth of events per txn; events/s."""
    env = lmdb.open(str(path), map_size=4 << 30, sync=sync, metasync=sync, max_dbs=4,
                    lib_version=0)
    evdb = env.open_db(b"events")
    stdb = env.open_db(b"streams")
    enc = CODEC.encode_body
    seq = 0
    total = sum(len(b) for b in batches)
    t0 = time.perf_counter()
    for i in range(0, len(batches), group):
        wall = time.time_ns()
        with env.begin(write=True) as txn:
            ev: list[tuple[bytes, bytes]] = []
            st: list[tuple[bytes, bytes]] = []
            for b in batches[i:i + group]:
                for p in b:
                    seq += 1
                    k = seq_key(seq)
                    ev.append((k, frame(enc(seq, p.stream, p.n, p.cause, p.actor, wall, p.event))))
                    st.append((stream_key(p.stream, p.n), k))
            txn.cursor(db=evdb).putmulti(ev, append=True)
            txn.cursor(db=stdb).putmulti(st)
    dt = time.perf_counter() - t0
    env.close()
    return total / dt


async def append_all(w: Any, batches: list[list[Pending]], tasks: int) -> float:
    """Append every batch through writer ``w`` from ``tasks`` trio tasks; seconds taken.

    Streams are independent: each task gets whole streams, so their n stay in order."""
    by_stream: dict[str, list[list[Pending]]] = {}
    for b in batches:
        by_stream.setdefault(b[0].stream, []).append(b)
    queues = list(by_stream.values())

    async def worker(k: int) -> None:
        for q in queues[k::tasks]:
            for b in q:
                await w.append(b)

    t0 = time.perf_counter()
    async with trio.open_nursery() as n:
        for k in range(tasks):
            n.start_soon(worker, k)
    return time.perf_counter() - t0


def bench_scaleenv(path: Path, batches: list[list[Pending]], sync: bool, tasks: int
                   ) -> tuple[float, float]:
    """scaleenv writer with ``tasks`` concurrent appenders; (events/s, mean events/commit)."""
    total = sum(len(b) for b in batches)
    stats: dict[str, float] = {}

    async def main() -> None:
        with Log.open(path, sync=sync, codec=CODEC, map_size=1 << 30) as log:
            async with log.writer() as w:
                stats["dt"] = await append_all(w, batches, tasks)
                stats["per_commit"] = w.events / max(1, w.batches)

    trio.run(main)
    return total / stats["dt"], stats["per_commit"]


def bench_deferred(path: Path, batches: list[list[Pending]], sync: bool, tasks: int) -> float:
    """What rollout episodes do: ``Stream(ack="deferred")`` per stream, one emit per batch,
    ``flush`` at the stream's end (durable then); events/s from first emit to last flush."""
    from scaleenv._store import Stream

    total = sum(len(b) for b in batches)
    stats: dict[str, float] = {}

    async def main() -> None:
        with Log.open(path, sync=sync, codec=CODEC, map_size=1 << 30) as log:
            async with log.writer(channel_size=4096) as w:
                by_stream: dict[str, list[list[Pending]]] = {}
                for b in batches:
                    by_stream.setdefault(b[0].stream, []).append(b)
                queues = list(by_stream.items())

                async def worker(k: int) -> None:
                    for sid, q in queues[k::tasks]:
                        stream = Stream(w, sid, ack="deferred")
                        for b in q:
                            await stream.emit_many([(p.event, p.actor, p.cause) for p in b])
                        await stream.flush()
                        stream.finish()

                t0 = time.perf_counter()
                async with trio.open_nursery() as n:
                    for k in range(tasks):
                        n.start_soon(worker, k)
                stats["dt"] = time.perf_counter() - t0

    trio.run(main)
    return total / stats["dt"]


def bench_eventsourcing(path: Path, batches: list[list[Pending]]) -> float:
    """eventsourcing's SQLite application recorder, one insert_events per batch."""
    from eventsourcing.persistence import StoredEvent
    from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

    ds = SQLiteDatastore(str(path))
    rec = SQLiteApplicationRecorder(ds)
    rec.create_table()
    enc = msgspec.msgpack.Encoder()
    topic = "bench:BenchToolCalled"
    prebuilt = [[StoredEvent(originator_id=p.stream, originator_version=p.n, topic=topic,
                             state=enc.encode(p.event)) for p in b] for b in batches]
    total = sum(len(b) for b in prebuilt)
    t0 = time.perf_counter()
    for b in prebuilt:
        rec.insert_events(b)
    dt = time.perf_counter() - t0
    ds.close()
    return total / dt


def bench_read(path: Path) -> float:
    with Log.open(path, readonly=True, codec=CODEC) as log:
        t0 = time.perf_counter()
        n = sum(1 for _ in log.read())
        return n / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=100_000, help="events per run (default %(default)s)")
    ap.add_argument("--batch", type=int, default=10, help="events per append call (default %(default)s)")
    ap.add_argument("--tasks", type=int, default=200, help="concurrent appender tasks (default %(default)s)")
    ap.add_argument("--streams", type=int, default=1000, help="streams (default %(default)s)")
    ap.add_argument("--single", type=int, default=2000,
                    help="events for the single-event, one-txn-per-event comparison (default %(default)s)")
    ap.add_argument("--es-events", type=int, default=20_000,
                    help="events for eventsourcing (it is slow; default %(default)s)")
    ap.add_argument("--repeat", type=int, default=3, help="alternating runs of (a) and (b) (default %(default)s)")
    ap.add_argument("--no-sync", action="store_true", help="sync=False everywhere (not durable)")
    ap.add_argument("--dir", default=None, help="scratch directory (default: a temp dir)")
    ap.add_argument("--json", action="store_true", help="print one JSON object on the last line")
    ap.add_argument("--default-gc", action="store_true",
                    help="run the baselines under CPython's default collector thresholds "
                         "(default: the writer's own setting, for all contenders)")
    a = ap.parse_args(argv)
    if a.default_gc:
        return _measure(a)
    with engine_gc():
        return _measure(a)


def _measure(a: argparse.Namespace) -> int:
    sync = not a.no_sync
    root = Path(tempfile.mkdtemp(prefix="scaleenv-bench-", dir=a.dir))
    say = (lambda *x: print(*x, file=sys.stderr)) if a.json else print
    try:
        batches = build_events(a.events, a.batch, a.streams)
        total = sum(len(b) for b in batches)
        say(f"{total} events, {a.batch}/append, {a.tasks} tasks, {a.streams} streams, sync={sync}")

        # fsync times on a VM vary a lot run to run: alternate (b) and (a), take medians.
        ses, raws, per_commit = [], [], 1.0
        for rep in range(a.repeat):
            se_i, per_commit = bench_scaleenv(root / f"scaleenv{rep}.lmdb", batches, sync, a.tasks)
            group = max(1, round(per_commit / a.batch))
            ses.append(se_i)
            raws.append(bench_raw(root / f"raw_group{rep}.lmdb", batches, sync, group))
        se, raw_group = statistics.median(ses), statistics.median(raws)
        say(f"(b) scaleenv Log writer       {se:>12,.0f} events/s  (mean {per_commit:.0f} events/commit; "
            f"runs {', '.join(f'{x:,.0f}' for x in ses)})")
        say(f"(a) raw py-lmdb, same commits {raw_group:>12,.0f} events/s  ({group} appends/txn; "
            f"runs {', '.join(f'{x:,.0f}' for x in raws)})")
        deferred = bench_deferred(root / "deferred.lmdb", batches, sync, a.tasks)
        say(f"(b') scaleenv Stream, ack=deferred {deferred:>10,.0f} events/s  (what episodes do: each task "
            "flushes at its stream's end; the stream digest is computed only when read, as in the engine)")
        raw_call = bench_raw(root / "raw_call.lmdb", batches, sync, 1)
        say(f"(a') raw py-lmdb, 1 txn/append{raw_call:>12,.0f} events/s")
        es_batches = batches[: max(1, a.es_events // a.batch)]
        es = bench_eventsourcing(root / "es.sqlite", es_batches)
        say(f"(c) eventsourcing SQLite      {es:>12,.0f} events/s  (1 insert_events/append)")

        single = build_events(a.single, 1, max(1, a.single // 10))
        se1, _ = bench_scaleenv(root / "single.lmdb", single, sync, 1)
        raw1 = bench_raw(root / "raw_single.lmdb", single, sync, 1)
        se1c, pc1 = bench_scaleenv(root / "single_conc.lmdb", single, sync, a.tasks)
        say(f"(d) single-event appends: scaleenv sequential {se1:,.0f}/s, raw 1 txn/event {raw1:,.0f}/s, "
            f"scaleenv {a.tasks} tasks {se1c:,.0f}/s ({pc1:.0f}/commit)")

        rd = bench_read(root / "scaleenv0.lmdb")
        say(f"(e) full read + decode        {rd:>12,.0f} events/s")
        ratios = {"vs_raw_same_commits": se / raw_group, "vs_raw_txn_per_append": se / raw_call,
                  "vs_eventsourcing": se / es}
        say("ratios: " + ", ".join(f"{k}={v:.2f}" for k, v in ratios.items()))
        say(f"targets: scaleenv >= 0.5 x raw (same commits): {ratios['vs_raw_same_commits'] >= 0.5}; "
            f">= 10 x eventsourcing: {ratios['vs_eventsourcing'] >= 10}")
        out = {
            "events": total, "batch": a.batch, "tasks": a.tasks, "sync": sync,
            "events_per_s": se, "mean_events_per_commit": per_commit,
            "raw_lmdb_events_per_s": raw_group, "raw_lmdb_txn_per_append_events_per_s": raw_call,
            "eventsourcing_events_per_s": es,
            "deferred_stream_events_per_s": deferred, "deferred_vs_eventsourcing": deferred / es,
            "single_event_scaleenv_events_per_s": se1, "single_event_raw_lmdb_events_per_s": raw1,
            "single_event_scaleenv_concurrent_events_per_s": se1c,
            "read_events_per_s": rd, "ratios": ratios,
            "baseline": "raw py-lmdb (same group commits) and eventsourcing 9.5 SQLiteApplicationRecorder",
            "gc": "default" if a.default_gc else "engine (gen0 threshold raised for every contender)",
        }
        if a.json:
            print(json.dumps(out))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Stage 1's memory against the domains already finished, and Ctrl-C at that size.

    .venv/bin/python bench/memory.py [--domains 10000] [--tools 5] [--warmup 1000] [--json]

One process synthesizes ``--domains`` sim domains (stage 1 only, seed 1; every brief asks
for ``--tools`` tools, the smallest domain the config allows, so that many domains fit in
minutes; in-process, sandbox workers as usual) into a fresh log, sampling its own memory
(RssAnon from /proc/self/status: the heap, not the log's pages LMDB maps in) against the
domains finished. Past ``--warmup`` domains (default min(1000, domains/10): every slot of
the first ``--concurrency`` domains in flight, caches filled) memory should stay flat:
``rss_anon_warm_kb`` (the baseline, at the warm-up) against ``rss_anon_end_kb`` (at the
end), ``growth_kb`` their difference, ``slope_kb_per_1000_domains`` the least-squares
slope of the samples past the warm-up, and beside it ``leak_yardstick_kb_per_1000_domains``:
what keeping one domain's spec per finished domain would cost (its encoded size, a lower
bound on its objects' size), which a per-domain leak of the spec alone would add.

Then Ctrl-C at that size, as a user would meet it: ``scaleenv synth`` on the same log with
twice the domains, as a subprocess: ``resume_first_event_s`` from its start to the first
new record in the log, ``resume_rss_anon_kb`` its memory then, ``sigint_exit_s`` from
SIGINT (sent at that point) to its exit, and ``sigint_status`` (130 expected).

``--json`` prints one JSON object on its last line. The machine is shared: the figures
are one run's (CPU seconds are given beside wall time).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec
import trio

from scaleenv._config import RunConfig
from scaleenv._runner import EngineOptions, open_run, stage1
from scaleenv._store.events.synth import SchemaDefined
from scaleenv._store.log import Log


def rss_anon_kb(pid: int | str = "self") -> int:
    """The process's own memory (RssAnon), KB; 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def slope_per_1000(points: list[tuple[int, int]]) -> float:
    """Least-squares slope of (domains, KB) points, in KB per 1,000 domains."""
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return 1000 * sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0


def synthesize(path: str, domains: int, tools: int, concurrency: int, every: int) -> tuple[list[tuple[int, int]], float]:
    """Stage 1 over ``domains`` into ``path``; (domains finished, RssAnon KB) samples, CPU s."""
    config = RunConfig(seed=1, domains=domains, min_tools=tools, max_tools=tools)
    options = EngineOptions(progress=False, sync=False, concurrency=concurrency)
    samples: list[tuple[int, int]] = [(0, rss_anon_kb())]
    cpu0 = time.process_time()

    async def main() -> None:
        async with open_run(path, config, options) as ctx:
            async def sample() -> None:
                nxt = every
                while True:
                    await trio.sleep(0.2)
                    done = int(ctx.progress.counters.get("domains", 0) + ctx.progress.counters.get("domains failed", 0))
                    if done >= nxt:
                        samples.append((done, rss_anon_kb()))
                        print(f"  {done} domains: RssAnon {samples[-1][1] / 1024:.1f} MB", file=sys.stderr, flush=True)
                        nxt = (done // every + 1) * every

            async with trio.open_nursery() as nursery:
                nursery.start_soon(sample)
                await stage1(ctx)
                nursery.cancel_scope.cancel()
            samples.append((domains, rss_anon_kb()))

    trio.run(main)
    return samples, time.process_time() - cpu0


def spec_bytes(path: str, limit: int = 50) -> float:
    """Mean encoded size of a domain's spec (its first ``limit`` domains)."""
    sizes = []
    with Log.open(path, readonly=True) as log:
        for stream, _ in log.streams("domain/"):
            for r in log.read_stream(stream):
                if isinstance(r.event, SchemaDefined):
                    sizes.append(len(msgspec.msgpack.encode(r.event.spec)))
            if len(sizes) >= limit:
                break
    return sum(sizes) / len(sizes) if sizes else 0.0


def interrupt_resume(path: str, domains: int, tools: int) -> dict[str, Any]:
    """``scaleenv synth`` growing the run on ``path``: first new record, its memory, SIGINT to exit."""
    with Log.open(path, readonly=True) as log:
        start_seq = log.last_seq()
    exe = Path(sys.executable).with_name("scaleenv")
    cmd = [str(exe), "synth", "--log", path, "--domains", str(domains), "--min-tools", str(tools),
           "--max-tools", str(tools), "--no-sync", "--quiet"]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    first = None
    try:
        while proc.poll() is None and time.monotonic() - t0 < 600:
            with Log.open(path, readonly=True) as log:
                if log.last_seq() > start_seq:
                    first = time.monotonic() - t0
                    break
            time.sleep(0.05)
        rss = rss_anon_kb(proc.pid)
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        try:
            status = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            status = proc.wait()
        exit_s = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
    err = proc.stderr.read().decode(errors="replace").strip().splitlines() if proc.stderr else []
    return {"resume_first_event_s": round(first, 2) if first is not None else None, "resume_rss_anon_kb": rss,
            "sigint_exit_s": round(exit_s, 3), "sigint_status": status, "sigint_message": err[-1] if err else ""}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--domains", type=int, default=10_000)
    ap.add_argument("--tools", type=int, default=5, help="tools every brief asks for (5: the config's least)")
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--warmup", type=int, default=None, help="domains before memory counts (default min(1000, domains/10))")
    ap.add_argument("--samples", type=int, default=50, help="memory samples over the run")
    ap.add_argument("--keep", default=None, help="write the log here and keep it (default: a temporary folder)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    warmup = args.warmup if args.warmup is not None else max(1, min(1000, args.domains // 10))
    # (the run keeps the integrity constraints of its 256 most recent domains: warm up past them for a flat line)
    tmp = tempfile.mkdtemp(prefix="bench-memory-")
    path = args.keep or os.path.join(tmp, "run.lmdb")
    try:
        t0 = time.monotonic()
        samples, cpu = synthesize(path, args.domains, args.tools, args.concurrency, max(1, args.domains // args.samples))
        wall = time.monotonic() - t0
        past = [(d, kb) for d, kb in samples if d >= warmup]
        warm = past[0][1] if past else samples[-1][1]
        end = samples[-1][1]
        yardstick = spec_bytes(path) * 1000 / 1024
        out: dict[str, Any] = {
            "domains": args.domains, "tools_per_domain": args.tools, "concurrency": args.concurrency,
            "warmup_domains": past[0][0] if past else None,
            "rss_anon_warm_kb": warm, "rss_anon_end_kb": end, "growth_kb": end - warm,
            "slope_kb_per_1000_domains": round(slope_per_1000(past), 1),
            "leak_yardstick_kb_per_1000_domains": round(yardstick, 1),
            "max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            "synth_wall_s": round(wall, 1), "synth_cpu_s": round(cpu, 1),
            "domains_per_s": round(args.domains / wall, 2),
            "samples": samples,
        }
        out.update(interrupt_resume(path, 2 * args.domains, args.tools))
        out["load_avg"] = os.getloadavg()[0]
        if args.json:
            print(json.dumps(out))
        else:
            for k, v in out.items():
                if k != "samples":
                    print(f"{k}: {v}")
    finally:
        if args.keep is None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

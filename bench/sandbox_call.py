"""Benchmark: tool-call throughput of the sandbox vs a fresh process per call vs
an unconfined in-process call (the ceiling).

Usage: .venv/bin/python bench/sandbox_call.py [--calls N] [--json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from typing import Any

import trio

from scaleenv._sandbox import SandboxPool

TOOL = '''
def adjust_stock(db, sku, qty):
    item = db["stock"].get(sku)
    if item is None:
        raise ToolError(f"unknown sku {sku}")
    item["qty"] = item["qty"] + qty
    return {"sku": sku, "qty": item["qty"]}
'''
STATE: dict[str, Any] = {"stock": {f"s{i}": {"qty": i, "name": f"item {i}"} for i in range(100)}}
ARGS = {"sku": "s7", "qty": 1}

FRESH_SCRIPT = """
import json, sys
src, state, args = json.loads(sys.stdin.read())
class ToolError(Exception): pass
ns = {"ToolError": ToolError}
exec(compile(src, "<tool>", "exec"), ns)
print(json.dumps(ns["adjust_stock"](state, **args)))
"""


async def pool_rate(calls: int, concurrency: int) -> float:
    async with SandboxPool(workers=2) as pool:
        for c in range(concurrency):
            await pool.open_session(f"s{c}", {"adjust_stock": TOOL}, STATE)
        per_task = calls // concurrency

        async def worker(c: int) -> None:
            for _ in range(per_task):
                outcome = await pool.call(f"s{c}", "adjust_stock", ARGS)
                assert outcome.ok

        start = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for c in range(concurrency):
                nursery.start_soon(worker, c)
        return per_task * concurrency / (time.perf_counter() - start)


def fresh_rate(calls: int) -> float:
    payload = json.dumps([TOOL, STATE, ARGS])
    start = time.perf_counter()
    for _ in range(calls):
        subprocess.run([sys.executable, "-I", "-c", FRESH_SCRIPT], input=payload, capture_output=True, text=True, check=True)
    return calls / (time.perf_counter() - start)


def inprocess_rate(calls: int) -> float:
    class ToolError(Exception):
        pass

    ns: dict[str, Any] = {"ToolError": ToolError}
    exec(compile(TOOL, "<tool>", "exec"), ns)  # the unconfined ceiling: trusted bench code only
    func = ns["adjust_stock"]
    state = json.loads(json.dumps(STATE))
    start = time.perf_counter()
    for _ in range(calls):
        func(state, **ARGS)
    return calls / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--fresh-calls", type=int, default=100)
    parser.add_argument("--json", action="store_true")
    opts = parser.parse_args()
    pool1 = trio.run(pool_rate, opts.calls // 4, 1)
    pool100 = trio.run(pool_rate, opts.calls, 100)
    fresh = fresh_rate(opts.fresh_calls)
    inproc = inprocess_rate(opts.calls * 10)
    lines = [
        f"pool, concurrency 1:    {pool1:12.0f} calls/s",
        f"pool, concurrency 100:  {pool100:12.0f} calls/s",
        f"fresh python -I/call:   {fresh:12.0f} calls/s",
        f"in-process unconfined:  {inproc:12.0f} calls/s",
        f"pool(100) / fresh:      {pool100 / fresh:12.1f}x",
        f"in-process / pool(100): {inproc / pool100:12.1f}x",
    ]
    sys.stdout.write("\n".join(lines) + "\n")
    if opts.json:
        sys.stdout.write(
            json.dumps(
                {
                    "pool_calls_per_s": pool100,
                    "pool_c1_calls_per_s": pool1,
                    "pool_c100_calls_per_s": pool100,
                    "fresh_process_calls_per_s": fresh,
                    "inprocess_calls_per_s": inproc,
                }
            )
            + "\n"
        )


if __name__ == "__main__":
    main()

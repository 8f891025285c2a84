"""Bench the LLM port: its own overhead per call on the sim, and calls/s over HTTP.

1. In-process: ``Llm.generate`` on the sim backend with zero latency, sequentially, into
   an in-memory stream (so the figure is the port, not the log) and into a real LMDB log
   (``sync=False``). Baseline: the same requests answered by ``SimBackend.answer``
   directly; ``port_share`` is the part of each call spent outside the sim.
2. HTTP: the same port over ``scaleenv sim-server`` (in this process, its own trio task)
   through the openai backend (real openai client + outlines, loopback socket) at a few
   concurrency levels.

    .venv/bin/python bench/llm_port.py [--calls N] [--http-calls N] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import structlog
import trio

from scaleenv.agents.llm.openai_backend import OpenAIBackend
from scaleenv.agents.llm.port import Llm, LlmExhaustedError, LlmRequest, render_messages, schema_for
from scaleenv.agents.sim import NoiseModel, SimBackend
from scaleenv.serve.sim_http import SimServer, serve_sim
from scaleenv.store import Log, Stream
from scaleenv.store.events import Ref

log = structlog.get_logger("bench.llm_port")


class Param(msgspec.Struct):
    name: str
    type: Literal["string", "integer", "number", "boolean"]
    description: str
    required: bool = True


class ToolSpec(msgspec.Struct):
    """A typical synthesizer answer: a tool schema."""

    name: Annotated[str, msgspec.Meta(max_length=64)]
    description: str
    params: list[Param]
    reads: list[str]
    writes: list[str]


class MemoryStream:
    """The stream members the port uses, in memory (isolates the port from the log)."""

    def __init__(self, stream_id: str) -> None:
        self.id = stream_id
        self.memo: dict[str, Any] = {}
        self.next_n = 0
        self.events: list[Any] = []

    def peek(self) -> None:
        return None

    async def emit(self, event: Any, *, actor: str, cause: Ref | None = None) -> Ref:
        self.events.append(event)
        self.next_n += 1
        return Ref(self.id, self.next_n - 1)


def _request(i: int) -> LlmRequest:
    ctx = {"domain": "retail", "tool": f"tool_{i % 50}", "tables": ["orders", "customers"], "i": i}
    return LlmRequest(role="bench/schema", messages=render_messages("Define the tool.", ctx, "Write its schema."), context=ctx)


async def _generate(llm: Llm, stream: Any, i: int) -> None:
    try:
        await llm.generate(stream, _request(i), ToolSpec)
    except LlmExhaustedError:
        pass


async def bench_in_process(calls: int) -> dict[str, float]:
    sim = SimBackend()  # default noise: retries happen as in a run
    llm = Llm(sim, run_seed=1)
    streams = [MemoryStream(f"bench/{i}") for i in range(calls)]
    start = time.perf_counter()
    for i, s in enumerate(streams):
        await _generate(llm, s, i)
    port_s = time.perf_counter() - start
    attempts = sum(len(s.events) for s in streams)
    # baseline: the sim alone, on exactly the requests the port sent (same messages, seeds)
    schema, name = schema_for(ToolSpec)
    sent = [(e.messages, e.seed) for s in streams for e in s.events if hasattr(e, "seed")]
    start = time.perf_counter()
    for messages, seed in sent:
        sim.answer(messages, schema, name, seed)
    sim_s = time.perf_counter() - start

    with tempfile.TemporaryDirectory() as tmp:
        with Log.open(Path(tmp) / "log", sync=False) as lg:
            async with lg.writer() as w:
                start = time.perf_counter()
                for i in range(calls):
                    await _generate(llm, Stream(w, f"bench/{i}"), i)
                log_s = time.perf_counter() - start
    return {
        "calls": calls,
        "attempts": attempts,
        "calls_per_s": calls / port_s,
        "us_per_call": port_s / calls * 1e6,
        "sim_answer_calls_per_s": len(sent) / sim_s,
        "port_share": max(0.0, 1 - sim_s / port_s),
        "port_overhead_us_per_attempt": (port_s - sim_s) / attempts * 1e6,
        "calls_per_s_with_log": calls / log_s,
    }


async def bench_http(calls: int, levels: list[int]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with trio.open_nursery() as nursery:
        port = await nursery.start(partial(serve_sim, "127.0.0.1", 0, server=SimServer(sim=SimBackend(noise=NoiseModel()))))
        for level in levels:
            backend = OpenAIBackend(base_url=f"http://127.0.0.1:{port}/v1", model="scaleenv-sim-1")
            llm = Llm(backend, run_seed=1, limiter=trio.CapacityLimiter(level))
            start = time.perf_counter()
            async with trio.open_nursery() as n:
                for i in range(calls):
                    n.start_soon(_generate, llm, MemoryStream(f"http/{level}/{i}"), i)
            elapsed = time.perf_counter() - start
            await llm.aclose()
            out[f"c{level}"] = calls / elapsed
            log.info("http level done", concurrency=level, calls_per_s=round(calls / elapsed, 1))
        nursery.cancel_scope.cancel()
    return out


async def main(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"bench": "llm_port"}
    results.update(await bench_in_process(args.calls))
    http = await bench_http(args.http_calls, args.levels)
    results["http_calls_per_s_by_concurrency"] = http
    results["http_calls_per_s"] = max(http.values())
    results["baseline"] = "sim_answer_calls_per_s (the sim alone, same requests); calls_per_s (in-process port) for HTTP"
    results["http_vs_in_process"] = results["http_calls_per_s"] / results["calls_per_s"]
    return results


def _print(results: dict[str, Any], as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(results) + "\n")
        return
    for key, value in results.items():
        shown = f"{value:,.3f}" if isinstance(value, float) else value
        sys.stdout.write(f"{key:36} {shown}\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=3000, help="in-process port calls (default %(default)s)")
    parser.add_argument("--http-calls", type=int, default=400, help="HTTP calls per concurrency level (default %(default)s)")
    parser.add_argument("--levels", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8, 32],
                        help="HTTP concurrency levels, comma-separated (default 1,8,32)")
    parser.add_argument("--json", action="store_true", help="print one JSON object on the last line")
    args = parser.parse_args()
    _print(trio.run(main, args), args.json)

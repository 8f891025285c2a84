"""Bench the LLM port: its own overhead per call on the sim, and the OpenAI-protocol client.

1. In-process: ``Llm.generate`` on the sim backend with zero latency, sequentially, into
   an in-memory stream (so the figure is the port, not the log) and into a real LMDB log
   (``sync=False``). Baseline: the same requests answered by ``SimBackend.answer``
   directly; ``port_share`` is the part of each call spent outside the sim.
2. HTTP calls/s: the same port over the sim server (in this process, its own trio task)
   through the openai backend (scaleenv's client, loopback socket) at a few concurrency
   levels (``http_calls_per_s*``); the server's work is in this process too.
3. Client CPU per call, with the sim server in its own process (noise 0, no latency) and
   32 calls in flight, the same requests (a json_schema-constrained chat completion, as
   the synthesizers send) through three clients, measured in turns within one run:
   ``http_client_cpu_us_per_call`` (scaleenv's client: ``OpenAIBackend.complete``, the
   request built from the port's request), ``openai_sdk_cpu_us_per_call`` (the official
   openai SDK's async client, same request bodies, what the backend used before), and
   ``raw_http_cpu_us_per_call`` (a bare keep-alive HTTP/1.1 client: encode the body,
   send, read by Content-Length, decode the JSON; the floor). CPU is this process's
   (``time.process_time``) divided by the calls; the median of ``--rounds`` turns.
4. ``http_efficiency_at_1000_realistic``: rollouts with 1,000 episodes in flight through
   ``--llm openai:URL`` against a model server process with realistic latency (log-normal,
   median 1 s, sigma 0.75: a tail to ~10 s), default noise. As in bench/rollout.py:
   efficiency = LLM calls/s achieved over the saturated window / the ideal
   (1,000 / mean latency), the mean taken of the latencies the server slept. The sim's
   answers are recorded first (an in-process run of the same episodes) and the server is
   ``scaleenv sim-server --replay`` of that recording (``http_realistic.server``): each
   response encoded once at start, found by the request's seed with a byte search, sent
   after the latency on a timer, so the server process costs about what a model server's
   HTTP front costs, not the sim's role simulators (a model server's GPU work) nor a JSON
   decode per request. The run must ask for exactly the recorded calls (the server's
   counts say so, else the bench fails). Baseline in the same run: the same episodes and
   sleeps with the recorded answers in-process (``in_process_efficiency``,
   bench/rollout.py's setting (b)). CPU per call of the engine's process
   (``engine_cpu_us_per_call``) and of the server's (``server_cpu_us_per_call``) are
   reported next to it: both share this machine's cores.

    .venv/bin/python bench/llm_port.py [--calls N] [--http-calls N] [--cpu-calls N] [--realistic-only] [--json]
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import structlog
import trio
from rollout import TimedReplay, build_template, in_subprocess, shape_config  # bench/rollout.py: how rollouts are benchmarked

from scaleenv._agents.llm.openai_backend import OpenAIBackend
from scaleenv._agents.llm.port import Llm, LlmExhaustedError, LlmRequest, render_messages, schema_for
from scaleenv._agents.sim import LatencyModel, NoiseModel, SimBackend
from scaleenv._agents.llm.recorded import read_calls
from scaleenv._serve.replay_http import ReplayAnswers
from scaleenv._serve.sim_http import SimServer, serve_sim
from scaleenv._runner import EngineOptions, open_run, rollouts
from scaleenv._store import Log, Stream
from scaleenv._store.events.llm import LlmCalled
from scaleenv._store.events import Ref

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
            await _generate(llm, MemoryStream(f"warm/{level}"), calls)  # first use builds the constraint (imports outlines)
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


# --- 3. client CPU per call, the server in its own process -------------------------------


def serve_child(spec: dict[str, Any]) -> None:
    """``--serve-child``: a live sim server process (noise 0, no latency: the client CPU
    comparison); prints its port on stdout, serves until killed."""
    noise = NoiseModel() if spec["noise"] is None else NoiseModel(
        malformed=0.2 * spec["noise"], schema_violation=0.2 * spec["noise"], mistakes=spec["noise"])
    server = SimServer(sim=SimBackend(noise=noise))
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            port = await nursery.start(partial(serve_sim, "127.0.0.1", 0, server=server))
            print(port, flush=True)

    trio.run(main)


def _process_cpu_s(pid: int) -> float:
    """CPU seconds process ``pid`` used so far (user + system)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class ServerProcess:
    """A live sim server in its own process (``with ServerProcess(...) as url``)."""

    def __init__(self, noise: float | None) -> None:
        self.spec = {"noise": noise}
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def __enter__(self) -> str:
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve-child", json.dumps(self.spec)],
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.strip().isdigit():
            raise RuntimeError(f"the sim server child did not start: {line!r}")
        self.url = f"http://127.0.0.1:{int(line)}/v1"
        return self.url

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait()


REPLAY_SERVER = "scaleenv sim-server --replay (recorded answers pre-encoded, found by request seed; asyncio)"


class ReplayServerProcess:
    """``scaleenv sim-server --replay RECORDING`` with the latency model, in its own process."""

    def __init__(self, recording: str, median: float, sigma: float) -> None:
        self.args = ["sim-server", "--port", "0", "--replay", recording, "--latency", "--latency-median", str(median),
                     "--latency-sigma", str(sigma)]
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def __enter__(self) -> ReplayServerProcess:
        self.proc = subprocess.Popen([sys.executable, "-c", "from scaleenv._cli import main; raise SystemExit(main())",
                                      *self.args], stderr=subprocess.PIPE, text=True)
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline()
        while line and "serving" not in line:
            line = self.proc.stderr.readline()
        if " at http://" not in line:
            raise RuntimeError(f"sim-server --replay did not start: {line!r}")
        self.url = line.split(" at ", 1)[1].split()[0]
        return self

    def cpu_s(self) -> float:
        assert self.proc is not None
        return _process_cpu_s(self.proc.pid)

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url.removesuffix("/v1") + "/replay/stats") as r:  # noqa: S310 - loopback
            return json.loads(r.read())

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait()
            if self.proc.stderr is not None:
                self.proc.stderr.close()


class RawClient:
    """The floor: a bare keep-alive HTTP/1.1 client (encode, send, read by Content-Length, decode)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.encode = msgspec.json.Encoder().encode
        self.head = b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"

    async def run(self, bodies: list[dict[str, Any]]) -> None:
        stream = await trio.open_tcp_stream("127.0.0.1", self.port)
        buf = bytearray()
        async with stream:
            for body in bodies:
                data = self.encode(body)
                await stream.send_all(b"%scontent-length: %d\r\n\r\n%s" % (self.head, len(data), data))
                while True:
                    end = buf.find(b"\r\n\r\n")
                    if end >= 0:
                        head = bytes(buf[:end]).lower()
                        at = head.index(b"content-length:") + 15
                        stop = head.find(b"\r\n", at)
                        size = int(head[at:stop if stop >= 0 else len(head)])
                        if len(buf) >= end + 4 + size:
                            reply = msgspec.json.decode(bytes(buf[end + 4:end + 4 + size]))
                            reply["choices"][0]["message"]["content"]
                            del buf[:end + 4 + size]
                            break
                    data = await stream.receive_some(65536)
                    if not data:
                        raise RuntimeError("the server closed the connection")
                    buf += data


async def bench_client_cpu(url: str, calls: int, concurrency: int, rounds: int) -> dict[str, Any]:
    """CPU per call of three clients doing the same requests (see the module docstring, 3)."""
    import openai  # the SDK is a test/bench dependency only

    schema, name = schema_for(ToolSpec)
    requests = [_request(i) for i in range(calls)]
    for i, r in enumerate(requests):  # seeds as the port would set them
        requests[i] = msgspec.structs.replace(r, seed=1000 + i)
    backend = OpenAIBackend(base_url=url, model="scaleenv-sim-1")
    bodies = [json.loads(backend.body(r, schema)) for r in requests]
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    sdk = openai.AsyncOpenAI(base_url=url, api_key="EMPTY", max_retries=0)

    async def ours(items: list[Any]) -> None:
        for r in items:
            await backend.complete(r, schema, name)

    async def raw(items: list[Any]) -> None:
        await RawClient(port).run(items)

    async def official(items: list[Any]) -> None:
        for body in items:
            kwargs = dict(body)
            reply = await sdk.chat.completions.create(**kwargs)
            reply.choices[0].message.content

    clients = {"http_client": (ours, requests), "raw_http": (raw, bodies), "openai_sdk": (official, bodies)}

    async def run(client: Any, items: list[Any]) -> None:
        async with trio.open_nursery() as nursery:
            for k in range(concurrency):
                nursery.start_soon(client, items[k::concurrency])

    for client, items in clients.values():  # warm up: connections, imports, caches
        await run(client, items[: 4 * concurrency])
    samples: dict[str, list[float]] = {k: [] for k in clients}
    order = list(clients)
    for turn in range(rounds):
        for key in order[turn % 3:] + order[:turn % 3]:
            client, items = clients[key]
            gc.collect()
            start = time.process_time()
            await run(client, items)
            samples[key].append((time.process_time() - start) / len(items) * 1e6)
    await backend.aclose()
    await sdk.close()
    out: dict[str, Any] = {f"{k}_cpu_us_per_call": round(statistics.median(v), 1) for k, v in samples.items()}
    out["cpu_samples_us"] = {k: [round(x, 1) for x in v] for k, v in samples.items()}
    out["http_client_vs_raw_floor"] = round(out["http_client_cpu_us_per_call"] / out["raw_http_cpu_us_per_call"], 2)
    out["openai_sdk_vs_http_client"] = round(out["openai_sdk_cpu_us_per_call"] / out["http_client_cpu_us_per_call"], 1)
    return out


# --- 4. rollouts at 1,000 in flight through --llm openai: -----------------------------------


class TimedHttp:
    """The run's HTTP backend, noting when each call ended (for the saturated window)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name, self.model = inner.name, inner.model
        self.ends: list[float] = []

    async def complete(self, request: LlmRequest, json_schema: dict[str, Any], schema_name: str) -> Any:
        out = await self.inner.complete(request, json_schema, schema_name)
        self.ends.append(time.perf_counter())
        return out

    async def aclose(self) -> None:
        await self.inner.aclose()


def rollout_child(setting: dict[str, Any]) -> dict[str, Any]:
    """``--rollout-child``: rollouts on a copy of the template, through ``openai:URL`` when the
    setting names a URL, else with the recorded answers in-process after the same sleeps."""
    work = Path(tempfile.mkdtemp(prefix="scaleenv-bench-llm-"))
    try:
        path = work / "log"
        shutil.copytree(setting["template"], path)
        c = setting["concurrency"]
        per_task = max(1, math.ceil(setting["episodes"] / setting["tasks"]))
        config = shape_config(setting["shape"], setting["domains"], setting["tasks_per_domain"], per_task)
        over_http = bool(setting.get("url"))
        opts = EngineOptions(llm=f"openai:{setting['url']}" if over_http else "sim", model="scaleenv-sim-1",
                             progress=False, sync=True, concurrency=c, llm_concurrency=c)

        async def measure() -> dict[str, Any]:
            async with open_run(str(path), config, opts) as ctx:
                timed: Any
                if over_http:
                    timed = TimedHttp(ctx.llm.backend)
                else:  # bench/rollout.py's replay: the recorded answers after the latency model's sleep
                    latency = LatencyModel(enabled=True, base_s=setting["latency_median"], per_token_s=0.0,
                                           sigma=setting["latency_sigma"])
                    timed = TimedReplay(read_calls(setting["recording"]), latency)
                ctx.llm.backend = timed
                window: list[float] = []

                async def watch() -> None:
                    # The saturated window, as bench/rollout.py defines it: from when `c`
                    # episodes are first in flight until the last episode is admitted.
                    progress = ctx.progress
                    while ctx.agents.borrowed_tokens < c:
                        await trio.sleep(0.005)
                    window.append(time.perf_counter())
                    while True:
                        total = progress.totals.get("episodes", 0)
                        started = progress.counters.get("running", 0) + progress.counters.get("episodes", 0)
                        if progress.stage == "rollout" and total and started >= total:
                            break
                        await trio.sleep(0.005)
                    window.append(time.perf_counter())

                samples: list[tuple[float, int, int]] = []

                async def sample() -> None:
                    while True:
                        samples.append((time.perf_counter(), ctx.agents.borrowed_tokens, ctx.llm.limiter.borrowed_tokens))
                        await trio.sleep(0.5)

                first_seq = ctx.log.last_seq() + 1
                cpu0, t0 = time.process_time(), time.perf_counter()
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(watch)
                    nursery.start_soon(sample)
                    await rollouts(ctx)
                    nursery.cancel_scope.cancel()
                t1, cpu1 = time.perf_counter(), time.process_time()
            with Log.open(path, readonly=True) as lg:  # the latencies slept (in-process: the events say)
                slept = [r.event.latency_s for r in lg.read(first_seq) if isinstance(r.event, LlmCalled)]
            saturated = len(window) == 2 and window[1] - window[0] > 1.0
            start, end = (window[0], window[1]) if saturated else (t0, t1)
            done = sum(1 for t in timed.ends if start < t <= end)
            inside = [(a, b) for t, a, b in samples if start < t <= end] or [(0, 0)]
            return {"mean_episodes_in_flight": round(statistics.fmean(a for a, _ in inside), 1),
                    "mean_llm_calls_in_flight": round(statistics.fmean(b for _, b in inside), 1),
                    "llm_calls": len(timed.ends),
                    "mean_latency_s": round(statistics.fmean(slept), 4) if slept else None,
                    "wall_s": round(t1 - t0, 2), "window_s": round(end - start, 2),
                    "llm_calls_per_s_window": round(done / (end - start), 1), "saturated_window": saturated,
                    "engine_cpu_s": round(cpu1 - cpu0, 2)}

        return trio.run(measure)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _rollout_in_child(setting: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__, "--rollout-child", json.dumps(setting)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"the rollout child failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


SHAPE = "small"
"""bench/rollout.py's task shape for the realistic rollout: one goal on a handful of records, the
tasks this bench measured before the paper-scale stage 2 (figures stay comparable)."""


def bench_realistic(concurrency: int, episodes: int, median: float, sigma: float) -> dict[str, Any]:
    """Rollouts through ``--llm openai:`` against a sim server with realistic latency (4.)."""
    with tempfile.TemporaryDirectory(prefix="scaleenv-bench-llm-") as tmp:
        template, recording = Path(tmp) / "template", Path(tmp) / "recording"
        domains, tpd = 2, 5
        tasks = build_template(template, SHAPE, domains, tpd)
        base = {"template": str(template), "shape": SHAPE, "tasks": tasks, "domains": domains, "tasks_per_domain": tpd,
                "concurrency": concurrency, "episodes": episodes}
        # The sim's answers to these very episodes, in-process (bench/rollout.py's recording run).
        in_subprocess({**base, "concurrency": 100, "sync": False, "keep_as": str(recording)})
        latency = LatencyModel(enabled=True, base_s=median, per_token_s=0.0, sigma=sigma)
        # what the replay server sleeps for each answer of the recorded rollouts (the same table it
        # builds; the recording also holds the template's synthesis calls, never asked for again)
        table = ReplayAnswers.of(read_calls(recording), latency=latency).answers
        synthesis = {c.seed for c in read_calls(template)}
        slept = [a.latency_s for seed, a in table.items() if seed not in synthesis]
        with ReplayServerProcess(str(recording), median, sigma) as server:
            server_cpu0, load0 = server.cpu_s(), os.getloadavg()[0]
            result = _rollout_in_child({**base, "url": server.url})
            result["server_cpu_s"] = round(server.cpu_s() - server_cpu0, 2)
            # the machine's 1-minute load before and after: the engine shares the cores with it
            result["load_avg_1m"] = [round(load0, 1), round(os.getloadavg()[0], 1)]
            stats = server.stats()
        # Baseline, same run: the same episodes, answers and sleeps, in-process (no HTTP).
        local = _rollout_in_child({**base, "recording": str(recording), "latency_median": median,
                                   "latency_sigma": sigma})
    # The run over HTTP asked for exactly the recorded calls (same seed, same answers: the
    # replay server's test shows the digests agree), each once: then the latencies it slept
    # are the table's.
    if stats["missed"] or stats["served"] != len(slept):
        raise RuntimeError(f"the run over HTTP did not ask for the recorded calls: {stats}, {len(slept)} recorded")
    ideal = concurrency / stats["mean_latency_s"]
    local_ideal = concurrency / local["mean_latency_s"]
    result.update({
        "concurrency": concurrency, "episodes": episodes, "shape": SHAPE, "latency_median_s": median, "latency_sigma": sigma,
        "server": REPLAY_SERVER, "server_calls": stats["served"], "mean_latency_s": round(stats["mean_latency_s"], 4),
        "p99_latency_s": round(sorted(slept)[int(0.99 * (len(slept) - 1))], 3), "max_latency_s": round(max(slept), 3),
        "ideal_llm_calls_per_s": round(ideal, 1), "efficiency": round(result["llm_calls_per_s_window"] / ideal, 4),
        "engine_cpu_us_per_call": round(result["engine_cpu_s"] / result["llm_calls"] * 1e6),
        "server_cpu_us_per_call": round(result["server_cpu_s"] / len(slept) * 1e6),
        "in_process_efficiency": round(local["llm_calls_per_s_window"] / local_ideal, 4),
        "in_process": {**local, "engine_cpu_us_per_call": round(local["engine_cpu_s"] / local["llm_calls"] * 1e6)},
    })
    return result


async def main(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"bench": "llm_port"}
    results.update(await bench_in_process(args.calls))
    http = await bench_http(args.http_calls, args.levels)
    results["http_calls_per_s_by_concurrency"] = http
    results["http_calls_per_s"] = max(http.values())
    results["baseline"] = ("sim_answer_calls_per_s (the sim alone, same requests); calls_per_s (in-process port) "
                           "for HTTP; raw_http_cpu_us_per_call (a bare keep-alive client, same requests) and "
                           "openai_sdk_cpu_us_per_call (the SDK, same requests) for http_client_cpu_us_per_call")
    results["http_vs_in_process"] = results["http_calls_per_s"] / results["calls_per_s"]
    with ServerProcess(noise=0.0) as url:
        results.update(await bench_client_cpu(url, args.cpu_calls, 32, args.rounds))
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
    parser.add_argument("--cpu-calls", type=int, default=1000,
                        help="calls per client per round for the CPU comparison (default %(default)s)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the CPU comparison (default %(default)s)")
    parser.add_argument("--episodes", type=int, default=3000,
                        help="episodes of the realistic-latency rollout at 1,000 in flight (default %(default)s)")
    parser.add_argument("--no-realistic", action="store_true", help="skip the realistic-latency rollout (4.)")
    parser.add_argument("--realistic-only", action="store_true", help="only the realistic-latency rollout (4.)")
    parser.add_argument("--json", action="store_true", help="print one JSON object on the last line")
    parser.add_argument("--serve-child", help=argparse.SUPPRESS)
    parser.add_argument("--rollout-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_child:
        serve_child(json.loads(args.serve_child))
        sys.exit(0)
    if args.rollout_child:
        print(json.dumps(rollout_child(json.loads(args.rollout_child))))
        sys.exit(0)
    out = {"bench": "llm_port"} if args.realistic_only else trio.run(main, args)
    if not args.no_realistic:
        realistic = bench_realistic(1000, args.episodes, median=1.0, sigma=0.75)
        out["http_efficiency_at_1000_realistic"] = realistic["efficiency"]
        out["http_realistic"] = realistic
    out["targets"] = {"http_client_vs_raw_floor": "<= 2", "openai_sdk_vs_http_client": ">= 10",
                      "http_efficiency_at_1000_realistic": ">= 0.9"}
    _print(out, args.json)

"""Bench rollouts on the sim: engine throughput, latency efficiency, memory per episode.

One template log is synthesized once (stage 1 + stage 2, ``sync=False``); every setting
then runs in its own subprocess on a fresh copy of it (so settings neither share tasks'
warm caches nor contaminate each other's peak memory), with ``episodes_per_task`` large
enough that at least a few times ``concurrency`` episodes run.

(a) zero latency: the engine's own cost. A *step* is one tool call executed and logged
    (a ``ToolExecuted`` event); steps/s, episodes/s and events/s at concurrency 1, 10,
    100, 1000, with durable logging (``sync=True``) and with ``sync=False``.
(b) latency on: the sim sleeps a log-normal time per LLM call (``base_s`` median,
    small ``sigma``, no per-token part). The ideal is ``concurrency / mean latency``
    LLM calls/s; ``efficiency = achieved / ideal``, measured over the saturated window
    (while episodes are still queued behind the concurrency limit, so the tail of the
    last wave does not count against the engine).
(c) memory: peak RSS (VmHWM) minus RSS before the rollouts, per in-flight episode, for
    the engine process and for the sandbox workers (where the episodes' sessions live).

    .venv/bin/python bench/rollout.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec
import trio

from scaleenv.agents.llm.recorded import RecordedBackend, read_calls
from scaleenv.agents.llm.port import Completion, LlmRequest
from scaleenv.agents.llm.sim import LatencyModel, NoiseModel, SimBackend
from scaleenv.replay.projection import fold
from scaleenv.run_context import RunConfig
from scaleenv.runner import EngineOptions, open_run, project, rollouts, stage1, stage2
from scaleenv.store.events.episodes import RewardGiven, ToolExecuted
from scaleenv.store.events.llm import LlmCalled

SEED = 11


def _status_kb(pid: int | str, field: str) -> int:
    """A field of /proc/PID/status in kB (0 when the process is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return 0
    return 0


def build_template(path: Path, domains: int, tasks_per_domain: int) -> int:
    """Synthesize domains and tasks once; return the number of kept tasks."""
    config = RunConfig(seed=SEED, domains=domains, tasks_per_domain=tasks_per_domain, episodes_per_task=0)

    async def main() -> int:
        async with open_run(str(path), config, EngineOptions(progress=False, sync=False)) as ctx:
            await stage1(ctx)
            await stage2(ctx)
            view = project(ctx.log)
        return sum(t.status == "kept" for t in view.tasks.values())

    return trio.run(main)


class TimedSim(SimBackend):
    """The sim backend that also notes when each call ended."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.ends: list[float] = []

    async def complete(self, request: LlmRequest, json_schema: dict[str, Any], schema_name: str) -> Completion:
        out = await super().complete(request, json_schema, schema_name)
        self.ends.append(time.perf_counter())
        return out


class TimedReplay(RecordedBackend):
    """The sim's recorded answers, served after the sim's latency model sleeps (no model compute here).

    The sleep is drawn from the same log-normal model, seeded by the request seed, so the
    latencies match the live sim's; the answers are the ones the sim gave for the same requests.
    """

    def __init__(self, calls: list[LlmCalled], latency: LatencyModel) -> None:
        super().__init__(calls, source="recording")
        self.latency = latency
        self.ends: list[float] = []

    async def complete(self, request: LlmRequest, json_schema: dict[str, Any], schema_name: str) -> Completion:
        out = await super().complete(request, json_schema, schema_name)
        delay = self.latency.sample(random.Random(request.seed ^ 0x5EED), out.completion_tokens)
        await trio.sleep(delay)
        self.ends.append(time.perf_counter())
        return msgspec.structs.replace(out, latency_s=delay)


CACHED_COMPILE_WORKER = (
    "import functools\n"
    "from scaleenv.sandbox import executor, policy\n"
    "executor.compile_tool = functools.lru_cache(maxsize=4096)(policy.compile_tool)\n"
    "from scaleenv.sandbox.worker import main\n"
    "main()\n"
)


def _cache_worker_compiles() -> None:
    """Experiment: sandbox workers that compile each tool source once, not once per session.

    Patches how this process spawns workers (the sandbox itself is unchanged); used by
    ``--what-if-compile-cache`` to show what a compile cache in the worker would give.
    """
    from scaleenv.sandbox import process

    process.worker_command = lambda python=sys.executable: [python, "-s", "-P", "-c", CACHED_COMPILE_WORKER]


def run_setting(setting: dict[str, Any]) -> dict[str, Any]:
    """One setting, in this (child) process: copy the template, run rollouts, measure."""
    if setting.get("cached_compile"):
        _cache_worker_compiles()
    work = Path(tempfile.mkdtemp(prefix="scaleenv-bench-rollout-"))
    try:
        path = work / "log"
        shutil.copytree(setting["template"], path)
        c = setting["concurrency"]
        per_task = max(1, math.ceil(setting["episodes"] / setting["tasks"]))
        config = RunConfig(seed=SEED, domains=setting["domains"], tasks_per_domain=setting["tasks_per_domain"],
                           episodes_per_task=per_task)
        opts = EngineOptions(progress=False, sync=setting["sync"], concurrency=c, llm_concurrency=c)
        out = trio.run(_measure, path, config, opts, setting)
        if setting.get("keep_as"):
            shutil.copytree(path, setting["keep_as"])
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


async def _measure(path: Path, config: RunConfig, opts: EngineOptions, setting: dict[str, Any]) -> dict[str, Any]:
    c = setting["concurrency"]
    async with open_run(str(path), config, opts) as ctx:
        latency = LatencyModel(enabled=bool(setting.get("latency_base_s")), base_s=setting.get("latency_base_s", 0.0),
                               per_token_s=0.0, sigma=setting.get("latency_sigma", 0.0))
        timed: TimedSim | TimedReplay
        if setting.get("recording"):
            # Engine only: the sim's answers for these very requests, recorded by an earlier run.
            timed = TimedReplay(read_calls(setting["recording"]), latency)
        else:
            timed = TimedSim(noise=NoiseModel(), latency=latency)
        ctx.llm.backend = timed
        first_seq = ctx.log.last_seq() + 1
        workers = ctx.sandbox.worker_pids()
        rss0 = _status_kb("self", "VmRSS")
        wrss0 = sum(_status_kb(p, "VmRSS") for p in workers)
        saturated_until: list[float] = []

        async def watch() -> None:
            # The saturated window ends when no episode waits for the concurrency limit.
            while True:
                await trio.sleep(0.01)
                if ctx.agents.statistics().tasks_waiting == 0 and ctx.agents.borrowed_tokens < c:
                    saturated_until.append(time.perf_counter())
                    return

        t0 = time.perf_counter()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch)
            await rollouts(ctx)
            nursery.cancel_scope.cancel()
        t1 = time.perf_counter()
        hwm = _status_kb("self", "VmHWM")
        whwm = sum(_status_kb(p, "VmHWM") for p in workers)
    steps = episodes = llm_calls = events = 0
    latency_sum = 0.0
    from scaleenv.store.log import Log

    with Log.open(path, readonly=True) as log:
        for rec in log.read(first_seq):
            events += 1
            ev = rec.event
            if isinstance(ev, ToolExecuted):
                steps += 1
            elif isinstance(ev, RewardGiven):
                episodes += 1
            elif isinstance(ev, LlmCalled):
                llm_calls += 1
                latency_sum += ev.latency_s
    wall = t1 - t0
    out: dict[str, Any] = {
        "concurrency": c, "sync": setting["sync"], "episodes": episodes, "steps": steps, "events": events,
        "llm_calls": llm_calls, "wall_s": round(wall, 3),
        "steps_per_s": round(steps / wall, 1), "episodes_per_s": round(episodes / wall, 1),
        "events_per_s": round(events / wall, 1), "llm_calls_per_s": round(llm_calls / wall, 1),
        "engine_kb_per_episode": round(max(0, hwm - rss0) / c, 1),
        "workers_kb_per_episode": round(max(0, whwm - wrss0) / c, 1),
    }
    if latency.enabled and timed.ends:
        mean_latency = latency_sum / llm_calls
        end = saturated_until[0] if saturated_until else t1
        done = sum(1 for t in timed.ends if t <= end)
        achieved = done / (end - t0)
        ideal = c / mean_latency
        out.update({"mean_latency_s": round(mean_latency, 4), "window_s": round(end - t0, 3),
                    "llm_calls_per_s_window": round(achieved, 1), "ideal_llm_calls_per_s": round(ideal, 1),
                    "efficiency": round(achieved / ideal, 4)})
    return out


def in_subprocess(setting: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(setting)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"setting {setting} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer episodes per setting, no 1000-in-flight latency run")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object on the last line")
    parser.add_argument("--latency", type=float, default=0.2, help="median seconds per LLM call in (b)")
    parser.add_argument("--sigma", type=float, default=0.05, help="log-normal spread of the latency in (b)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_setting(json.loads(args.child))))
        return 0

    def say(text: str) -> None:
        print(text, file=sys.stderr if args.json else sys.stdout, flush=True)

    domains, tpd = 2, 5
    scale = 0.3 if args.quick else 1.0
    with tempfile.TemporaryDirectory(prefix="scaleenv-bench-template-") as tmp:
        template = Path(tmp) / "template"
        t = time.perf_counter()
        tasks = build_template(template, domains, tpd)
        say(f"template: {domains} domains, {tasks} kept tasks in {time.perf_counter() - t:.1f}s")
        base = {"template": str(template), "tasks": tasks, "domains": domains, "tasks_per_domain": tpd}
        zero: list[dict[str, Any]] = []
        say("(a) zero latency (a step = one ToolExecuted; memory = peak RSS delta / concurrency)")
        say(f"{'conc':>5} {'sync':>5} {'episodes':>8} {'steps/s':>9} {'episodes/s':>10} {'events/s':>9} "
            f"{'llm/s':>8} {'engine kB/ep':>12} {'workers kB/ep':>13}")
        plan = [(1, 150), (10, 600), (100, 1500), (1000, 3000)]
        for sync in (True, False):
            for c, n in plan:
                r = in_subprocess({**base, "concurrency": c, "episodes": max(c, int(n * scale)), "sync": sync})
                zero.append(r)
                say(f"{c:>5} {str(sync):>5} {r['episodes']:>8} {r['steps_per_s']:>9} {r['episodes_per_s']:>10} "
                    f"{r['events_per_s']:>9} {r['llm_calls_per_s']:>8} {r['engine_kb_per_episode']:>12} "
                    f"{r['workers_kb_per_episode']:>13}")
        lat: list[dict[str, Any]] = []
        say(f"(b) latency on: median {args.latency}s, sigma {args.sigma}; ideal = concurrency / mean latency LLM calls/s")
        say(f"{'conc':>5} {'episodes':>8} {'mean lat':>8} {'window s':>8} {'llm/s':>8} {'ideal':>8} {'efficiency':>10} "
            f"{'engine kB/ep':>12}")
        for c in ((10, 100) if args.quick else (10, 100, 1000)):
            r = in_subprocess({**base, "concurrency": c, "episodes": 3 * c, "sync": True,
                               "latency_base_s": args.latency, "latency_sigma": args.sigma})
            lat.append(r)
            say(f"{c:>5} {r['episodes']:>8} {r['mean_latency_s']:>8} {r['window_s']:>8} {r['llm_calls_per_s_window']:>8} "
                f"{r['ideal_llm_calls_per_s']:>8} {r['efficiency']:>10.1%} {r['engine_kb_per_episode']:>12}")
    top = max(c for c, _ in plan)
    at = {r["concurrency"]: r for r in zero if r["sync"]}
    eff = {r["concurrency"]: r["efficiency"] for r in lat}
    result = {
        "steps_per_s_zero_latency": at[top]["steps_per_s"],
        "steps_per_s_zero_latency_nosync": next(r["steps_per_s"] for r in zero if not r["sync"] and r["concurrency"] == top),
        "efficiency_at_1000": eff.get(1000),
        "efficiency_at_100": eff.get(100),
        "targets": {"steps_per_s_zero_latency": 5000, "efficiency_at_1000": 0.9},
        "baseline": {"steps_per_s_at_concurrency_1": at[1]["steps_per_s"],
                     "note": "concurrency 1 is the serial baseline of the same engine"},
        "zero_latency": zero,
        "latency": lat,
        "quick": args.quick,
    }
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

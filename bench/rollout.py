"""Bench rollouts on the sim: engine throughput, latency efficiency, memory per episode.

One template log is synthesized once (stage 1 + stage 2, ``sync=False``); every setting
then runs in its own subprocess on a fresh copy of it (settings neither share warm
caches nor contaminate each other's peak memory), with ``episodes_per_task`` large
enough that at least ``concurrency`` episodes run.

The sim's role simulators are real CPU work in the engine's process (the simulated
policy costs ~4 ms per call, far more than the engine's own work per call), which a
served model would spend on its GPU server instead. So a first *recording* run rolls
out every episode the bench needs with the live sim (its figures are reported as
"live sim"); the settings below then replay the sim's answers for the very same
requests (``RecordedBackend``: no model compute; every event, the port, the log, the
sandbox run as usual) to measure the engine alone.

(a) zero latency: a *step* is one tool call executed and logged (a ``ToolExecuted``
    event); steps/s, episodes/s, events/s and LLM calls/s at concurrency 1, 10, 100,
    1000, with durable logging (``sync=True``) and with ``sync=False``.
(b) latency on: each LLM call sleeps the sim's log-normal latency (``--latency``
    median, ``--sigma`` spread, no per-token part). The ideal is ``concurrency / mean
    latency`` LLM calls/s; ``efficiency = achieved / ideal``, over the saturated window
    (while episodes still queue behind the concurrency limit: the last wave's tail does
    not count against the engine).
(c) memory: peak RSS (VmHWM) minus RSS before the rollouts, divided by the concurrency,
    for the engine process and for the sandbox workers (where the sessions live). The
    peak is reset just before the rollouts (``/proc/PID/clear_refs``), so loading the
    recorded answers does not count.
(Sandbox workers compile each tool once per worker; before that, RestrictedPython's
compile on every episode's session took ~85% of the workers' time.)

Two task shapes: ``small`` (one goal on a handful of records, as tasks were before the
paper-scale stage 2; its figures keep the top-level keys) and ``paper`` (the paper preset:
4-8 goals, |H| >= 20, background records; the ``paper`` object), each also reporting CPU
(engine + sandbox workers) per tool step, LLM calls and events per tool step, and for
``paper`` a realistic latency (log-normal, median 1 s, sigma 0.75: a tail to about 10 s).

    .venv/bin/python bench/rollout.py [--quick] [--json] [--shapes small,paper]
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

from scaleenv._agents.llm.port import Completion, LlmRequest
from scaleenv._agents.llm.recorded import RecordedBackend, read_calls
from scaleenv._agents.sim import LatencyModel, NoiseModel, SimBackend
from scaleenv._config import RunConfig, make, with_preset
from scaleenv._runner import EngineOptions, open_run, project, rollouts, stage1, stage2
from scaleenv._store.events.episodes import RewardGiven, ToolExecuted
from scaleenv._store.events.llm import LlmCalled
from scaleenv._store.log import Log

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


def _reset_peak(pid: int | str) -> bool:
    """Reset the process's peak RSS (VmHWM) to its current RSS (Linux: clear_refs 5)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


SHAPES: dict[str, dict[str, Any]] = {
    # One goal on a handful of records, as the engine made tasks before the paper-scale stage 2
    # (kept so figures stay comparable with earlier runs of this bench).
    "small": {"min_goals": 1, "max_goals": 1, "min_env_tools": 1, "background_rows": 0, "distractors": 3,
              "max_turns": 12, "max_tool_calls": 16},
    # The paper preset's domains (25-70 tools) and the default stage 2: 4-8 goals, |H| >= 20,
    # background records in every table, long multi-request episodes.
    "paper": {"preset": "paper"},
}


def shape_config(shape: str, domains: int, tasks_per_domain: int, episodes_per_task: int = 0) -> RunConfig:
    return make(with_preset({"seed": SEED, "domains": domains, "tasks_per_domain": tasks_per_domain,
                             "episodes_per_task": episodes_per_task, **SHAPES[shape]}))


def build_template(path: Path, shape: str, domains: int, tasks_per_domain: int) -> int:
    """Synthesize domains and tasks once; return the number of kept tasks."""
    config = shape_config(shape, domains, tasks_per_domain)

    async def main() -> int:
        async with open_run(str(path), config, EngineOptions(progress=False, sync=False)) as ctx:
            await stage1(ctx)
            await stage2(ctx)
            view = project(ctx.log)
        return sum(t.status == "kept" for t in view.tasks.values())

    return trio.run(main)


def _cpu_s(pid: int | str) -> float:
    """User + system CPU seconds of a process so far (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


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
    """The sim's recorded answers, served after the sim's latency model slept (no model compute here).

    The sleep is drawn from the same log-normal model, seeded by the request seed; the
    answers are the ones the sim gave for the same requests in the recording run.
    """

    def __init__(self, calls: list[LlmCalled], latency: LatencyModel) -> None:
        super().__init__(calls, source="recording")
        self.latency = latency
        self.ends: list[float] = []

    async def complete(self, request: LlmRequest, json_schema: dict[str, Any], schema_name: str) -> Completion:
        if not self.latency.enabled:  # zero latency: no draw (seeding an RNG per call is not engine work)
            out = await super().complete(request, json_schema, schema_name)
            self.ends.append(time.perf_counter())
            return out
        out = self.answer(request, json_schema, schema_name)  # the sleep below is the call's one wait
        delay = self.latency.sample(random.Random(request.seed ^ 0x5EED), out.completion_tokens)
        if delay > 0:
            await trio.sleep(delay)
        else:
            await trio.lowlevel.checkpoint()
        self.ends.append(time.perf_counter())
        return msgspec.structs.replace(out, latency_s=delay)




def run_setting(setting: dict[str, Any]) -> dict[str, Any]:
    """One setting, in this (child) process: copy the template, run rollouts, measure."""
    work = Path(tempfile.mkdtemp(prefix="scaleenv-bench-rollout-"))
    try:
        path = work / "log"
        shutil.copytree(setting["template"], path)
        c = setting["concurrency"]
        per_task = max(1, math.ceil(setting["episodes"] / setting["tasks"]))
        config = shape_config(setting["shape"], setting["domains"], setting["tasks_per_domain"], per_task)
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
            # Engine only: the sim's answers to these very requests, recorded by an earlier run.
            timed = TimedReplay(read_calls(setting["recording"]), latency)
        else:
            timed = TimedSim(noise=NoiseModel(), latency=latency)
        ctx.llm.backend = timed
        first_seq = ctx.log.last_seq() + 1
        workers = ctx.sandbox.worker_pids()
        # The peak must be the rollouts' own, not that of loading the recorded answers.
        peak_reset = all([_reset_peak("self"), *(_reset_peak(p) for p in workers)])
        rss0 = _status_kb("self", "VmRSS")
        wrss0 = sum(_status_kb(p, "VmRSS") for p in workers)
        cpu0, wcpu0 = _cpu_s("self"), sum(_cpu_s(p) for p in workers)
        window: list[float] = []

        async def watch() -> None:
            # The saturated window: from when `c` episodes are first in flight until the last
            # episode of the run has been admitted (the last wave begins). Counted from the
            # progress counters (episodes started = running + done), not from the limiter's
            # momentary state, which flickers while a freed slot is handed on.
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

        t0 = time.perf_counter()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch)
            await rollouts(ctx)
            nursery.cancel_scope.cancel()
        t1 = time.perf_counter()
        cpu, wcpu = _cpu_s("self") - cpu0, sum(_cpu_s(p) for p in workers) - wcpu0
        hwm = _status_kb("self", "VmHWM")
        whwm = sum(_status_kb(p, "VmHWM") for p in workers)
    steps = episodes = llm_calls = events = 0
    latency_sum = 0.0
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
        "peak_reset": peak_reset,
        "cpu_us_per_tool_step": round((cpu + wcpu) / max(1, steps) * 1e6, 1),
        "engine_cpu_us_per_tool_step": round(cpu / max(1, steps) * 1e6, 1),
        "llm_calls_per_tool_step": round(llm_calls / max(1, steps), 3),
        "events_per_tool_step": round(events / max(1, steps), 3),
        "tool_steps_per_episode": round(steps / max(1, episodes), 2),
    }
    if latency.enabled and timed.ends:
        mean_latency = latency_sum / llm_calls
        saturated = len(window) == 2 and window[1] - window[0] > 1.0
        # Without a saturated window (too few episodes queued) the whole run counts, ramp-up
        # and the draining last wave included: a lower bound, flagged in the output.
        start, end = (window[0], window[1]) if saturated else (t0, t1)
        done = sum(1 for t in timed.ends if start < t <= end)
        achieved = done / (end - start)
        ideal = c / mean_latency
        out.update({"mean_latency_s": round(mean_latency, 4), "window_s": round(end - start, 3),
                    "llm_calls_per_s_window": round(achieved, 1), "ideal_llm_calls_per_s": round(ideal, 1),
                    "efficiency": round(achieved / ideal, 4), "saturated_window": saturated})
    return out


def in_subprocess(setting: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(setting)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"setting {setting} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _plan(shape: str, quick: bool) -> dict[str, Any]:
    # With latency on, three times as many episodes as in flight: the saturated window
    # (while episodes still queue for the limit) must be long enough to measure.
    if shape == "paper":  # long episodes: fewer of them go a long way
        if quick:
            return {"domains": 2, "tasks_per_domain": 2, "zero": [(1, 4), (100, 200), (1000, 1000)],
                    "latency": [(10, 20), (100, 200), (1000, 2000)], "realistic": [(1000, 2000)]}
        return {"domains": 2, "tasks_per_domain": 4, "zero": [(1, 8), (10, 50), (100, 300), (1000, 2000)],
                "latency": [(10, 30), (100, 300), (1000, 3000)], "realistic": [(10, 30), (100, 300), (1000, 3000)]}
    if quick:
        return {"domains": 2, "tasks_per_domain": 3, "zero": [(1, 40), (10, 150), (100, 400), (1000, 1000)],
                "latency": [(10, 30), (100, 300), (1000, 3000)], "realistic": []}
    return {"domains": 2, "tasks_per_domain": 5, "zero": [(1, 60), (10, 200), (100, 1000), (1000, 2000)],
            "latency": [(10, 40), (100, 400), (1000, 4000)], "realistic": []}


REALISTIC = {"latency_base_s": 1.0, "latency_sigma": 0.75}
"""A served model's latency: log-normal, median 1 s, sigma 0.75 (p99.9 about 10 s)."""

HEADER = (f"{'conc':>5} {'sync':>5} {'episodes':>8} {'steps/s':>8} {'episodes/s':>10} {'events/s':>9} "
          f"{'llm/s':>7} {'cpu us/step':>11} {'llm/step':>8} {'engine kB/ep':>12} {'workers kB/ep':>13}")


def _row(r: dict[str, Any]) -> str:
    return (f"{r['concurrency']:>5} {str(r['sync']):>5} {r['episodes']:>8} {r['steps_per_s']:>8} "
            f"{r['episodes_per_s']:>10} {r['events_per_s']:>9} {r['llm_calls_per_s']:>7} {r['cpu_us_per_tool_step']:>11} "
            f"{r['llm_calls_per_tool_step']:>8} {r['engine_kb_per_episode']:>12} {r['workers_kb_per_episode']:>13}")


def _lat_row(r: dict[str, Any]) -> str:
    return (f"{r['concurrency']:>5} {r['episodes']:>8} {r['mean_latency_s']:>8} {r['window_s']:>8} "
            f"{r['llm_calls_per_s_window']:>8} {r['ideal_llm_calls_per_s']:>8} {r['efficiency']:>10.1%}"
            + ("" if r["saturated_window"] else "  (no saturated window: whole run, a lower bound)"))


def measure_shape(shape: str, quick: bool, latency: float, sigma: float, say: Any, *, live_latency: bool) -> dict[str, Any]:
    """Every setting of one task shape: the template, the live-sim recording, zero latency,
    latency on (``latency``/``sigma``) and the realistic latency."""
    plan = _plan(shape, quick)
    domains, tpd = plan["domains"], plan["tasks_per_domain"]
    with tempfile.TemporaryDirectory(prefix="scaleenv-bench-rollout-") as tmp:
        template, recording = Path(tmp) / "template", Path(tmp) / "recording"
        t = time.perf_counter()
        tasks = build_template(template, shape, domains, tpd)
        say(f"[{shape}] template: {domains} domains, {tasks} kept tasks, in {time.perf_counter() - t:.1f}s")
        base = {"template": str(template), "tasks": tasks, "domains": domains, "tasks_per_domain": tpd, "shape": shape}
        most = max(n for _, n in plan["zero"] + plan["latency"] + plan["realistic"])
        live = in_subprocess({**base, "concurrency": 100, "episodes": most, "sync": True, "keep_as": str(recording)})
        say(f"[{shape}] live sim (engine + the sim's role simulators in this process), recording the answers:")
        say(HEADER)
        say(_row(live))
        replay = {**base, "recording": str(recording)}

        say(f"[{shape}] (a) engine only, zero latency (a step = one ToolExecuted; memory = peak RSS delta / concurrency)")
        say(HEADER)
        zero: list[dict[str, Any]] = []
        for sync in ((True,) if quick else (True, False)):
            for c, n in plan["zero"]:
                r = in_subprocess({**replay, "concurrency": c, "episodes": n, "sync": sync})
                zero.append(r)
                say(_row(r))

        say(f"[{shape}] (b) engine only, latency on: median {latency}s, sigma {sigma}; "
            "ideal = concurrency / mean latency LLM calls/s")
        say(f"{'conc':>5} {'episodes':>8} {'mean lat':>8} {'window s':>8} {'llm/s':>8} {'ideal':>8} {'efficiency':>10}")
        lat: list[dict[str, Any]] = []
        for c, n in plan["latency"]:
            r = in_subprocess({**replay, "concurrency": c, "episodes": n, "sync": True,
                               "latency_base_s": latency, "latency_sigma": sigma})
            lat.append(r)
            say(_lat_row(r))
        real: list[dict[str, Any]] = []
        if plan["realistic"]:
            say(f"[{shape}] (c) engine only, realistic latency: log-normal median {REALISTIC['latency_base_s']}s, "
                f"sigma {REALISTIC['latency_sigma']}")
            for c, n in plan["realistic"]:
                r = in_subprocess({**replay, "concurrency": c, "episodes": n, "sync": True, **REALISTIC})
                real.append(r)
                say(_lat_row(r))

        live_lat = None
        if live_latency:
            live_lat = in_subprocess({**base, "concurrency": 100, "episodes": 300, "sync": True,
                                      "latency_base_s": latency, "latency_sigma": sigma})
            r = live_lat
            say(f"  live sim, 100 in flight: efficiency {r['efficiency']:.1%} ({r['llm_calls_per_s_window']} of "
                f"{r['ideal_llm_calls_per_s']} LLM calls/s; the sim's own compute runs in the engine's process)")
    return {"plan": plan, "tasks": tasks, "live": live, "live_lat": live_lat, "zero": zero, "lat": lat, "real": real}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="fewer tasks and episodes, sync=True only, no live-sim or what-if latency runs")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object on the last line")
    parser.add_argument("--latency", type=float, default=0.2, help="median seconds per LLM call in (b)")
    parser.add_argument("--sigma", type=float, default=0.05, help="log-normal spread of the latency in (b)")
    parser.add_argument("--shapes", default="small,paper", help="task shapes to measure (small, paper)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_setting(json.loads(args.child))))
        return 0

    def say(text: str) -> None:
        print(text, file=sys.stderr if args.json else sys.stdout, flush=True)

    started = time.perf_counter()
    shapes = [x for x in args.shapes.split(",") if x]
    unknown = [x for x in shapes if x not in SHAPES]
    if unknown:
        parser.error(f"--shapes: unknown {unknown}; the shapes are {sorted(SHAPES)}")
    got = {shape: measure_shape(shape, args.quick, args.latency, args.sigma, say, live_latency=not args.quick and shape == "small")
           for shape in shapes}
    result: dict[str, Any] = {"quick": args.quick}
    if "small" in got:
        g = got["small"]
        top, _ = g["plan"]["zero"][-1]
        at = {r["concurrency"]: r for r in g["zero"] if r["sync"]}
        nosync = {r["concurrency"]: r for r in g["zero"] if not r["sync"]}
        eff = {r["concurrency"]: r["efficiency"] for r in g["lat"]}
        result.update({
            "steps_per_s_zero_latency": at[top]["steps_per_s"],
            "steps_per_s_zero_latency_nosync": nosync[top]["steps_per_s"] if nosync else None,
            "efficiency_at_1000": eff.get(1000),
            "efficiency_at_100": eff.get(100),
            "efficiency_at_10": eff.get(10),
            "engine_kb_per_inflight_episode_at_1000": at[top]["engine_kb_per_episode"],
            "workers_kb_per_inflight_episode_at_1000": at[top]["workers_kb_per_episode"],
            "targets": {"steps_per_s_zero_latency": 5000, "efficiency_at_1000": 0.9},
            "baseline": {"steps_per_s_concurrency_1": at[1]["steps_per_s"],
                         "live_sim_steps_per_s_concurrency_100": g["live"]["steps_per_s"],
                         "note": "concurrency 1 is the serial baseline of the same engine; live sim includes the sim's own compute"},
            "live_sim": g["live"],
            "live_sim_latency_at_100": g["live_lat"],
            "zero_latency": g["zero"],
            "latency": g["lat"],
        })
    if "paper" in got:
        g = got["paper"]
        top, _ = g["plan"]["zero"][-1]
        at = {r["concurrency"]: r for r in g["zero"] if r["sync"]}
        eff = {r["concurrency"]: r["efficiency"] for r in g["lat"]}
        real = {r["concurrency"]: r["efficiency"] for r in g["real"]}
        result["paper"] = {
            "steps_per_s_zero_latency": at[top]["steps_per_s"],
            "cpu_us_per_tool_step": at[top]["cpu_us_per_tool_step"],
            "engine_cpu_us_per_tool_step": at[top]["engine_cpu_us_per_tool_step"],
            "llm_calls_per_tool_step": at[top]["llm_calls_per_tool_step"],
            "events_per_tool_step": at[top]["events_per_tool_step"],
            "tool_steps_per_episode": at[top]["tool_steps_per_episode"],
            "efficiency_at_10": eff.get(10), "efficiency_at_100": eff.get(100), "efficiency_at_1000": eff.get(1000),
            "efficiency_at_10_realistic": real.get(10), "efficiency_at_100_realistic": real.get(100),
            "efficiency_at_1000_realistic": real.get(1000),
            "targets": {"efficiency_at_1000": 0.9, "efficiency_at_1000_realistic": 0.97},
            "baseline": {"steps_per_s_concurrency_1": at[1]["steps_per_s"],
                         "small_steps_per_s_zero_latency": result.get("steps_per_s_zero_latency")},
            "tasks": g["tasks"], "live_sim": g["live"], "zero_latency": g["zero"], "latency": g["lat"], "realistic": g["real"],
        }
    result["seconds"] = round(time.perf_counter() - started, 1)
    say(f"total {result['seconds']}s")
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

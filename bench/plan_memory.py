"""The distributed driver's memory while it plans a stage, against the size of the run already done.

    .venv/bin/python bench/plan_memory.py [--domains 2] [--tasks-per-domain 4] [--small 4] [--large 16] [--json]

To plan (:func:`scaleenv._distributed.plan`) the driver projects the whole main log
(``project``: the newest checkpoint plus the records after it) and keeps the view while
it lists the unfinished items. One stage-1/2 log (the sim LLM, seed 1) is built; two
copies get ``--small`` and ``--large`` episodes per task rolled out (one process, to the
end); then, each in a fresh process, the rollout stage is planned with one more episode
per task (so every task has one item left): ``plan_rss_growth_kb`` is the peak RSS
(VmHWM, reset first) minus the RSS before ``plan`` (it counts the pages of the log LMDB
maps in, which grow with the records read); ``plan_anon_growth_kb`` the peak of the
process's own memory (RssAnon, sampled) minus the same before; ``growth_ratio`` and
``anon_growth_ratio`` are large/small. Baseline in the same run: ``*_full_view``, the
same logs' projection with every episode's summary (the view planning kept before the
lean one), ``full_view_anon_growth_ratio`` its large/small;
beside ``episodes_ratio`` and ``events_ratio`` (what a flat bound would make 1.0, and
what memory proportional to the finished run would track). ``--json`` prints one JSON
object on its last line. The machine is shared: the figures are one run's.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import msgspec
import trio

from scaleenv._config import RunConfig
from scaleenv._distributed import plan
from scaleenv._replay.checkpoint import project
from scaleenv._runner import EngineOptions, open_run, rollouts, stage1, stage2
from scaleenv._store.log import Log

OPTIONS = EngineOptions(progress=False, sync=False)


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def measure(path: str, config_json: str, how: str = "plan") -> dict[str, Any]:
    """In this (fresh) process: plan the rollout stage of ``path`` (``how="plan"``: the
    driver's :func:`plan`, on its lean view) or only fold the view planning used before
    the lean one (``how="full"``: the projection with every episode's summary, kept
    while measured); RSS growth (VmHWM, which counts the log's pages LMDB maps in), the
    peak of the process's own memory (RssAnon, sampled every 2 ms) and time."""
    config = msgspec.json.decode(config_json, type=RunConfig)
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _status_kb("RssAnon"))
            time.sleep(0.002)

    with Log.open(path, readonly=True) as main:
        events = main.count()
        rss0, anon0 = _status_kb("VmRSS"), _status_kb("RssAnon")
        peak[0] = anon0
        _reset_peak()
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        t0 = time.perf_counter()
        if how == "plan":
            works, finished = plan(main, path, config, OPTIONS, 2, kind="episodes")
            items = sum(len(w.items) for w in works)
        else:
            view = project(main)
            finished = len(view.episodes)  # (no episode decoded)
            items = 0
        plan_s = time.perf_counter() - t0
        hwm = _status_kb("VmHWM")
        done.set()
        sampler.join()
        peak[0] = max(peak[0], _status_kb("RssAnon"))
    return {"events": events, "items": items, "finished": finished,
            "plan_s": round(plan_s, 3), "plan_rss_growth_kb": hwm - rss0, "plan_anon_growth_kb": peak[0] - anon0}


def run_stages(path: Path, config: RunConfig, *stages: Any) -> None:
    async def main() -> None:
        async with open_run(str(path), config, OPTIONS) as ctx:
            for stage in stages:
                await stage(ctx)

    trio.run(main)


def bench(domains: int, tasks_per_domain: int, sizes: tuple[int, int]) -> dict[str, Any]:
    base = RunConfig(seed=1, domains=domains, tasks_per_domain=tasks_per_domain, episodes_per_task=0)
    out: dict[str, Any] = {"domains": domains, "tasks_per_domain": tasks_per_domain}
    with tempfile.TemporaryDirectory(prefix="scaleenv-bench-plan-") as tmp:
        root = Path(tmp)
        run_stages(root / "tasks", base, stage1, stage2)
        for name, e in zip(("small", "large"), sizes):
            path = shutil.copytree(root / "tasks", root / name)
            run_stages(path, msgspec.structs.replace(base, episodes_per_task=e), rollouts)
            planned = msgspec.structs.replace(base, episodes_per_task=e + 1)
            for how, key in (("plan", name), ("full", f"{name}_full_view")):
                p = subprocess.run([sys.executable, __file__, "--measure", str(path),
                                    msgspec.json.encode(planned).decode(), how], capture_output=True, text=True, check=True)
                out[key] = {"episodes_per_task": e, **json.loads(p.stdout.strip().splitlines()[-1])}
    s, large = out["small"], out["large"]
    out["episodes_ratio"] = round(large["finished"] / max(1, s["finished"]), 2)
    out["events_ratio"] = round(large["events"] / max(1, s["events"]), 2)
    out["growth_ratio"] = round(large["plan_rss_growth_kb"] / max(1, s["plan_rss_growth_kb"]), 2)
    out["anon_growth_ratio"] = round(large["plan_anon_growth_kb"] / max(1, s["plan_anon_growth_kb"]), 2)
    fs, fl = out["small_full_view"], out["large_full_view"]
    out["full_view_anon_growth_ratio"] = round(fl["plan_anon_growth_kb"] / max(1, fs["plan_anon_growth_kb"]), 2)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--domains", type=int, default=2)
    ap.add_argument("--tasks-per-domain", type=int, default=4)
    ap.add_argument("--small", type=int, default=4, help="episodes per task in the small run")
    ap.add_argument("--large", type=int, default=16, help="episodes per task in the large run")
    ap.add_argument("--measure", nargs=3, metavar=("LOG", "CONFIG_JSON", "HOW"), help=argparse.SUPPRESS)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.measure:
        print(json.dumps(measure(*a.measure)))
        return 0
    if not 1 <= a.small < a.large:
        print("plan_memory.py: need 1 <= --small < --large", file=sys.stderr)
        return 2
    out = bench(a.domains, a.tasks_per_domain, (a.small, a.large))
    if a.json:
        print(json.dumps(out, sort_keys=True))
    else:
        for k, v in out.items():
            print(f"{k:24s} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

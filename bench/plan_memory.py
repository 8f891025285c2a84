"""The distributed driver's memory while it plans a stage, against the size of the run already done.

    .venv/bin/python bench/plan_memory.py [--domains 2] [--tasks-per-domain 4] [--small 4] [--large 16] [--json]

To plan (:func:`scaleenv.distributed.plan`) the driver projects the whole main log
(``project``: the newest checkpoint plus the records after it) and keeps the view while
it lists the unfinished items. One stage-1/2 log (the sim LLM, seed 1) is built; two
copies get ``--small`` and ``--large`` episodes per task rolled out (one process, to the
end); then, each in a fresh process, the rollout stage is planned with one more episode
per task (so every task has one item left): ``plan_rss_growth_kb`` is the peak RSS
(VmHWM, reset first) minus the RSS before ``plan``; ``growth_ratio`` is large/small,
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
import time
from pathlib import Path
from typing import Any

import msgspec
import trio

from scaleenv.config import RunConfig
from scaleenv.distributed import plan
from scaleenv.runner import EngineOptions, open_run, rollouts, stage1, stage2
from scaleenv.store.log import Log

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


def measure(path: str, config_json: str) -> dict[str, Any]:
    """In this (fresh) process: plan the rollout stage of ``path``; RSS growth and time."""
    config = msgspec.json.decode(config_json, type=RunConfig)
    with Log.open(path, readonly=True) as main:
        events = main.count()
        rss0 = _status_kb("VmRSS")
        _reset_peak()
        t0 = time.perf_counter()
        works, finished = plan(main, path, config, OPTIONS, 2, kind="episodes")
        plan_s = time.perf_counter() - t0
        hwm = _status_kb("VmHWM")
    return {"events": events, "items": sum(len(w.items) for w in works), "finished": finished,
            "plan_s": round(plan_s, 3), "plan_rss_growth_kb": hwm - rss0}


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
            p = subprocess.run([sys.executable, __file__, "--measure", str(path),
                                msgspec.json.encode(planned).decode()], capture_output=True, text=True, check=True)
            out[name] = {"episodes_per_task": e, **json.loads(p.stdout.strip().splitlines()[-1])}
    s, large = out["small"], out["large"]
    out["episodes_ratio"] = round(large["finished"] / max(1, s["finished"]), 2)
    out["events_ratio"] = round(large["events"] / max(1, s["events"]), 2)
    out["growth_ratio"] = round(large["plan_rss_growth_kb"] / max(1, s["plan_rss_growth_kb"]), 2)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--domains", type=int, default=2)
    ap.add_argument("--tasks-per-domain", type=int, default=4)
    ap.add_argument("--small", type=int, default=4, help="episodes per task in the small run")
    ap.add_argument("--large", type=int, default=16, help="episodes per task in the large run")
    ap.add_argument("--measure", nargs=2, metavar=("LOG", "CONFIG_JSON"), help=argparse.SUPPRESS)
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

"""How fast `scaleenv ui` answers on a large run: every page's JSON and every page in Chromium.

    .venv/bin/python bench/ui.py [--tasks 2560] [--episodes 100000] [--keep DIR] [--no-browser] [--json]

1. A real small run (sim LLM, seed 1, 8 domains x 4 tasks x 2 episodes) gives real
   domains, tools, tasks and episodes. A large log is built from it through the ordinary
   writer (sync off): the domain and tool streams as they are, ``--tasks`` tasks cloned
   from the kept ones of each domain, and ``--episodes`` episodes cloned from the episodes
   of each clone's source task (every event of theirs: messages, tool calls, LLM calls,
   endings, rewards), under new stream ids.
2. Baselines, in this process: decoding every record (``list(log.read())``, the least any
   whole-log page could cost) and the whole-log fold that `scaleenv show` runs
   (``projection.fold(log.read())``).
3. The UI's own cost: its index built from cold (``RunIndex.catch_up``), the start-up
   cost of `scaleenv ui`, then the median time of each page's ``/api`` route over HTTP
   (5 requests after the index caught up), and each page loaded in headless Chromium by
   its URL until it has drawn itself (``performance.now()`` at ``data-ready``).

4. What starting costs, on the large log and on the small seed run's (both checkpointed:
   the large one once after it is built), CPU seconds in this process with the log freshly
   opened (``start``): the index started from the run's projection checkpoint and the
   records after it (``RunIndex.start`` + ``catch_up``: what the browser view needs
   before its lists, task and episode pages answer), then one task page and one episode
   page (``api.task_json`` / ``api.episode_json``), the census of the checkpointed prefix
   (each record's envelope, for the commit-time chart; in the background, pages answer
   meanwhile) and, as the baseline, the index folded from the first record
   (``cold_index_cpu_s``: what a task page's episode list waited for before).
   ``--start-only`` measures only this (the large log must exist: ``--keep``).

Ratios: each page's time against the whole-log fold, measured in the same run.
``--json`` prints one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import trio

from scaleenv._cli.logs import configure_logging
from scaleenv._replay.logcopy import append_all
from scaleenv._replay.projection import fold
from scaleenv._config import RunConfig
from scaleenv._runner import EngineOptions, open_run, rollouts, stage1, stage2
from scaleenv._store.events.base import Ref
from scaleenv._store.log import Log
from scaleenv._store.record import Record
from scaleenv._store.writer import Pending
from scaleenv._replay.checkpoint import projected
from scaleenv._ui import api
from scaleenv._ui.index import RunIndex

SEED_RUN = RunConfig(seed=1, domains=8, tasks_per_domain=4, episodes_per_task=2)
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def seed_run(path: Path) -> None:
    configure_logging("console", "warning")

    async def main() -> None:
        async with open_run(str(path), SEED_RUN, EngineOptions(progress=False, sync=False)) as ctx:
            for stage in (stage1, stage2, rollouts):
                await stage(ctx)

    trio.run(main)


def _renamed(r: Record, old: str, new: str, **event_changes: Any) -> Pending:
    cause = r.cause
    if cause is not None and cause.stream == old:
        cause = Ref(new, cause.n)
    event = r.event
    changes = {k: v for k, v in event_changes.items() if hasattr(event, k)}
    if changes:
        event = msgspec.structs.replace(event, **changes)
    return Pending(new, r.n, cause, r.actor, event)


def large_items(src: Log, tasks: int, episodes: int) -> Iterator[Pending]:
    """The large log's records (see the module doc), in stream order per stream."""
    for sid, _ in itertools.chain(src.streams("domain/"), src.streams("tool/")):
        for r in src.read_stream(sid):
            yield Pending(r.stream, r.n, r.cause, r.actor, r.event)
    slots = sorted({s.split("/")[1] for s, _ in src.streams("domain/")})
    kept: dict[str, list[str]] = {}
    for sid, _ in src.streams("task/"):
        recs = list(src.read_stream(sid))
        if any(r.type == "task.kept" for r in recs):
            kept.setdefault(sid.split("/")[1], []).append(sid.split("/", 1)[1])
    source_episodes: dict[str, list[list[Record]]] = {}
    for sid, _ in src.streams("episode/"):
        task_id = sid.split("/", 1)[1].rsplit("/", 1)[0]
        source_episodes.setdefault(task_id, []).append(list(src.read_stream(sid)))
    slots = [s for s in slots if kept.get(s)]
    clones: list[tuple[str, str]] = []  # (new task id, source task id)
    per_slot = -(-tasks // len(slots))
    for i in range(tasks):
        slot = slots[i % len(slots)]
        k = i // len(slots)
        assert k < per_slot
        clones.append((f"{slot}/t{k:03d}", kept[slot][k % len(kept[slot])]))
    for new_id, old_id in clones:
        old_sid, new_sid = f"task/{old_id}", f"task/{new_id}"
        for r in src.read_stream(old_sid):
            yield _renamed(r, old_sid, new_sid, task_id=new_id)
    for e in range(episodes):
        new_id, old_id = clones[e % len(clones)]
        pool = source_episodes[old_id]
        records = pool[(e // len(clones)) % len(pool)]
        old_sid = records[0].stream
        new_sid = f"episode/{new_id}/g{e // len(clones)}"
        for r in records:
            yield _renamed(r, old_sid, new_sid, task_id=new_id)


def seed_path(path: Path) -> Path:
    return path.with_name(path.name + ".seed")


def checkpointed(path: Path) -> None:
    """Checkpoint the log's projection at its end (a run does so as it goes)."""
    with Log.open(path, sync=False) as lg:
        if lg.last_seq() not in lg.checkpoint_seqs():
            projected(lg)


def build(path: Path, tasks: int, episodes: int, work: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    seed = seed_path(path)
    seed_run(seed)
    t1 = time.perf_counter()
    with Log.open(seed, readonly=True) as src, Log.open(path, sync=False, map_size=4 << 30) as dest:
        for k, v in src.meta_items().items():
            if not k.startswith("scaleenv."):
                dest.meta_set(k, v)
        count = trio.run(append_all, dest, large_items(src, tasks, episodes))
        size = dest.size_on_disk()
    checkpointed(path)
    checkpointed(seed)
    return {"seed_run_s": round(t1 - t0, 1), "build_s": round(time.perf_counter() - t1, 1), "events": count,
            "bytes": size}


def timed(fn: Any) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=600) as r:
        return json.loads(r.read())


def api_times(base: str, routes: dict[str, str], repeats: int = 5) -> dict[str, dict[str, float]]:
    out = {}
    for name, route in routes.items():
        times = []
        size = 0
        for _ in range(repeats):
            t = time.perf_counter()
            with urllib.request.urlopen(base + route, timeout=600) as r:
                size = len(r.read())
            times.append(time.perf_counter() - t)
        out[name] = {"median_s": round(statistics.median(times), 4), "max_s": round(max(times), 4), "bytes": size}
    return out


def browser_times(base: str, pages: dict[str, str], repeats: int = 3) -> dict[str, dict[str, float]]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    profile = tempfile.mkdtemp(prefix="bench-ui-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1400,1000", f"--user-data-dir={profile}"]:
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    out = {}
    try:
        for name, path in pages.items():
            times = []
            for _ in range(repeats):
                driver.get("about:blank")
                driver.get(base + path)
                WebDriverWait(driver, 600).until(lambda d: d.execute_script("return document.body.dataset.ready") == "1")
                err = driver.execute_script("return document.body.dataset.error || null")
                if err:
                    raise RuntimeError(f"{path}: the page shows an error ({err})")
                times.append(driver.execute_script("return window.scaleenvUi.readyAtMs") / 1000)
            out[name] = {"median_s": round(statistics.median(times), 4), "max_s": round(max(times), 4)}
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    return out


def start_figures(path: Path) -> dict[str, Any]:
    """What starting the browser view and answering a task page cost on ``path`` (see the module doc, 4)."""
    cpu = time.process_time
    with Log.open(path, readonly=True) as log:
        c0, t0 = cpu(), time.perf_counter()
        index = RunIndex()
        assert index.start(log), f"{path} has no projection checkpoint"
        index.catch_up(log)
        start_cpu, start_s = cpu() - c0, time.perf_counter() - t0
        kept = sorted(t for t, row in index.tasks.items() if row.status == "kept" and index.episodes_by_task.get(t))
        task = kept[len(kept) // 2]
        c1 = cpu()
        api.task_json(log, index, task)
        task_cpu = cpu() - c1
        c2 = cpu()
        api.episode_json(log, index.episodes_by_task[task][0], {}, index)
        episode_cpu = cpu() - c2
        c3 = cpu()
        while index.census(log, 20_000):
            pass
        census_cpu = cpu() - c3
    with Log.open(path, readonly=True) as log:
        c4 = cpu()
        cold = RunIndex()
        cold.catch_up(log)
        cold_cpu = cpu() - c4
        events = log.last_seq()
    return {"events": events, "tasks": len(index.tasks), "episodes": len(index.episodes),
            "start_s": round(start_s, 3), "start_cpu_s": round(start_cpu, 3), "task_page_cpu_s": round(task_cpu, 4),
            "episode_page_cpu_s": round(episode_cpu, 4), "census_cpu_s": round(census_cpu, 3),
            "cold_index_cpu_s": round(cold_cpu, 3)}


def start_result(path: Path) -> dict[str, Any]:
    large, small = start_figures(path), start_figures(seed_path(path))
    ratios = {f"{k}_large_vs_small": round(large[k] / small[k], 1) if small[k] else None
              for k in ("start_cpu_s", "task_page_cpu_s", "cold_index_cpu_s")}
    ratios["start_vs_cold_index_large"] = round(large["start_cpu_s"] / large["cold_index_cpu_s"], 4)
    print(f"start (large, {large['events']:,} events): {large['start_cpu_s']:.3f} s CPU, task page "
          f"{large['task_page_cpu_s'] * 1000:.1f} ms CPU (cold index before: {large['cold_index_cpu_s']:.2f} s CPU); "
          f"small ({small['events']:,} events): {small['start_cpu_s']:.3f} s, {small['task_page_cpu_s'] * 1000:.1f} ms",
          file=sys.stderr)
    return {"large": large, "small": small, "ratios": ratios}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=2560)
    ap.add_argument("--episodes", type=int, default=100_000)
    ap.add_argument("--keep", type=Path, default=None, help="build the log here and keep it (reused if it exists)")
    ap.add_argument("--no-browser", action="store_true", help="time the JSON only")
    ap.add_argument("--start-only", action="store_true", help="only the start figures (module doc, 4) of --keep's log")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.start_only:
        if args.keep is None or not args.keep.exists():
            ap.error("--start-only measures the log --keep names: build it first (bench/ui.py --keep PATH)")
        checkpointed(args.keep)
        checkpointed(seed_path(args.keep))
        out = {"start": start_result(args.keep)}
        print(json.dumps(out) if args.json else json.dumps(out, indent=2))
        return 0
    work = Path(tempfile.mkdtemp(prefix="bench-ui-"))
    path = args.keep or work / "large.lmdb"
    result: dict[str, Any] = {"tasks": args.tasks, "episodes": args.episodes}
    try:
        if path.exists():
            result["build"] = {"reused": str(path)}
            checkpointed(path)
        else:
            result["build"] = build(path, args.tasks, args.episodes, work)
        print(f"log: {path}  {result['build']}", file=sys.stderr)
        with Log.open(path, readonly=True) as log:
            events = log.count()
            decode_s, _ = timed(lambda: sum(1 for _ in log.read()))
            index_s, index = timed(lambda: _index(log))
            fold_s, view = timed(lambda: fold(log.read()))
            assert len(view.episodes) == args.episodes and len(index.episodes) == args.episodes
            assert len([t for t in view.tasks.values() if t.status == "kept"]) == args.tasks
            del view
        result["start"] = start_result(path)
        result["log"] = {"events": events}
        result["baseline"] = {"decode_all_s": round(decode_s, 2), "whole_fold_s": round(fold_s, 2),
                              "whole_fold_events_per_s": round(events / fold_s)}
        result["index"] = {"cold_s": round(index_s, 2), "events_per_s": round(events / index_s)}
        print(f"{events:,} events: decode all {decode_s:.2f}s, whole-log fold {fold_s:.2f}s, UI index from cold {index_s:.2f}s",
              file=sys.stderr)

        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "scaleenv", "ui", "--log", str(path), "--port", "0", "--json"],
                                stdout=subprocess.PIPE, text=True)
        try:
            base = json.loads(proc.stdout.readline())["url"].rstrip("/")  # type: ignore[union-attr]
            listening = time.perf_counter() - t0
            head = get(base + "/api/head")
            while not head["caught_up"]:
                head = get(f"{base}/api/head?after={head['seq']}&wait=5")
            caught_up = time.perf_counter() - t0
            result["server"] = {"listening_s": round(listening, 2), "caught_up_s": round(caught_up, 2)}
            domain = get(base + "/api/domains/d00")
            tool = max(domain["tools"], key=lambda t: t["code_versions"])["name"]
            d03 = get(base + "/api/tasks?domain=d03&limit=1")["total"]
            task = get(base + f"/api/tasks?domain=d03&offset={min(200, d03 - 1)}&limit=1")["items"][0]["task_id"]
            episode = get(base + f"/api/episodes?task={task}&limit=1")["items"][-1]["episode_id"]
            steps = get(base + f"/api/episodes/{episode}?step=0")["steps"]
            routes = {
                "run": "/api/run", "domain": "/api/domains/d00", "tool audit": f"/api/tools/d00/{tool}",
                "task": f"/api/tasks/{task}", "episode": f"/api/episodes/{episode}?step={steps // 2}",
                "episode list (page 1000)": "/api/episodes?offset=50000&limit=50",
                "episode list (filtered)": "/api/episodes?domain=d05&ending=user_done/policy",
                "task list": "/api/tasks?domain=d03&offset=100",
            }
            result["api"] = api_times(base, routes)
            pages = {"run": "/", "domain": "/domains/d00", "tool audit": f"/tools/d00/{tool}", "task": f"/tasks/{task}",
                     "episode": f"/episodes/{episode}?step={steps // 2}", "episode list": f"/episodes?domain=d05&offset={min(5000, args.episodes // 20)}"}
            if not args.no_browser and os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER):
                result["browser"] = browser_times(base, pages)
        finally:
            proc.terminate()
            proc.wait(timeout=60)
        worst_api = max(v["median_s"] for v in result["api"].values())
        result["ratios"] = {"worst_api_vs_whole_fold": round(worst_api / fold_s, 4)}
        if "browser" in result:
            worst = max(v["median_s"] for v in result["browser"].values())
            result["ratios"]["worst_page_vs_whole_fold"] = round(worst / fold_s, 4)
            result["under_one_second"] = worst < 1.0
        for kind in ("api", "browser"):
            for name, v in result.get(kind, {}).items():
                print(f"{kind:8} {name:26} median {v['median_s'] * 1000:8.1f} ms  (max {v['max_s'] * 1000:.1f} ms)"
                      f"  = {v['median_s'] / fold_s:.4f}x the whole-log fold", file=sys.stderr)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(result))
    else:
        print(json.dumps(result, indent=2))
    return 0


def _index(log: Log) -> RunIndex:
    index = RunIndex()
    index.catch_up(log)
    return index


if __name__ == "__main__":
    sys.exit(main())

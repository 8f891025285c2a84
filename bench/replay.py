"""Replay benchmarks: fold throughput, seek with and without snapshots, verify throughput.

    .venv/bin/python bench/replay.py [--events 1000000] [--every 64] [--resume-events 1000000]
                                     [--paper-tasks 2560] [--export-events 200000] [--skip-fold] [--json]

1. A synthetic log of ``--events`` events (episode streams of MessageSent/ToolExecuted
   with deltas, over one task) is written through the ordinary writer in big batches
   with sync=False. The baseline is decoding the same records without folding
   (``log.read()``). ``fold_*``: the partial fold the commands run (``fold_log(log)``,
   lean decoding, no stream digests); ``fold_digests_*``: the same with exact stream
   digests (every event decoded whole for its digest); ``whole_fold_*``: the fold of
   fully decoded records with whole episodes (``fold(log.read())``). All three are
   checked to agree (projection digests, stream digests) before their figures print.
2. Seek: the state at a random position of random episodes, cold (fold from the start)
   and from snapshots every ``--every`` events; events touched and time per seek.
3. Resume: a finished run's log of about ``--resume-events`` events (a real sim run whose
   episodes are copied as further attempts) and a small one (the sim run alone):
   ``resume_start_s`` is the time from opening it to knowing what is left (its
   projection, from the checkpoint the run ended with); ``resume_run_s`` a whole no-op
   ``run``; ``resume_first_start_s`` the first start after the log grew past its last
   checkpoint (a fold of everything after it).
   ``resume_*_paper``: the same for a paper-shaped log of ``--paper-tasks`` tasks (a real
   sim run of the paper preset, 2 domains of 16 tasks, whose tasks and episodes are
   copied as further tasks: what a task weighs, initial states of background rows and
   golden chains, is the paper's), each figure the median of 3 fresh processes:
   ``resume_start_s_paper`` (and ``_cpu_s``) the rollout stage's start (projection and
   what is left), ``resume_run_s_paper`` a whole no-op ``run`` after it (every stage and
   the summary), ``resume_run_peak_rss_mb_paper`` the process's peak RSS; ``_paper_small``
   the same on the 32-task run it grew from, ``resume_*_ratio_paper`` CPU ratios.
4. Export: ``export_peak_rss_mb``, the peak memory of a fresh process exporting a finished
   log of about ``--export-events`` events as JSON lines (streaming, one episode at a
   time), ``_double`` the same for a log twice that size, ``export_peak_rss_ratio`` the
   ratio (1.0: memory does not grow with the log); ``export_whole_peak_rss_mb`` the
   whole-log fold export did before (same bytes written, checked). RSS counts the log's
   pages LMDB maps in (file pages the kernel may drop, growing with the log read);
   ``export_peak_anon_mb`` (and its ratio) is the process's own memory, sampled every 5 ms.
5. Verify: a real sim run (``--verify-domains`` domains, seed 3), every recorded tool
   call re-executed in the sandbox: calls/s.

``--json`` prints one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec
import trio

from scaleenv._replay.snapshots import seek
from scaleenv._replay.logcopy import append_all
from scaleenv._replay.digests import projection_digests
from scaleenv._replay.partial import fold_log
from scaleenv._replay.projection import fold
from scaleenv._replay.snapshots import build_snapshots
from scaleenv._replay.verify import verify_log
from scaleenv._store.events.base import Ref
from scaleenv._store.events.episodes import EpisodeStarted, MessageSent, ToolCallRequest, ToolExecuted
from scaleenv._store.events.tasks import RecordChange, TaskInstantiated
from scaleenv._store.log import Log
from scaleenv._store.writer import Pending

EVENTS_PER_EPISODE = 500
ROWS = 20


def _initial() -> dict[str, dict[str, dict[str, Any]]]:
    return {"items": {f"i{k:03d}": {"id": f"i{k:03d}", "qty": 10, "note": "x" * 16} for k in range(ROWS)}}


def synthetic_items(total: int) -> list[Pending]:
    """One task stream and enough episode streams to reach ``total`` events."""
    state = _initial()
    items = [Pending("task/d00/t000", 0, None, "expander",
                     TaskInstantiated(domain="bench", initial_state=state, needed=[], distractors=[], steps=[]))]
    episodes = max(1, -(-(total - 1) // EVENTS_PER_EPISODE))
    rng = random.Random(7)
    for e in range(episodes):
        sid = f"episode/d00/t000/g{e}"
        items.append(Pending(sid, 0, None, "engine", EpisodeStarted(task_id="d00/t000", domain="bench", attempt=e, seed=e)))
        qty = {k: 10 for k in state["items"]}
        n = 1
        while n < EVENTS_PER_EPISODE:
            key = f"i{rng.randrange(ROWS):03d}"
            call = ToolCallRequest(id=f"c{n}", name="set_qty", arguments=f'{{"id": "{key}"}}')
            items.append(Pending(sid, n, Ref(sid, n - 1), "policy", MessageSent(role="assistant", content="", tool_calls=[call])))
            before = {"id": key, "qty": qty[key], "note": "x" * 16}
            qty[key] += 1
            after = {"id": key, "qty": qty[key], "note": "x" * 16}
            items.append(Pending(sid, n + 1, Ref(sid, n), "environment", ToolExecuted(
                call_id=f"c{n}", tool="set_qty", args={"id": key}, ok=True, result=after,
                delta=[RecordChange(table="items", key=key, before=before, after=after)])))
            n += 2
    return items


def bench_fold(path: Path, total: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    items = synthetic_items(total)
    t1 = time.perf_counter()
    with Log.open(path, sync=False, map_size=2 << 30) as lg:
        written = trio.run(append_all, lg, items, 50_000)
    t2 = time.perf_counter()
    del items
    with Log.open(path, readonly=True) as lg:
        t3 = time.perf_counter()
        decoded = sum(1 for _ in lg.read())
        t4 = time.perf_counter()
        view = fold_log(lg)
        t5 = time.perf_counter()
        digested = fold_log(lg, digests=True)
        t6 = time.perf_counter()
        whole = fold(lg.read())
        t7 = time.perf_counter()
    assert decoded == view.events == digested.events == whole.events == written
    assert projection_digests(view) == projection_digests(whole) == projection_digests(digested)
    assert digested.stream_digests() == whole.stream_digests()
    decode_s = t4 - t3
    return {
        "events": written,
        "generate_s": round(t1 - t0, 2),
        "write_events_per_s": round(written / (t2 - t1)),
        "decode_events_per_s": round(decoded / decode_s),
        "fold_events_per_s": round(view.events / (t5 - t4)),
        "fold_vs_decode": round(decode_s / (t5 - t4), 3),
        "fold_digests_events_per_s": round(written / (t6 - t5)),
        "fold_digests_vs_decode": round(decode_s / (t6 - t5), 3),
        "whole_fold_events_per_s": round(written / (t7 - t6)),
        "whole_fold_vs_decode": round(decode_s / (t7 - t6), 3),
    }


def bench_seek(path: Path, every: int, samples: int) -> dict[str, Any]:
    rng = random.Random(11)
    with Log.open(path, readonly=True) as lg:
        streams = [s for s, _ in lg.streams("episode/")]
        picked = rng.sample(streams, min(samples, len(streams)))
        targets = [(s, rng.randrange(1, lg.stream_length(s) + 1)) for s in picked]
    with Log.open(path, map_size=2 << 30) as lg:
        t0 = time.perf_counter()
        built = build_snapshots(lg, every, picked)
        build_s = time.perf_counter() - t0
    with Log.open(path, readonly=True) as lg:
        cold_t, warm_t, cold_n, warm_n = [], [], [], []
        for s, n in targets:
            t = time.perf_counter()
            cold = seek(lg, s, n, use_snapshots=False)
            cold_t.append(time.perf_counter() - t)
            t = time.perf_counter()
            warm = seek(lg, s, n)
            warm_t.append(time.perf_counter() - t)
            assert warm.state == cold.state and warm.digest == cold.digest
            cold_n.append(cold.touched)
            warm_n.append(warm.touched)
    return {
        "every": every,
        "seeks": len(targets),
        "snapshots_built": built.snapshots,
        "snapshot_build_s": round(build_s, 3),
        "seek_events_touched": max(warm_n),
        "seek_events_touched_mean": round(statistics.mean(warm_n), 1),
        "seek_cold_events_touched_mean": round(statistics.mean(cold_n), 1),
        "seek_ms_mean": round(1000 * statistics.mean(warm_t), 3),
        "seek_cold_ms_mean": round(1000 * statistics.mean(cold_t), 3),
        "seek_speedup": round(statistics.mean(cold_t) / statistics.mean(warm_t), 1),
    }


def bench_verify(path: Path, domains: int) -> dict[str, Any]:
    from scaleenv._config import RunConfig
    from scaleenv._runner import EngineOptions, open_run, rollouts, stage1, stage2

    config = RunConfig(seed=3, domains=domains, tasks_per_domain=4, episodes_per_task=2)

    async def run() -> None:
        async with open_run(str(path), config, EngineOptions(progress=False, sync=False)) as ctx:
            for stage in (stage1, stage2, rollouts):
                await stage(ctx)

    trio.run(run)
    with Log.open(path, readonly=True) as lg:
        report = trio.run(lambda: verify_log(lg, workers=2))
    return {"verify_calls": report.checked, "verify_by_kind": report.by_kind, "verify_divergences": len(report.divergences),
            "verify_s": round(report.seconds, 3), "verify_calls_per_s": round(report.calls_per_s, 1)}


def finished_log(path: Path, events: int) -> dict[str, Any]:
    """A finished run of about ``events`` events: a real sim run (1 domain, 2 tasks, 2
    episodes each, seed 3) whose recorded episodes are then copied as further attempts
    (g2, g3, ...) of its kept tasks until the log holds ``events``; the run config says
    that many episodes per task, so a resume has nothing left to do."""
    from scaleenv._runner import EngineOptions, adopt_config, run

    t0 = time.perf_counter()
    run(str(path), {"seed": 3, "domains": 1, "tasks_per_domain": 2, "episodes_per_task": 2},
        EngineOptions(progress=False, sync=False))
    with Log.open(path, readonly=True) as lg:
        kept = sorted(t for t, v in fold_log(lg).tasks.items() if v.status == "kept")
        templates = {t: list(lg.read_stream(f"episode/{t}/g0")) for t in kept}
        have = lg.count()
    per_round = sum(len(r) for r in templates.values())
    rounds = max(0, -(-(events - have) // per_round)) if per_round else 0
    items: list[Pending] = []
    for g in range(2, 2 + rounds):
        for t, records in templates.items():
            sid = f"episode/{t}/g{g}"
            for r in records:
                cause = Ref(sid, r.cause.n) if r.cause is not None and r.cause.stream == r.stream else r.cause
                event = msgspec.structs.replace(r.event, attempt=g) if isinstance(r.event, EpisodeStarted) else r.event
                items.append(Pending(sid, r.n, cause, r.actor, event))
    with Log.open(path, sync=False, map_size=4 << 30) as lg:
        trio.run(append_all, lg, items, 50_000)
        adopt_config(lg, {"episodes_per_task": 2 + rounds})
        total = lg.count()
    return {"events": total, "episodes": len(templates) * (2 + rounds), "build_s": round(time.perf_counter() - t0, 1)}


def resume_start(path: Path) -> float:
    """Seconds from opening the log for appending to knowing what is left: its projection
    (from the checkpoint the run ended with) and the rollout stage's list of episodes left
    (``runner.rollout_work``: each episode's finished flag, no episode decoded)."""
    from scaleenv._replay.checkpoint import projected
    from scaleenv._runner import rollout_work

    t0 = time.perf_counter()
    with Log.open(path, sync=False) as lg:
        p = projected(lg)
        assert p.folded == 0, "a finished run's log ends with a checkpoint"
        left = rollout_work(p.view, int(lg.meta_get("run_config")["episodes_per_task"]))
        assert not left, "a finished run has nothing left"
        del p
    return time.perf_counter() - t0


PAPER_TEMPLATE = {"preset": "paper", "seed": 3, "domains": 2, "tasks_per_domain": 16, "episodes_per_task": 1}
"""The real sim run a paper-shaped log grows from: the paper preset's briefs (25-70 tools a
domain, multi-goal tasks with their background rows), 2 domains of 16 tasks, 1 episode each."""


def paper_log(path: Path, tasks: int, template: Path | None = None) -> dict[str, Any]:
    """A finished paper-shaped run of about ``tasks`` tasks: the real sim run of
    :data:`PAPER_TEMPLATE`, whose task streams (initial states, golden chains, model calls)
    and episodes are then copied as further tasks of its domains (t016, t017, ...; events
    naming a task id renamed) until the run holds ``tasks``; the run config says that many
    tasks per domain, so a resume has nothing left to do. ``tasks`` at most the template's
    leaves it as it is. ``template``: a copy of that run to start from (not run again)."""
    from scaleenv._runner import EngineOptions, adopt_config, run
    from scaleenv._store.events.tasks import TaskDiscarded, TaskKept
    from scaleenv._streams import task_id

    t0 = time.perf_counter()
    if template is not None:
        shutil.copytree(template, path)
    else:
        run(str(path), PAPER_TEMPLATE, EngineOptions(progress=False, sync=False))
    per = PAPER_TEMPLATE["tasks_per_domain"]
    slots = [f"d{s:02d}" for s in range(PAPER_TEMPLATE["domains"])]
    per_domain = max(per, -(-tasks // len(slots)))
    with Log.open(path, readonly=True) as lg:
        templates = {}
        for slot in slots:
            for k in range(per):
                tid = task_id(slot, k)
                streams = [f"task/{tid}"] + [s for s, _ in lg.streams(f"episode/{tid}/")]
                templates[tid] = [r for s in streams for r in lg.read_stream(s)]
    items: list[Pending] = []
    for slot in slots:
        for k in range(per, per_domain):
            src, dst = task_id(slot, k % per), task_id(slot, k)

            def renamed(stream: str) -> str:
                kind, _, rest = stream.partition("/")
                return f"{kind}/{dst}{rest[len(src):]}" if rest == src or rest.startswith(src + "/") else stream

            for r in sorted(templates[src], key=lambda r: r.seq):
                e = r.event
                if isinstance(e, EpisodeStarted | TaskKept | TaskDiscarded) and e.task_id == src:
                    e = msgspec.structs.replace(e, task_id=dst)
                cause = Ref(renamed(r.cause.stream), r.cause.n) if r.cause is not None else None
                items.append(Pending(renamed(r.stream), r.n, cause, r.actor, e))
    with Log.open(path, sync=False, map_size=16 << 30) as lg:
        trio.run(append_all, lg, items, 20_000)
        adopt_config(lg, {"tasks_per_domain": per_domain})
        total = lg.count()
    return {"events": total, "tasks": per_domain * len(slots), "build_s": round(time.perf_counter() - t0, 1),
            "mb": round(sum(f.stat().st_size for f in path.iterdir()) / 1e6)}


NOOP_CHILD = """
import json, resource, sys, time
t0, c0 = time.perf_counter(), time.process_time()
from scaleenv._replay.checkpoint import projected
from scaleenv._runner import EngineOptions, rollout_work, run
from scaleenv._store.log import Log
imported = time.perf_counter() - t0
t0, c0 = time.perf_counter(), time.process_time()
with Log.open(sys.argv[1], sync=False) as lg:  # what the rollout stage starts with: what is left
    p = projected(lg, lean=True)
    left = rollout_work(p.view, int(lg.meta_get("run_config")["episodes_per_task"]))
    del p
start_s, start_cpu = time.perf_counter() - t0, time.process_time() - c0
t0, c0 = time.perf_counter(), time.process_time()
summary = run(sys.argv[1], {}, EngineOptions(progress=False, sync=False))  # every stage, then the summary
run_s, run_cpu = time.perf_counter() - t0, time.process_time() - c0
with open("/proc/self/status") as f:
    hwm = next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))
print(json.dumps({"left": len(left), "events": summary["events"], "start_s": start_s, "start_cpu_s": start_cpu,
                  "run_s": run_s, "run_cpu_s": run_cpu, "peak_rss_mb": hwm / 1024, "import_s": imported}))
"""


def noop_run(path: Path) -> dict[str, Any]:
    """A fresh process resuming the finished log at ``path``: its start (the rollout
    stage's projection and the list of what is left) and then a whole no-op ``run``
    (every stage's projection and the run summary), wall and CPU seconds, peak RSS."""
    import subprocess

    done = subprocess.run([sys.executable, "-c", NOOP_CHILD, str(path)], check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_resume_paper(tmp: Path, tasks: int) -> dict[str, Any]:
    """``resume_*_paper``: a no-op resume of a finished paper-shaped log of about ``tasks``
    tasks (:func:`paper_log`), against the same on the run it grew from (``_paper_small``,
    :data:`PAPER_TEMPLATE`); the median of 3 fresh processes each, after a first start
    that folds what followed the template run's last checkpoint."""
    out: dict[str, Any] = {}
    template = tmp / "paper-template.lmdb"
    paper_log(template, 0)
    for suffix, size in (("_paper_small", 0), ("_paper", tasks)):
        path = tmp / f"paper{suffix}.lmdb"
        built = paper_log(path, size, template)
        first = noop_run(path)  # folds the copied tasks once and checkpoints them
        assert first["left"] == 0 and first["events"] == built["events"], "a finished run has nothing left"
        runs = [noop_run(path) for _ in range(3)]
        med = {k: statistics.median(r[k] for r in runs) for k in ("start_s", "start_cpu_s", "run_s", "run_cpu_s", "peak_rss_mb")}
        out.update({
            f"resume_log_tasks{suffix}": built["tasks"], f"resume_log_events{suffix}": built["events"],
            f"resume_log_mb{suffix}": built["mb"],
            f"resume_start_s{suffix}": round(med["start_s"], 3), f"resume_start_cpu_s{suffix}": round(med["start_cpu_s"], 3),
            f"resume_run_s{suffix}": round(med["run_s"], 3), f"resume_run_cpu_s{suffix}": round(med["run_cpu_s"], 3),
            f"resume_run_peak_rss_mb{suffix}": round(med["peak_rss_mb"], 1),
        })
        shutil.rmtree(path)
    shutil.rmtree(template)
    out["resume_start_ratio_paper"] = round(out["resume_start_cpu_s_paper"] / max(out["resume_start_cpu_s_paper_small"], 1e-3), 2)
    out["resume_run_ratio_paper"] = round(out["resume_run_cpu_s_paper"] / out["resume_run_cpu_s_paper_small"], 2)
    return out


EXPORT_CHILD = """
import sys, threading, time
from scaleenv._store.log import Log

def status_kb(field):
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith(field))

def anon_kb():
    return status_kb("RssAnon:")

peak = [anon_kb()]
def sample():  # the process's own memory (RSS also counts the log's pages LMDB maps in)
    while True:
        peak[0] = max(peak[0], anon_kb())
        time.sleep(0.005)

threading.Thread(target=sample, daemon=True).start()
t0 = time.perf_counter()
if sys.argv[3] == "stream":
    from scaleenv._replay.export import export_to
    with Log.open(sys.argv[1], readonly=True) as log:
        rows = export_to(log, sys.argv[2], "jsonl").rows
else:  # what export did before it streamed: the whole log folded, every row in memory
    from scaleenv._replay.export import episode_rows, write_jsonl
    from scaleenv._replay.projection import fold
    with Log.open(sys.argv[1], readonly=True) as log:
        view = fold(log.read())
    rows = write_jsonl(list(episode_rows(view, 3, ("local", "served"))), sys.argv[2])
secs = time.perf_counter() - t0
peak[0] = max(peak[0], anon_kb())
print(rows, status_kb("VmHWM:"), peak[0], secs)  # not ru_maxrss: Linux carries the parent's over exec
"""


def export_peak(path: Path, out: Path, how: str) -> tuple[int, float, float, float]:
    """(rows, peak RSS in MB, peak anonymous memory in MB (sampled every 5 ms), seconds) of
    exporting ``path`` as JSON lines in a fresh process."""
    import subprocess

    done = subprocess.run([sys.executable, "-c", EXPORT_CHILD, str(path), str(out), how],
                          check=True, capture_output=True, text=True)
    rows, kb, anon_kb, secs = done.stdout.split()
    return int(rows), int(kb) / 1024, int(anon_kb) / 1024, float(secs)


def bench_export(tmp: Path, events: int, whole: bool) -> dict[str, Any]:
    """Peak memory of ``export`` (streaming, one episode at a time) on a finished log of
    about ``events`` events and on one twice as big; with ``whole``, also of the
    whole-log fold it replaced, on the smaller one."""
    from scaleenv._replay.checkpoint import projected

    out: dict[str, Any] = {}
    for suffix, size in (("", events), ("_double", 2 * events)):
        path = tmp / f"export{suffix}.lmdb"
        built = finished_log(path, size)
        with Log.open(path, sync=False) as lg:
            projected(lg)  # a finished run's log ends with a checkpoint
        rows, mb, anon, secs = export_peak(path, tmp / f"export{suffix}.jsonl", "stream")
        out.update({f"export_log_events{suffix}": built["events"], f"export_rows{suffix}": rows,
                    f"export_peak_rss_mb{suffix}": round(mb, 1), f"export_peak_anon_mb{suffix}": round(anon, 1),
                    f"export_s{suffix}": round(secs, 2)})
        if whole and not suffix:
            rows_w, mb_w, anon_w, secs_w = export_peak(path, tmp / "export-whole.jsonl", "whole")
            assert rows_w == rows
            assert (tmp / "export-whole.jsonl").read_bytes() == (tmp / "export.jsonl").read_bytes()
            out.update({"export_whole_peak_rss_mb": round(mb_w, 1), "export_whole_peak_anon_mb": round(anon_w, 1),
                        "export_whole_s": round(secs_w, 2)})
        shutil.rmtree(path)  # the next one is twice as big: keep the temp dir small
    out["export_peak_rss_ratio"] = round(out["export_peak_rss_mb_double"] / out["export_peak_rss_mb"], 3)
    out["export_peak_anon_ratio"] = round(out["export_peak_anon_mb_double"] / out["export_peak_anon_mb"], 3)
    return out


def bench_resume(tmp: Path, events: int) -> dict[str, Any]:
    from scaleenv._replay.checkpoint import projected
    from scaleenv._runner import EngineOptions, run

    out: dict[str, Any] = {}
    for name, size in (("small", 0), ("large", events)):
        path = tmp / f"finished-{name}.lmdb"
        built = finished_log(path, size)
        with Log.open(path, sync=False) as lg:  # the log grew after the run's last checkpoint:
            t0 = time.perf_counter()            # the first start folds what follows it, once
            first = projected(lg)
            first_s = time.perf_counter() - t0
        starts = [resume_start(path) for _ in range(3)]
        t0 = time.perf_counter()
        summary = run(str(path), {}, EngineOptions(progress=False, sync=False))  # a whole resume: nothing left to do
        run_s = time.perf_counter() - t0
        assert summary["events"] == built["events"], "the resume appended events"
        suffix = "" if name == "large" else "_small"
        out.update({
            f"resume_log_events{suffix}": built["events"], f"resume_log_episodes{suffix}": built["episodes"],
            f"resume_start_s{suffix}": round(statistics.median(starts), 3),
            f"resume_first_start_s{suffix}": round(first_s, 3), f"resume_first_folded{suffix}": first.folded,
            f"resume_run_s{suffix}": round(run_s, 3),
        })
    out["resume_start_ratio"] = round(out["resume_start_s"] / out["resume_start_s_small"], 2)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--every", type=int, default=64, help="snapshot interval (events)")
    ap.add_argument("--seeks", type=int, default=50)
    ap.add_argument("--verify-domains", type=int, default=4)
    ap.add_argument("--resume-events", type=int, default=1_000_000,
                    help="size of the finished log resumed (resume_start_s); 0 skips the resume bench")
    ap.add_argument("--paper-tasks", type=int, default=2560,
                    help="tasks of the finished paper-shaped log resumed (resume_*_paper); 0 skips it")
    ap.add_argument("--export-events", type=int, default=200_000,
                    help="size of the finished log exported (export_peak_rss_mb; the _double figures: twice that); 0 skips it")
    ap.add_argument("--no-export-whole", action="store_true",
                    help="skip the peak memory of the whole-log fold export replaced (export_whole_peak_rss_mb)")
    ap.add_argument("--skip-fold", action="store_true", help="skip the fold, seek and verify benches")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    from scaleenv._cli.logs import configure_logging

    configure_logging("console", "warning")
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="scaleenv-bench-replay-") as tmp:
        if not args.skip_fold:
            out.update(bench_fold(Path(tmp) / "synthetic.lmdb", args.events))
            print(f"fold: {out['events']} events at {out['fold_events_per_s']:,}/s "
                  f"(decode only: {out['decode_events_per_s']:,}/s; write: {out['write_events_per_s']:,}/s)", file=sys.stderr)
            out.update(bench_seek(Path(tmp) / "synthetic.lmdb", args.every, args.seeks))
            print(f"seek: at most {out['seek_events_touched']} events touched with snapshots every {args.every} "
                  f"(mean {out['seek_events_touched_mean']}) vs {out['seek_cold_events_touched_mean']} cold; "
                  f"{out['seek_ms_mean']} ms vs {out['seek_cold_ms_mean']} ms", file=sys.stderr)
        if args.resume_events:
            out.update(bench_resume(Path(tmp), args.resume_events))
            print(f"resume: a finished log of {out['resume_log_events']:,} events knows what is left in "
                  f"{out['resume_start_s']} s ({out['resume_start_s_small']} s for {out['resume_log_events_small']:,} events; "
                  f"the first start after it grew without a checkpoint: {out['resume_first_start_s']} s)", file=sys.stderr)
        if args.paper_tasks:
            out.update(bench_resume_paper(Path(tmp), args.paper_tasks))
            print(f"resume (paper-shaped): {out['resume_log_tasks_paper']:,} tasks ({out['resume_log_events_paper']:,} events, "
                  f"{out['resume_log_mb_paper']:,} MB) know what is left in {out['resume_start_s_paper']} s "
                  f"({out['resume_start_cpu_s_paper']} s CPU; {out['resume_log_tasks_paper_small']} tasks: "
                  f"{out['resume_start_cpu_s_paper_small']} s CPU); a whole no-op run {out['resume_run_s_paper']} s "
                  f"({out['resume_run_cpu_s_paper']} s CPU, {out['resume_run_ratio_paper']}x the small one's), "
                  f"peak RSS {out['resume_run_peak_rss_mb_paper']} MB ({out['resume_run_peak_rss_mb_paper_small']} MB)",
                  file=sys.stderr)
        if args.export_events:
            out.update(bench_export(Path(tmp), args.export_events, whole=not args.no_export_whole))
            print(f"export: peak RSS {out['export_peak_rss_mb']} MB (anonymous {out['export_peak_anon_mb']} MB) for "
                  f"{out['export_rows']:,} episodes, {out['export_peak_rss_mb_double']} MB "
                  f"({out['export_peak_anon_mb_double']} MB) for {out['export_rows_double']:,} (ratios "
                  f"{out['export_peak_rss_ratio']}, {out['export_peak_anon_ratio']})"
                  + (f"; the whole-log fold: {out['export_whole_peak_rss_mb']} MB ({out['export_whole_peak_anon_mb']} MB)"
                     if "export_whole_peak_rss_mb" in out else ""), file=sys.stderr)
        if not args.skip_fold:
            out.update(bench_verify(Path(tmp) / "sim.lmdb", args.verify_domains))
            print(f"verify: {out['verify_calls']} calls re-executed at {out['verify_calls_per_s']}/s "
                  f"({out['verify_divergences']} divergences)", file=sys.stderr)
    out["baseline"] = {"fold": "decode only (no apply)", "seek": "fold from the start of the stream",
                       "resume": "the same on a small finished log (resume_start_s_small)",
                       "resume_paper": "the same on the paper-shaped run the large one grew from (resume_*_paper_small)",
                       "export": "the same on a log half the size (export_peak_rss_mb); the whole-log fold "
                                 "export did before it streamed (export_whole_peak_rss_mb)"}
    if args.json:
        print(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Stage 1 and rollouts on a local multi-node Ray cluster against one process: same digests, and what the cluster path costs.

    .venv/bin/python bench/cluster.py [--nodes 2] [--domains 2] [--tasks-per-domain 4] [--episodes-per-task 8]
                                      [--stop-trials 3] [--json]
    .venv/bin/python bench/cluster.py --preset paper [--domains 2] [--tasks-per-domain 8] [--episodes-per-task 8]
                                      [--paper-nodes 1,2] [--json]

Needs the ray extra (pip install -e '.[ray]'). One stage-1/2 log (the sim LLM, seed 1) is
built first, stage 1 timed on its own (``synth_single``). Stage 1 on the cluster, each from
a new log:

- synth_cluster_1: ``distributed_domains`` with one shard (every domain in one Ray actor);
  against ``synth_single``, the per-domain overhead of the cluster path;
- synth_cluster_n: one shard per node (domains spread by the hash of their stream ids).

Then rollouts, from copies of the stage-1/2 log:

- single: the rollout stage in this process (one trio engine), as ``scaleenv rollout``;
- cluster_1: ``distributed_rollouts`` with one shard on a ``ray.cluster_utils.Cluster`` of
  ``--nodes`` nodes (one CPU each): the same single engine, now in a Ray actor on a node,
  shipped its context and pulled for its records, then merged; the difference from
  ``single`` is the cluster path's overhead (actor start, shipping, pulls, merge);
- cluster_n: one shard per node;
- ctrl_c (``--stop-trials N``, default 3): ``scaleenv rollout --ray`` as a real driver
  process (``--latency --concurrency 2`` so that it runs long enough), sent SIGINT once
  its receiving logs hold shipped-back records; the seconds from the signal to the
  driver's exit (exit 130 checked), then the same command again to the end (its digest
  checked against single).

With ``--preset paper`` (e.g. ``--preset paper --domains 2 --tasks-per-domain 8``; the
counts scale it up, ``--domains 16`` with no ``--tasks-per-domain`` is the paper's whole
table 8), the whole pipeline instead (stage 1, stage 2 and the rollouts, each from a new
log), timed three ways: ``paper_single_s`` in this process, ``paper_cluster_s`` on a
cluster of 1 node and of 2 nodes (one CPU each; the cluster's start-up not counted), the
stages one after the other over one shard per node, as ``scaleenv run --ray`` runs
them; with the ratios ``paper_2_vs_1_nodes`` and ``paper_cluster_vs_single``, and the
three digests (checked equal). The Ctrl-C trials and the stage-alone runs are left out.

Figures: wall seconds of each (the cluster's own start-up is reported apart and not
counted), the per-episode overhead of cluster_1 against single, the merge rate
(``merge_events_per_s``, the driver's serial part) and the shipping figures (records,
bytes and chunks each way). All three digests must be equal (checked), and the stage-1 runs'
digests too (``synth_digest_*``). ``--json`` prints
one JSON object on its last line. On a shared 2-core machine, cluster_n cannot beat
single: the nodes share the same two cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.distributed.interrupt import run_and_signal, scaleenv  # noqa: E402

from scaleenv._config import RunConfig, make, with_preset
from scaleenv._distributed import distributed_domains, distributed_rollouts, distributed_tasks
from scaleenv._runner import EngineOptions, open_run, project, rollouts, stage1, stage2, summary

OBJECT_STORE_BYTES = 80 * 1024 * 1024
OPTIONS = EngineOptions(progress=False, sync=False)


def run_stages(path: Path, config: RunConfig, *stages: Any, walls: dict[str, float] | None = None) -> dict[str, Any]:
    """The stages in one process, one after the other; ``walls`` gets each stage's wall seconds."""
    async def main() -> dict[str, Any]:
        async with open_run(str(path), config, OPTIONS) as ctx:
            for stage in stages:
                t0 = time.perf_counter()
                await stage(ctx)
                if walls is not None:
                    walls[stage.__name__] = round(time.perf_counter() - t0, 2)
            return summary(project(ctx.log))

    return trio.run(main)


def shipped(result: dict[str, Any]) -> dict[str, int]:
    workers = result["distributed"]["workers"]
    return {
        "back_records": sum(w["shipped_back"]["records"] for w in workers),
        "back_bytes": sum(w["shipped_back"]["bytes"] for w in workers),
        "back_chunks": sum(w["shipped_back"]["chunks"] for w in workers),
        "out_chunks": sum(w["shipped_out_chunks"] or 0 for w in workers),
    }


def ctrl_c_trial(tasks: Path, to: Path, address: str, config: RunConfig, digest: str) -> float:
    """SIGINT a ``rollout --ray`` driver once it pulls; the seconds to its exit. Resumes it to the end."""
    main = shutil.copytree(tasks, to)
    argv = scaleenv("rollout", "--log", str(main), "--episodes-per-task", str(config.episodes_per_task),
                    "--no-sync", "--quiet", "--json", "--ray", address, "--shards", "2")
    stopped = run_and_signal([*argv, "--latency", "--concurrency", "2"], main, signal.SIGINT, min_records=10)
    if stopped.finished_first or stopped.code != 130:
        raise RuntimeError(f"the Ctrl-C trial did not stop the run ({stopped.code}): {stopped.stderr[-2000:]}")
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    if done.returncode != 0 or json.loads(done.stdout.strip().splitlines()[-1])["digest"] != digest:
        raise RuntimeError(f"the resumed run failed or differs ({done.returncode}): {done.stderr[-2000:]}")
    return stopped.exit_s


def bench(nodes: int, config: RunConfig, stop_trials: int = 3) -> dict[str, Any]:
    import ray
    from ray.cluster_utils import Cluster

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    with tempfile.TemporaryDirectory(prefix="scaleenv-bench-cluster-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        synth_one = run_stages(root / "tasks", config, stage1)
        synth_single_s = time.perf_counter() - t0
        run_stages(root / "tasks", config, stage2)
        build_s = time.perf_counter() - t0

        single = shutil.copytree(root / "tasks", root / "single")
        t0 = time.perf_counter()
        one = run_stages(single, config, rollouts)
        single_s = time.perf_counter() - t0
        episodes = sum(d["episodes"] for d in one["domains"])

        t0 = time.perf_counter()
        cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 1, "object_store_memory": OBJECT_STORE_BYTES, "include_dashboard": False})
        for _ in range(nodes - 1):
            cluster.add_node(num_cpus=1, object_store_memory=OBJECT_STORE_BYTES)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False, logging_level="ERROR")
        start_s = time.perf_counter() - t0
        try:
            runs: dict[str, dict[str, Any]] = {}
            walls: dict[str, float] = {}
            for name, shards in (("synth_cluster_1", 1), ("synth_cluster_n", nodes)):
                t0 = time.perf_counter()
                runs[name] = distributed_domains(str(root / name), config, OPTIONS, shards=shards, executor="ray")
                walls[name] = time.perf_counter() - t0
            for name, shards in (("cluster_1", 1), ("cluster_n", nodes)):
                path = shutil.copytree(root / "tasks", root / name)
                t0 = time.perf_counter()
                runs[name] = distributed_rollouts(str(path), config, OPTIONS, shards=shards, executor="ray")
                walls[name] = time.perf_counter() - t0
            stops = [ctrl_c_trial(root / "tasks", root / f"stop{i}", cluster.address, config, one["digest"])
                     for i in range(stop_trials)]
        finally:
            ray.shutdown()
            cluster.shutdown()
    c1, cn = runs["cluster_1"], runs["cluster_n"]
    assert c1["digest"] == cn["digest"] == one["digest"], "the cluster runs' digests differ from one process's"
    s1, sn = runs["synth_cluster_1"], runs["synth_cluster_n"]
    assert s1["digest"] == sn["digest"] == synth_one["digest"], "the cluster's stage 1 differs from one process's"
    merge = cn["distributed"]["merge"]
    domains = len(synth_one["domains"])
    return {
        "nodes": nodes,
        "domains": domains,
        "synth_digest_single": synth_one["digest"],
        "synth_digest_cluster": sn["digest"],
        "synth_single_s": round(synth_single_s, 2),
        "synth_cluster_1_s": round(walls["synth_cluster_1"], 2),
        "synth_cluster_n_s": round(walls["synth_cluster_n"], 2),
        "synth_cluster_1_vs_single": round(walls["synth_cluster_1"] / synth_single_s, 3),
        "synth_cluster_n_vs_single": round(walls["synth_cluster_n"] / synth_single_s, 3),
        "per_domain_overhead_s": round((walls["synth_cluster_1"] - synth_single_s) / domains, 3),
        "per_domain_single_s": round(synth_single_s / domains, 3),
        "synth_events": s1["events"],
        "synth_merge_events_per_s": sn["distributed"]["merge"]["events_per_s"],
        "synth_shipped_cluster_n": shipped(sn),
        "episodes": episodes,
        "events_merged": merge["events_merged"],
        "digest_single": one["digest"],
        "digest_cluster": cn["digest"],
        "digest_cluster_1": c1["digest"],
        "digests_equal": True,
        "build_stage12_s": round(build_s, 2),
        "cluster_start_s": round(start_s, 2),
        "single_s": round(single_s, 2),
        "cluster_1_s": round(walls["cluster_1"], 2),
        "cluster_n_s": round(walls["cluster_n"], 2),
        "cluster_1_vs_single": round(walls["cluster_1"] / single_s, 3),
        "cluster_n_vs_single": round(walls["cluster_n"] / single_s, 3),
        "per_episode_overhead_ms": round((walls["cluster_1"] - single_s) / episodes * 1000, 2),
        "per_episode_single_ms": round(single_s / episodes * 1000, 2),
        "merge_events_per_s": merge["events_per_s"],
        "merge_s": merge["seconds"],
        "cluster_n_seconds": cn["distributed"]["seconds"],
        "shipped_cluster_n": shipped(cn),
        "shipped_cluster_n_back_bytes_per_s": round(shipped(cn)["back_bytes"] / cn["distributed"]["seconds"]["workers"]),
        "ctrl_c_trials": len(stops),
        "ctrl_c_exit_s_median": round(statistics.median(stops), 3) if stops else None,
        "ctrl_c_exit_s_max": round(max(stops), 3) if stops else None,
    }


def start_cluster(nodes: int) -> tuple[Any, float]:
    """A ``ray.cluster_utils.Cluster`` of ``nodes`` one-CPU nodes, this process connected; and its start seconds."""
    import ray
    from ray.cluster_utils import Cluster

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    t0 = time.perf_counter()
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "object_store_memory": OBJECT_STORE_BYTES, "include_dashboard": False})
    for _ in range(nodes - 1):
        cluster.add_node(num_cpus=1, object_store_memory=OBJECT_STORE_BYTES)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False, logging_level="ERROR")
    return cluster, time.perf_counter() - t0


def paper_bench(config: RunConfig, node_counts: list[int]) -> dict[str, Any]:
    """The whole pipeline of a paper-shaped run in one process and on clusters of ``node_counts`` nodes."""
    import ray

    with tempfile.TemporaryDirectory(prefix="scaleenv-bench-paper-") as tmp:
        root = Path(tmp)
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        single_stages: dict[str, float] = {}
        one = run_stages(root / "single", config, stage1, stage2, rollouts, walls=single_stages)
        single_s = time.perf_counter() - t0
        single_cpu_s = time.process_time() - cpu0
        walls: dict[int, float] = {}
        per_stage: dict[int, dict[str, float]] = {}
        starts: dict[int, float] = {}
        results: dict[int, dict[str, Any]] = {}
        for nodes in node_counts:
            cluster, starts[nodes] = start_cluster(nodes)
            try:
                path = str(root / f"cluster{nodes}")
                per_stage[nodes] = {}
                t0 = time.perf_counter()
                for kind, stage in (("domains", distributed_domains), ("tasks", distributed_tasks),
                                    ("episodes", distributed_rollouts)):
                    s0 = time.perf_counter()
                    results[nodes] = stage(path, config, OPTIONS, shards=nodes, executor="ray")
                    per_stage[nodes][kind] = round(time.perf_counter() - s0, 2)
                walls[nodes] = time.perf_counter() - t0
            finally:
                ray.shutdown()
                cluster.shutdown()
    digests = {n: r["digest"] for n, r in results.items()}
    assert set(digests.values()) == {one["digest"]}, f"the cluster runs' digests differ from one process's: {digests}"
    top = max(node_counts)
    out: dict[str, Any] = {
        "preset": "paper",
        "nodes": top,
        "domains": len(one["domains"]),
        "tools_verified": [d.get("tools_verified", 0) for d in one["domains"]],
        "tasks_kept": sum(d.get("tasks", 0) for d in one["domains"]),
        "tasks_discarded": sum(sum((d.get("tasks_discarded") or {}).values()) for d in one["domains"]),
        "episodes": sum(d["episodes"] for d in one["domains"]),
        "events": one["events"],
        "digest_single": one["digest"],
        "digest_cluster": digests[top],
        "digests_equal": True,
        "paper_single_s": round(single_s, 2),
        "paper_single_cpu_s": round(single_cpu_s, 2),
        "paper_single_stage_s": {"domains": single_stages["stage1"], "tasks": single_stages["stage2"],
                                 "episodes": single_stages["rollouts"]},
        "paper_cluster_s": {str(n): round(w, 2) for n, w in walls.items()},
        "paper_cluster_stage_s": {str(n): v for n, v in per_stage.items()},
        "cluster_start_s": {str(n): round(v, 2) for n, v in starts.items()},
        "paper_cluster_vs_single": {str(n): round(w / single_s, 3) for n, w in walls.items()},
        "merge_events_per_s": results[top]["distributed"]["merge"]["events_per_s"],
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    if 1 in walls and len(walls) > 1:
        out["paper_2_vs_1_nodes" if top == 2 else f"paper_{top}_vs_1_nodes"] = round(walls[top] / walls[1], 3)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--domains", type=int, default=2)
    ap.add_argument("--tasks-per-domain", type=int, default=None, help="default 4; with --preset paper, 8")
    ap.add_argument("--episodes-per-task", type=int, default=8)
    ap.add_argument("--stop-trials", type=int, default=3, help="Ctrl-C trials on the cluster (0: none)")
    ap.add_argument("--preset", choices=["paper"], default=None,
                    help="time the whole pipeline of a paper-shaped run on 1 and 2 nodes instead")
    ap.add_argument("--paper-nodes", default="1,2", help="with --preset: the cluster sizes to time (default 1,2)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.nodes < 1:
        print("cluster.py: --nodes must be at least 1", file=sys.stderr)
        return 2
    if a.preset is not None:
        try:
            node_counts = sorted({int(n) for n in a.paper_nodes.split(",")})
        except ValueError:
            node_counts = []
        if not node_counts or node_counts[0] < 1:
            print(f"cluster.py: --paper-nodes must be node counts such as 1,2; got {a.paper_nodes!r}", file=sys.stderr)
            return 2
        given: dict[str, Any] = {"preset": a.preset, "seed": a.seed, "domains": a.domains,
                                 "episodes_per_task": a.episodes_per_task}
        if a.tasks_per_domain is not None or a.domains < 16:
            given["tasks_per_domain"] = a.tasks_per_domain or 8
        out = paper_bench(make(with_preset(given)), node_counts)
    else:
        config = RunConfig(seed=a.seed, domains=a.domains, tasks_per_domain=a.tasks_per_domain or 4,
                           episodes_per_task=a.episodes_per_task)
        out = bench(a.nodes, config, a.stop_trials)
    if a.json:
        print(json.dumps(out, sort_keys=True))
    else:
        for k, v in out.items():
            print(f"{k:36s} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

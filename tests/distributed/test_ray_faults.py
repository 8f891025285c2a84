"""Faults of a sharded run on a real two-node Ray cluster on this machine (``ray.cluster_utils.Cluster``).

- Ctrl-C (SIGINT, SIGTERM) of ``scaleenv rollout --ray``, a real driver process: it exits
  promptly with status 130 and one line, its workers are gone, the log checks clean, and
  a second run resumes to the single-machine digest;
- the driver SIGKILLed while it pulls: a second run merges what it had stored first and
  resumes to the same digest;
- a worker node removed mid-run (``Cluster.remove_node``): its shard is run again on the
  remaining node, from what it had shipped back, and nothing is lost or repeated.

Every fault is triggered on an observable event (the driver's receiving logs hold
shipped-back records), never after a fixed delay. One cluster serves the module; the
node-loss test adds a node back for whatever runs after it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed (optional extra: pip install 'scaleenv[ray]')")
cluster_utils = pytest.importorskip("ray.cluster_utils", reason="this Ray has no ray.cluster_utils")

from scaleenv._shards import existing_shards, shards_dir  # noqa: E402
from scaleenv._store.errors import LogError  # noqa: E402
from scaleenv._store.log import Log  # noqa: E402

from tests.faults.procs import children, kill_quietly, wait_gone  # noqa: E402

from .conftest import CONFIG, Base, episode_starts, stream_digests  # noqa: E402
from .interrupt import received, run_and_signal, scaleenv  # noqa: E402

OBJECT_STORE_BYTES = 80 * 1024 * 1024  # just over Ray's minimum (75 MiB)
EXIT_BOUND_S = 10.0
"""A generous bound on signal-to-exit for a loaded CI machine; the typical figure is in the README."""
GONE_LIMIT_S = 60.0
"""How long the killed workers' processes may take to disappear (Ray reaps them)."""
ACTOR_MARK = b"RayShardActor"


@pytest.fixture(scope="module")
def cluster() -> Iterator[object]:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    c = cluster_utils.Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "object_store_memory": OBJECT_STORE_BYTES, "include_dashboard": False},
    )
    c.add_node(num_cpus=1, object_store_memory=OBJECT_STORE_BYTES)
    c.wait_for_nodes()
    ray.init(address=c.address, log_to_driver=False, logging_level="ERROR")
    try:
        yield c
    finally:
        ray.shutdown()
        c.shutdown()


def shard_actor_pids() -> list[int]:
    """The processes of shard workers (Ray names an actor's process after its class)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if ACTOR_MARK in f.read():
                        out.append(int(entry))
            except OSError:
                continue
    return out


def wait_no_shard_actors(limit: float = GONE_LIMIT_S) -> list[int]:
    deadline = time.monotonic() + limit
    while (left := shard_actor_pids()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        for child in children(todo.pop()):
            out.append(child)
            todo.append(child)
    return out


def lose_node(cluster: object, node: object) -> None:
    """A node lost as a machine is: its raylet and every process under it (the workers, their
    sandbox processes) killed at once. (``Cluster.remove_node`` alone kills Ray's daemons,
    and an actor's process, which the driver calls directly, may outlive its raylet a while.)"""
    raylet = node.all_processes["raylet"][0].process.pid
    doomed = descendants(raylet)
    for pid in doomed:
        kill_quietly(pid, signal.SIGKILL)
    cluster.remove_node(node, allow_graceful=False)
    assert wait_gone(doomed) == []


def rollout_argv(main: Path, address: str, *extra: str) -> list[str]:
    # --latency and --concurrency 2 (never a digest's business) make the run last long enough
    # to be caught in the middle; the trigger itself is an event, not a time.
    return scaleenv("rollout", "--log", str(main), "--episodes-per-task", str(CONFIG.episodes_per_task),
                    "--no-sync", "--quiet", "--json", "--ray", address, "--shards", "2", *extra)


def resume(main: Path, address: str) -> dict:
    p = subprocess.run(rollout_argv(main, address), capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def assert_single_machine_run(main: Path, base: Base) -> None:
    assert stream_digests(main) == base.streams
    starts = episode_starts(main)
    assert len(starts) == base.episodes and set(starts.values()) == {1}  # nothing lost, nothing repeated
    assert not shards_dir(main).exists()


def log_check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(scaleenv("log", "check", "--log", str(path)), capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_ctrl_c_stops_the_driver_and_its_workers_and_a_rerun_resumes(cluster: object, tmp_path: Path, base: Base,
                                                                       sig: int) -> None:
    assert wait_no_shard_actors() == []
    main = base.copy(tmp_path / "main")
    stopped = run_and_signal(rollout_argv(main, cluster.address, "--latency", "--concurrency", "2"), main, sig,
                             min_records=10, cwd=tmp_path)
    assert not stopped.finished_first, "the run ended before the trigger: make it longer"
    assert stopped.code == 130, stopped.stderr
    lines = stopped.stderr.strip().splitlines()
    assert lines == ["scaleenv rollout: interrupted; everything acknowledged is in the log. "
                     "Run the same command again to resume."], stopped.stderr
    assert stopped.exit_s < EXIT_BOUND_S
    # The workers were killed (not left running episodes nobody will pull).
    assert wait_no_shard_actors() == []
    check = log_check(main)
    assert check.returncode == 0, check.stdout + check.stderr
    assert received(main) >= stopped.received_at_signal
    result = resume(main, cluster.address)
    assert result["distributed"]["recovered_from_earlier_run"]["events_merged"] >= stopped.received_at_signal
    assert result["digest"] == base.digest
    assert_single_machine_run(main, base)


def test_a_driver_killed_while_pulling_is_resumed_by_the_next_run(cluster: object, tmp_path: Path,
                                                                   base: Base) -> None:
    assert wait_no_shard_actors() == []
    main = base.copy(tmp_path / "main")
    stopped = run_and_signal(rollout_argv(main, cluster.address, "--latency", "--concurrency", "2"), main,
                             signal.SIGKILL, min_records=10, cwd=tmp_path)
    assert not stopped.finished_first, "the run ended before the trigger: make it longer"
    assert stopped.code == -signal.SIGKILL
    stored = received(main)
    assert stored >= stopped.received_at_signal
    for path in (main, *existing_shards(main)):
        check = log_check(path)
        assert check.returncode == 0, check.stdout + check.stderr
    # The next run merges the receiving logs the killed driver left first, then resumes.
    result = resume(main, cluster.address)
    d = result["distributed"]
    assert d["recovered_from_earlier_run"]["events_merged"] == stored
    assert d["episodes_already_done"] > 0 or any(w["resumed"] for w in d["workers"])
    assert result["digest"] == base.digest
    assert_single_machine_run(main, base)
    assert wait_no_shard_actors() == []


def test_a_lost_worker_node_is_replaced_and_the_run_completes(cluster: object, tmp_path: Path, base: Base) -> None:
    assert wait_no_shard_actors() == []
    main = base.copy(tmp_path / "main")
    worker_node = next(n for n in cluster.list_all_nodes() if n is not cluster.head_node)
    lost_node_id = worker_node.node_id
    # The driver is a process of its own (LMDB allows one open of a log per process: the
    # test reads the receiving logs while the driver writes them).
    with subprocess.Popen(rollout_argv(main, cluster.address, "--latency", "--concurrency", "2"), cwd=tmp_path,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            # Both shards have shipped something back (one runs on each node): lose the worker node.
            deadline = time.monotonic() + 600
            counts: list[int] = []
            while proc.poll() is None and time.monotonic() < deadline:
                counts = [_count(p) for p in existing_shards(main)]
                if len(counts) == 2 and min(counts) >= 5:
                    break
                time.sleep(0.01)
            assert proc.poll() is None, "the run ended before both shards shipped records back: make it longer"
            lose_node(cluster, worker_node)
            out, err = proc.communicate(timeout=600)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            cluster.add_node(num_cpus=1, object_store_memory=OBJECT_STORE_BYTES)  # for whatever runs next
            cluster.wait_for_nodes()
    assert proc.returncode == 0, err[-3000:]
    result = json.loads(out.strip().splitlines()[-1])
    assert result["digest"] == base.digest
    d = result["distributed"]
    assert d["failures"] == [] and d["recovered_from_earlier_run"] is None
    moved = [w for w in d["workers"] if w["attempt"] == 1]
    assert len(moved) == 1, (lost_node_id, counts, d["workers"])  # the lost node's shard, and only it, ran again
    rerun = moved[0]
    assert rerun["node"] != lost_node_id
    # It started from what the lost worker had shipped back: finished episodes skipped, a
    # partial one resumed from its shipped prefix; only the rest ran fresh.
    assert rerun["skipped"] + rerun["resumed"] > 0
    assert rerun["skipped"] + rerun["resumed"] + rerun["fresh"] == rerun["episodes"]
    assert_single_machine_run(main, base)


def _count(path: Path) -> int:
    try:
        with Log.open(path, readonly=True) as log:
            return log.count()
    except LogError:
        return 0  # being created right now

"""Sharded rollouts on a real two-node Ray cluster on this machine (``ray.cluster_utils.Cluster``).

Ship, don't share: every test here checks the merged digest against the single-machine
run; the first also watches every process of the cluster (the workers and the sandbox
processes they start) while the run goes on, and fails if any of them has a file or its
working directory under the driver's directories.

Skipped when Ray is not installed (it is an optional extra: pip install 'scaleenv[ray]').
One cluster (two nodes of one CPU each, the smallest object stores Ray allows) serves
the whole module: starting one takes seconds.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import attrs
import msgspec
import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed (optional extra: pip install 'scaleenv[ray]')")
cluster_utils = pytest.importorskip("ray.cluster_utils", reason="this Ray has no ray.cluster_utils")

from scaleenv._cli import main as cli_main  # noqa: E402
from scaleenv._distributed import distributed_domains, distributed_rollouts  # noqa: E402
from scaleenv._shard_worker import LOCAL_PREFIX  # noqa: E402
from scaleenv._shards import shard_path, shards_dir  # noqa: E402
from scaleenv._store.log import Log  # noqa: E402

from scaleenv._runner import rollouts  # noqa: E402

from .conftest import (CONFIG, OPTIONS, Base, SimServers, bounded, calls_by_shard, episode_starts,  # noqa: E402
                       run_stages, sim_servers, stream_digests)

OBJECT_STORE_BYTES = 80 * 1024 * 1024  # just over Ray's minimum (75 MiB)


NODE_LLM = "SCALEENV_TEST_NODE_LLM"
"""Each node's own --llm (``--llm env:SCALEENV_TEST_NODE_LLM``): the head's is server A, the other's B."""


@pytest.fixture(scope="module")
def node_servers() -> Iterator[SimServers]:
    """Two sim servers for the module: each node's environment names one (:data:`NODE_LLM`)."""
    with sim_servers() as both:
        yield both


@pytest.fixture(scope="module", autouse=True)
def two_nodes(node_servers: SimServers) -> Iterator[object]:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    (url_a, _), (url_b, _) = node_servers
    cluster = cluster_utils.Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "object_store_memory": OBJECT_STORE_BYTES, "include_dashboard": False,
                        "env_vars": {NODE_LLM: f"openai:{url_a}"}},
    )
    cluster.add_node(num_cpus=1, object_store_memory=OBJECT_STORE_BYTES, env_vars={NODE_LLM: f"openai:{url_b}"})
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False, logging_level="ERROR")
    try:
        assert len([n for n in ray.nodes() if n["Alive"]]) == 2
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


# -- watching the cluster's processes ------------------------------------------------

def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def cluster_processes() -> set[int]:
    """Every descendant of a raylet: the Ray workers and whatever they started (sandbox processes)."""
    kids = _children()
    todo = [pid for pids in kids.values() for pid in pids if _comm(pid) == "raylet"]
    out: set[int] = set()
    while todo:
        for child in kids.get(todo.pop(), []):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def _paths_of(pid: int) -> list[str]:
    paths = []
    for name in ("cwd",):
        try:
            paths.append(os.readlink(f"/proc/{pid}/{name}"))
        except OSError:
            pass
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return paths
    for fd in fds:
        try:
            paths.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            pass
    return paths


@attrs.define
class Watch:
    """Samples the cluster's processes' open files and working directories until stopped."""

    forbidden: list[str]
    stop: threading.Event = attrs.field(factory=threading.Event)
    violations: set[tuple[int, str]] = attrs.field(factory=set)
    worker_logs: set[str] = attrs.field(factory=set)  # the workers' own shard logs, seen open
    samples: int = 0

    def run(self) -> None:
        while not self.stop.is_set():
            for pid in cluster_processes():
                if pid == os.getpid():
                    continue
                for path in _paths_of(pid):
                    if any(path == d or path.startswith(d + os.sep) for d in self.forbidden):
                        self.violations.add((pid, path))
                    if LOCAL_PREFIX in path and path.endswith("data.mdb"):
                        self.worker_logs.add(path)
            self.samples += 1
            self.stop.wait(0.02)


def test_two_nodes_no_shared_directory_same_digest(tmp_path: Path, base: Base,
                                                   tmp_path_factory: pytest.TempPathFactory,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    main = base.copy(tmp_path / "main")
    monkeypatch.chdir(tmp_path)  # the driver works in its own directory; the workers must not
    # Every directory of the driver's: this test's (the main log and its receiving logs) and
    # the package's (the stage-1/2 log and the single-machine run the digest comes from).
    watch = Watch(forbidden=[str(tmp_path_factory.getbasetemp().resolve())])
    watcher = threading.Thread(target=watch.run, daemon=True)
    watcher.start()
    try:
        # Small chunks (20 records): every shard ships its context and its episodes back in many.
        result = bounded(distributed_rollouts, str(main), CONFIG, OPTIONS, shards=2, executor="ray",
                         chunk_records=20)
    finally:
        watch.stop.set()
        watcher.join()
    assert result["digest"] == base.digest
    assert stream_digests(main) == base.streams
    assert set(episode_starts(main).values()) == {1}
    workers = result["distributed"]["workers"]
    assert len({w["node"] for w in workers}) == 2  # one shard on each node
    assert os.getpid() not in {w["pid"] for w in workers}
    for w in workers:
        back = w["shipped_back"]
        assert back["records"] == w["events"] and back["chunks"] > 1 and back["largest"] <= 20
        assert w["shipped_out_chunks"] > 1
    # The watch saw both workers' own logs open (in their temporary directories), so it
    # would have seen a file of the driver's: none was open, no worker worked in one.
    assert len(watch.worker_logs) >= 2, (watch.samples, watch.worker_logs)
    assert not any(p.startswith(str(tmp_path_factory.getbasetemp().resolve())) for p in watch.worker_logs)
    assert watch.violations == set()
    assert not shards_dir(main).exists()


def test_run_cli_on_the_cluster_gives_the_single_machine_digest(tmp_path: Path, base: Base,
                                                                 tmp_path_factory: pytest.TempPathFactory,
                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    # From a new log: `run --ray` spreads stage 1 (whole domains), stage 2 (tasks) and the
    # rollouts over the cluster, one stage after the other, and no worker touches the driver's files.
    main = tmp_path / "main"
    monkeypatch.chdir(tmp_path)
    args = ["run", "--log", str(main), "--seed", str(CONFIG.seed), "--domains", str(CONFIG.domains),
            "--tasks-per-domain", str(CONFIG.tasks_per_domain), "--episodes-per-task", str(CONFIG.episodes_per_task),
            "--no-sync", "--quiet", "--json", "--ray", "auto", "--shards", "2"]
    watch = Watch(forbidden=[str(tmp_path_factory.getbasetemp().resolve())])
    watcher = threading.Thread(target=watch.run, daemon=True)
    watcher.start()
    try:
        assert bounded(cli_main, args) == 0
    finally:
        watch.stop.set()
        watcher.join()
    result = json.loads(capsys.readouterr().out)
    assert result["digest"] == base.digest
    assert stream_digests(main) == base.streams
    domains, tasks, episodes = result["distributed_domains"], result["distributed_tasks"], result["distributed"]
    assert domains["kind"] == "domains" and domains["domains_assigned"] == CONFIG.domains
    assert tasks["kind"] == "tasks" and tasks["tasks_assigned"] == CONFIG.domains * CONFIG.tasks_per_domain
    assert episodes["kind"] == "episodes" and episodes["episodes_assigned"] == base.episodes
    assert result["distributed_episodes"] == episodes
    for d in (domains, tasks, episodes):
        assert d["executor"] == "ray" and d["shards"] == 2 and d["failures"] == []
        assert len({w["pid"] for w in d["workers"]}) == 2  # a process per shard, one on each node
        assert len({w["node"] for w in d["workers"]}) == 2
        assert os.getpid() not in {w["pid"] for w in d["workers"]}
    assert set(episode_starts(main).values()) == {1}
    assert not shards_dir(main).exists()
    assert len(watch.worker_logs) >= 2, (watch.samples, watch.worker_logs)
    assert watch.violations == set()


def test_a_killed_worker_is_rerun_and_repeats_nothing(tmp_path: Path, base: Base) -> None:
    main = base.copy(tmp_path / "main")
    # Each worker's process exits (os._exit, like a lost node) once the driver has stored 3
    # of its finished episodes, on its first attempt; the driver starts it again elsewhere.
    result = bounded(distributed_rollouts, str(main), CONFIG, OPTIONS, shards=2, executor="ray", fail_after=3,
                     max_retries=2, keep_shards=True)
    assert result["digest"] == base.digest
    assert stream_digests(main) == base.streams
    starts = episode_starts(main)
    assert len(starts) == base.episodes and set(starts.values()) == {1}
    for w in result["distributed"]["workers"]:
        assert w["attempt"] == 1  # the second attempt is the one that returned
        with Log.open(shard_path(main, w["index"]), readonly=True) as shard:
            attempts = shard.meta_get("attempts")
        assert len(attempts) == 2
        died, rerun = attempts
        assert died["finished"] is False and rerun["finished"] is True and died["pid"] != rerun["pid"]
        # What the dead worker shipped back finished was skipped; what it was in the middle of resumed.
        assert rerun["skipped"] >= 3
        assert rerun["skipped"] + rerun["resumed"] + rerun["fresh"] == w["episodes"] == died["fresh"]
        assert rerun["completed"] == w["episodes"] - rerun["skipped"]


def test_a_worker_killed_during_stage1_is_rerun_and_resumes_its_domain(tmp_path: Path, synth_only: Path) -> None:
    # One shard holds both domains; its process exits (os._exit, like a lost node) once the
    # driver has stored the first finished domain, on its first attempt; the second attempt
    # (on any node) skips what was shipped back finished and resumes the rest from its prefix.
    main = tmp_path / "main"
    result = bounded(distributed_domains, str(main), CONFIG, OPTIONS, shards=1, executor="ray", fail_after=1,
                     max_retries=2, keep_shards=True)
    assert stream_digests(main) == stream_digests(synth_only)
    (w,) = result["distributed"]["workers"]
    assert w["attempt"] == 1
    with Log.open(shard_path(main, 0), readonly=True) as shard:
        died, rerun = shard.meta_get("attempts")
    assert died["finished"] is False and rerun["finished"] is True and died["pid"] != rerun["pid"]
    assert died["fresh"] == CONFIG.domains and rerun["skipped"] >= 1
    assert rerun["skipped"] + rerun["resumed"] + rerun["fresh"] == CONFIG.domains


def test_recorded_llm_on_the_cluster_is_shipped_not_opened(tmp_path: Path, base: Base,
                                                           tmp_path_factory: pytest.TempPathFactory,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # --llm recorded:LOG names a log on the driver's disk: the driver reads it and ships each
    # shard the recorded calls of its own episodes through the object store; no worker opens it.
    main = base.copy(tmp_path / "main")
    monkeypatch.chdir(tmp_path)
    options = msgspec.structs.replace(OPTIONS, llm=f"recorded:{base.single}")
    watch = Watch(forbidden=[str(tmp_path_factory.getbasetemp().resolve())])
    watcher = threading.Thread(target=watch.run, daemon=True)
    watcher.start()
    try:
        result = bounded(distributed_rollouts, str(main), CONFIG, options, shards=2, executor="ray", chunk_records=16)
    finally:
        watch.stop.set()
        watcher.join()
    assert result["digest"] == base.digest
    assert stream_digests(main) == base.streams
    workers = result["distributed"]["workers"]
    assert len({w["node"] for w in workers}) == 2
    # Each worker was served exactly the recorded calls of its shard's episodes, shipped.
    assert {w["index"]: w["recorded_calls"] for w in workers} == calls_by_shard(base.single, 2)
    assert len(watch.worker_logs) >= 2, (watch.samples, watch.worker_logs)
    assert watch.violations == set()


def test_each_shard_on_its_own_model_server(tmp_path: Path, base: Base, node_servers: SimServers,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    # `scaleenv rollout --ray ... --shard-llm A --shard-llm B`: shard 0's worker calls server
    # A, shard 1's server B (one node each); the merged log is the one-machine run's against
    # one server, stream for stream.
    (url_a, a), (url_b, b) = node_servers
    options = msgspec.structs.replace(OPTIONS, llm=f"openai:{url_a}", model="scaleenv-sim-1")
    single = base.copy(tmp_path / "single")
    run_stages(single, rollouts, options=options)
    a.served = b.served = 0
    main = base.copy(tmp_path / "main")
    args = ["rollout", "--log", str(main), "--episodes-per-task", str(CONFIG.episodes_per_task), "--no-sync",
            "--quiet", "--json", "--ray", "auto", "--shards", "2", "--model", "scaleenv-sim-1",
            "--shard-llm", f"openai:{url_a}", "--shard-llm", f"openai:{url_b}"]
    assert bounded(cli_main, args) == 0
    result = json.loads(capsys.readouterr().out)
    assert stream_digests(main) == stream_digests(single)
    workers = result["distributed"]["workers"]
    assert len({w["node"] for w in workers}) == 2
    assert {w["index"]: w["llm"] for w in workers} == {0: f"openai:{url_a}", 1: f"openai:{url_b}"}
    calls = calls_by_shard(main, 2)
    assert calls[0] > 0 and calls[1] > 0 and (a.served, b.served) == (calls[0], calls[1])


def test_each_node_s_own_model_server_from_its_environment(tmp_path: Path, base: Base, node_servers: SimServers,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    # `--llm env:NAME`: each worker reads NAME on its node (the head's names server A, the
    # other node's B): each server served exactly the calls of the shard on its node.
    (url_a, a), (url_b, b) = node_servers
    main = base.copy(tmp_path / "main")
    a.served = b.served = 0
    args = ["rollout", "--log", str(main), "--episodes-per-task", str(CONFIG.episodes_per_task), "--no-sync",
            "--quiet", "--json", "--ray", "auto", "--shards", "2", "--model", "scaleenv-sim-1",
            "--llm", f"env:{NODE_LLM}"]
    assert bounded(cli_main, args) == 0
    result = json.loads(capsys.readouterr().out)
    workers = result["distributed"]["workers"]
    (head,) = [n["NodeID"] for n in ray.nodes() if n["Alive"] and "node:__internal_head__" in n["Resources"]]
    by_url = {f"openai:{url_a}": a, f"openai:{url_b}": b}
    assert {w["llm"] for w in workers} == set(by_url)  # one shard on each node, each its node's server
    for w in workers:
        assert w["llm"] == (f"openai:{url_a}" if w["node"] == head else f"openai:{url_b}")
    calls = calls_by_shard(main, 2)
    for w in workers:
        assert by_url[w["llm"]].served == calls[w["index"]] > 0

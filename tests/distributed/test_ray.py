"""Sharded rollouts on a real (local) Ray cluster: same digest; a killed worker is re-run without repeats.

Skipped when Ray is not installed (it is an optional extra: pip install 'scaleenv[ray]').
One local Ray instance serves the whole module (starting one takes seconds).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed (optional extra: pip install 'scaleenv[ray]')")

from scaleenv.cli import main as cli_main  # noqa: E402
from scaleenv.distributed import distributed_rollouts  # noqa: E402
from scaleenv.shards import shard_path, shards_dir  # noqa: E402
from scaleenv.store.log import Log  # noqa: E402

from .conftest import CONFIG, OPTIONS, Base, episode_starts, stream_digests  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        yield
    finally:
        ray.shutdown()


def test_ray_local_cli_gives_the_single_machine_digest(tmp_path: Path, base: Base,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    main = base.copy(tmp_path / "main")
    args = ["rollout", "--log", str(main), "--seed", str(CONFIG.seed), "--domains", str(CONFIG.domains),
            "--tasks-per-domain", str(CONFIG.tasks_per_domain), "--episodes-per-task", str(CONFIG.episodes_per_task),
            "--no-sync", "--quiet", "--json", "--ray", "local", "--shards", "2"]
    assert cli_main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["digest"] == base.digest
    assert stream_digests(main) == base.streams
    d = result["distributed"]
    assert d["executor"] == "ray" and d["shards"] == 2 and d["failures"] == []
    assert len({w["pid"] for w in d["workers"]}) == 2  # two worker processes, not this one
    assert os.getpid() not in {w["pid"] for w in d["workers"]}
    assert set(episode_starts(main).values()) == {1}
    assert not shards_dir(main).exists()


def test_a_killed_worker_is_rerun_and_repeats_nothing(tmp_path: Path, base: Base) -> None:
    main = base.copy(tmp_path / "main")
    # Each worker's process exits (os._exit, like a lost node) after 3 finished episodes on its first attempt.
    result = distributed_rollouts(str(main), CONFIG, OPTIONS, shards=2, executor="ray", fail_after=3,
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
        # What the dead worker finished was skipped; what it was in the middle of was resumed.
        assert rerun["skipped"] >= 3
        assert rerun["skipped"] + rerun["resumed"] + rerun["fresh"] == w["episodes"] == died["fresh"]
        assert rerun["completed"] == w["episodes"] - rerun["skipped"]

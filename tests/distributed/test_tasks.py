"""Stage 2 over shard workers (in-process, no Ray): the same task streams and digest as one machine."""

from __future__ import annotations

import shutil
from pathlib import Path

from scaleenv._distributed import distributed_rollouts, distributed_tasks
from scaleenv._shards import shards_dir

from .conftest import CONFIG, OPTIONS, Base, bounded, stream_digests


def test_sharded_stage2_then_rollouts_give_the_single_machine_digest(tmp_path: Path, base: Base,
                                                                      synth_only: Path) -> None:
    main = shutil.copytree(synth_only, tmp_path / "main")
    tasks = bounded(distributed_tasks, str(main), CONFIG, OPTIONS, shards=3, executor="inprocess",
                    chunk_records=64)
    d = tasks["distributed"]
    assert d["kind"] == "tasks" and d["failures"] == []
    assert d["tasks_assigned"] == CONFIG.domains * CONFIG.tasks_per_domain and d["tasks_already_done"] == 0
    assert sum(w["fresh"] for w in d["workers"]) == d["tasks_assigned"]
    assert not shards_dir(main).exists()
    # Stages 1 and 2 as one machine made them: every stream the same.
    assert stream_digests(main) == stream_digests(base.tasks)
    # Again: every task is finished, nothing runs.
    again = bounded(distributed_tasks, str(main), CONFIG, OPTIONS, shards=2, executor="inprocess")
    assert again["distributed"]["tasks_assigned"] == 0 and again["distributed"]["merge"]["events_merged"] == 0
    # And the episodes on top: the single-machine run's digest.
    result = bounded(distributed_rollouts, str(main), CONFIG, OPTIONS, shards=2, executor="inprocess")
    assert result["digest"] == base.digest
    assert stream_digests(main) == base.streams

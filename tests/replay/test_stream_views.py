"""``show task`` and ``show domain`` read only the streams asked about (the per-stream
index): what they fold equals what the whole log's fold says about that task or domain."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scaleenv._cli import main as cli
from scaleenv._replay.episode_state import domain_view, find_domain, task_ids, task_view
from scaleenv._replay.projection import fold
from scaleenv._store.log import Log
from tests.replay.goldens import GENERATIONS, golden_log, load_prefix

DOMAIN_FIELDS = ("slot", "name", "spec", "status", "edges", "verified", "rejected", "groups", "judged", "dropped")


@pytest.mark.parametrize("generation", GENERATIONS)
def test_a_task_or_domain_from_its_own_streams_equals_the_whole_fold(generation: str, tmp_path: Path) -> None:
    path = tmp_path / "log.lmdb"
    load_prefix(golden_log(generation), 10**9, path)
    with Log.open(path, readonly=True) as log:
        whole = fold(log.read())
        assert whole.tasks and whole.domains
        assert task_ids(log) == sorted(whole.tasks) and task_ids(log, 1) == sorted(whole.tasks)[:1]
        for tid, task in whole.tasks.items():
            assert task_view(log, tid) == task
        assert task_view(log, "d99/t000") is None
        for slot, d in whole.domains.items():
            own = domain_view(log, slot)
            assert own is not None
            assert {f: getattr(own, f) for f in DOMAIN_FIELDS} == {f: getattr(d, f) for f in DOMAIN_FIELDS}
            for name in (slot, d.name):
                found, _ = find_domain(log, name)
                assert found is not None and found.slot == whole.domain_by_name(name).slot  # type: ignore[union-attr]
        missing, names = find_domain(log, "no such domain")
        assert missing is None and names == [whole.domains[s].name or s for s in sorted(whole.domains)]


def test_show_prints_what_the_whole_fold_holds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "log.lmdb"
    load_prefix(golden_log(), 10**9, path)
    with Log.open(path, readonly=True) as log:
        whole = fold(log.read())
    tid = sorted(whole.tasks)[0]
    assert cli(["show", "task", tid, "--log", str(path), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    task = whole.tasks[tid]
    assert (shown["task_id"], shown["status"], shown["chain"], shown["instruction"]) == \
        (task.task_id, task.status, task.chain, task.instruction)
    assert shown["initial_state"] == json.loads(json.dumps(task.initial_state, default=str))
    slot = sorted(whole.domains)[0]
    assert cli(["show", "domain", whole.domains[slot].name, "--log", str(path), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["slot"], shown["verified"], len(shown["edges"])) == (slot, whole.domains[slot].verified,
                                                                       len(whole.domains[slot].edges))
    assert cli(["show", "task", "d99/t000", "--log", str(path)]) == 2
    assert f"tasks look like {sorted(whole.tasks)[:8]}" in capsys.readouterr().err

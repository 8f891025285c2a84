"""The gate's feasibility g(D) from oracle rollouts (issue 16, item 3): a policy told the
solution runs through the episode code on candidate goals, its events in the task's stream,
and g is its success rate over ``gate_k`` rollouts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

from scaleenv._agents.rollout import oracle as oracle_mod
from scaleenv._agents.rollout.oracle import OracleCase, oracle_rollout
from scaleenv._config import RunConfig
from scaleenv._model import program as prog
from scaleenv._model.state import apply_delta
from scaleenv._replay.projection import fold
from scaleenv._runner import EngineOptions, open_run, open_verify, project, stage1, stage2
from scaleenv._store.events import Ref
from scaleenv._store.events.episodes import MessageSent, ToolExecuted
from scaleenv._store.events.llm import LlmCalled
from scaleenv._store.events.tasks import GateDecided, OracleEnded, OracleStarted
from scaleenv._store.log import Log
from scaleenv._streams import task_stream
from tests.conftest import copy_log

from .conftest import run_pipeline


def _task_records(path: Path) -> dict[str, list[Any]]:
    with Log.open(path, readonly=True) as log:
        out: dict[str, list[Any]] = {}
        for r in log.read():
            if r.stream.startswith("task/"):
                out.setdefault(r.stream, []).append(r)
        return out


def test_gate_decisions_name_the_oracle_rollouts_they_measured(template: Path) -> None:
    """Every gate decision's g is the success rate of the rollouts it names, which are in the
    task's stream (started, a conversation with tool calls, ended), and the gate's model call
    is caused by the last of them."""
    gates = 0
    for stream, records in _task_records(template).items():
        by_n = {r.n: r for r in records}
        for r in records:
            if not isinstance(r.event, GateDecided):
                continue
            gates += 1
            ends = [by_n[n].event for n in r.event.oracle]
            assert ends and all(isinstance(e, OracleEnded) for e in ends)
            assert r.event.feasibility == round(sum(e.success for e in ends) / len(ends), 4)
            call = by_n[r.cause.n]
            assert isinstance(call.event, LlmCalled) and call.event.role == "gate"
            assert call.cause == Ref(stream, r.event.oracle[-1])
        for r in records:
            if isinstance(r.event, OracleStarted):
                after = [x for x in records if x.n > r.n]
                end = next(x for x in after if isinstance(x.event, OracleEnded))
                between = [x.event for x in after if x.n < end.n]
                assert end.event.rollout == r.event.rollout and end.event.goal == r.event.goal
                assert any(isinstance(e, LlmCalled) and e.role == "oracle" for e in between)
                assert any(isinstance(e, MessageSent) and e.role == "assistant" for e in between)
                assert sum(isinstance(e, ToolExecuted) for e in between) == end.event.tool_calls
    assert gates


@pytest.mark.parametrize("mode", ["oracle", "realize"])
def test_the_gate_decides_in_either_feasibility_mode(tmp_path: Path, mode: str) -> None:
    """tau = 1: p never reaches it (every task stops at min_goals); tau = 0: the gate always
    goes on while a candidate realized. In realize mode no oracle runs."""
    def run(name: str, tau: float) -> Any:
        path = tmp_path / name
        run_pipeline(path, RunConfig(seed=7, domains=1, tasks_per_domain=2, episodes_per_task=0, min_tools=20,
                                     max_tools=24, min_goals=2, max_goals=5, min_env_tools=10, gate_tau=tau,
                                     gate_feasibility=mode), noise=0.0)
        with Log.open(path, readonly=True) as log:
            records = list(log.read())
        return fold(records), records

    (strict, s_records), (loose, l_records) = run("strict", 1.0), run("loose", 0.0)
    kept_s = [t for t in strict.tasks.values() if t.status == "kept"]
    kept_l = [t for t in loose.tasks.values() if t.status == "kept"]
    assert kept_s and all(t.goals == 2 for t in kept_s) and any(t.gate for t in kept_s)
    assert all(g.more is False for t in kept_s for g in t.gate)
    assert max(t.goals for t in kept_l) > 2
    oracle_events = [r for r in s_records + l_records if isinstance(r.event, OracleEnded)]
    if mode == "realize":
        assert not oracle_events and all(not g.oracle for t in kept_l for g in t.gate)
    else:
        assert oracle_events and all(len(g.oracle) == 2 for t in kept_l for g in t.gate)  # gate_k rollouts


def test_a_candidate_that_cannot_succeed_makes_g_below_one(template: Path, tmp_path: Path) -> None:
    """Two rollouts of a kept task's first goal (noise off): told a solution that reaches the
    expected state, the oracle succeeds; asked for a state its solution cannot reach, it
    fails; so g = 1/2."""
    path = copy_log(template, tmp_path / "log")
    with Log.open(path, readonly=True) as log:
        view = project(log)
    task = next(t for t in view.tasks.values() if t.status == "kept")
    domain = view.domains[task.slot]
    assert task.golden is not None and task.initial_state is not None
    end = task.goal_ends[0]
    steps = task.golden.steps[:end]
    expected = task.initial_state
    for s in steps:
        expected = apply_delta(expected, s.delta)
    solution = prog.render([prog.Step(tool=s.tool, args=dict(s.args)) for s in steps])
    good = OracleCase(goal=0, goal_tool=steps[-1].tool, solution=solution, steps=len(steps), state=task.initial_state,
                      expected=expected, expected_result=steps[-1].result, tools=tuple(task.env_tools))
    table = next(t for t, rows in expected.items() if rows)
    unreachable = {**expected, table: {k: v for k, v in list(expected[table].items())[1:]}}  # a record gone
    bad = OracleCase(goal=0, goal_tool=good.goal_tool, solution=solution, steps=len(steps), state=task.initial_state,
                     expected=unreachable, expected_result=good.expected_result, tools=good.tools)

    async def main() -> list[bool]:
        async with open_run(str(path), {}, EngineOptions(progress=False, sync=False, noise=0.0)) as ctx:
            stream = ctx.stream(task_stream(f"{task.slot}/t900"))
            out = []
            for k, case in enumerate((good, bad)):
                ok, _ = await oracle_rollout(ctx, domain, stream, f"{task.slot}/t900", case, k, cause=None)
                out.append(ok)
            stream.finish()
            return out

    results = trio.run(main)
    assert results == [True, False]
    assert sum(results) / len(results) < 1


def test_same_seed_same_oracle_events(tmp_path: Path) -> None:
    config = RunConfig(seed=11, domains=1, tasks_per_domain=2, episodes_per_task=0, min_tools=20, max_tools=24,
                       min_goals=2, max_goals=4, min_env_tools=10)
    a, b = run_pipeline(tmp_path / "a", config), run_pipeline(tmp_path / "b", config)
    assert a["digest"] == b["digest"]
    ra, rb = _task_records(tmp_path / "a"), _task_records(tmp_path / "b")
    assert any(isinstance(r.event, OracleEnded) for records in ra.values() for r in records)
    oracle_kinds = (OracleStarted, OracleEnded, MessageSent, ToolExecuted)
    assert {s: [(r.n, r.cause, r.event) for r in rs if isinstance(r.event, oracle_kinds)] for s, rs in ra.items()} == \
        {s: [(r.n, r.cause, r.event) for r in rs if isinstance(r.event, oracle_kinds)] for s, rs in rb.items()}
    with Log.open(tmp_path / "a", readonly=True) as la, Log.open(tmp_path / "b", readonly=True) as lb:
        assert fold(la.read()).stream_digests() == fold(lb.read()).stream_digests()


def _rerun(path: Path) -> tuple[list[Any], int]:
    """Stages 1 and 2 re-run against the log's recorded model outputs: (divergences, events checked)."""
    async def main() -> tuple[list[Any], int]:
        async with open_verify(str(path), EngineOptions(progress=False, llm=f"recorded:{path}")) as ctx:
            for stage in (stage1, stage2):
                await stage(ctx)
            return ctx.divergences, sum(s.next_n for s in ctx.streams_run)

    return trio.run(main)


def test_a_recorded_replay_of_a_run_with_the_oracle_gives_the_same_digest(template: Path, tmp_path: Path,
                                                                          monkeypatch: Any) -> None:
    path = copy_log(template, tmp_path / "log")
    divergences, checked = _rerun(path)
    assert divergences == []
    with Log.open(path, readonly=True) as log:
        assert checked == log.count()  # every event re-made identically: the same stream digests
        assert any(isinstance(r.event, OracleEnded) for r in log.read())
    # The oracle's calls are replayed from the recording: a changed oracle prompt diverges in a task stream.
    monkeypatch.setattr(oracle_mod, "ORACLE_INSTRUCTIONS", oracle_mod.ORACLE_INSTRUCTIONS + " Be quick.")
    changed, _ = _rerun(path)
    assert changed and all(d.stream.startswith("task/") for d in changed)

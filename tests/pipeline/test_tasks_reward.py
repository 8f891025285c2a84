"""Stage 2 and the reward: kept tasks are solvable, and the reward tells right from wrong."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

from scaleenv._replay.projection import RunView, fold
from scaleenv._model.reward import score
from scaleenv._model.state import apply_delta, canonical, compute_delta, state_digest
from scaleenv._sandbox import SandboxPool
from scaleenv._store.log import Log
from scaleenv._store.specs import DbState


@pytest.fixture(scope="module")
def view(small_run: tuple[Path, dict[str, Any]]) -> RunView:
    with Log.open(small_run[0], readonly=True) as log:
        return fold(log.read())


def test_every_kept_task_is_proven_and_replays_to_its_expected_state(view: RunView) -> None:
    kept = [t for t in view.tasks.values() if t.status == "kept"]
    assert kept
    for task in kept:
        assert task.golden is not None and task.initial_state is not None and task.expected_final is not None
        assert task.instruction and task.chain and len(task.golden.steps) == len(task.chain)
        state = task.initial_state
        for step in task.golden.steps:
            state = apply_delta(state, step.delta)
        assert state_digest(state) == task.golden.final_digest == state_digest(task.expected_final)
        for name in task.chain:  # the instruction never leaks the tool sequence
            assert name not in task.instruction


def test_every_listed_distractor_exists_in_the_initial_state(view: RunView) -> None:
    listed = 0
    for task in view.tasks.values():
        if task.initial_state is None:
            continue
        for table, key in task.distractors:
            assert key in task.initial_state.get(table, {}), (task.task_id, table, key)
            assert (table, key) not in task.needed
            listed += 1
    assert listed >= 3  # the run made several, so the check means something


def test_golden_chain_reexecuted_in_the_sandbox_reproduces_the_expected_state(view: RunView) -> None:
    async def main() -> None:
        async with SandboxPool(workers=1) as pool:
            for task in (t for t in view.tasks.values() if t.status == "kept"):
                domain = view.domains[task.slot]
                await pool.open_session(task.task_id, domain.verified_code(), task.initial_state)
                for step in task.golden.steps:  # type: ignore[union-attr]
                    outcome = await pool.call(task.task_id, step.tool, step.args)
                    assert outcome.ok, (task.task_id, step.tool, outcome.error)
                final = await pool.get_state(task.task_id)
                assert state_digest(final) == task.golden.final_digest  # type: ignore[union-attr]

    trio.run(main)


def _goal_with_distractor(view: RunView) -> tuple[Any, int, str, str]:
    """(task, index of a mutating goal's last step, its parameter naming the target, a look-alike of the target)."""
    for task in sorted(view.tasks.values(), key=lambda t: t.task_id):
        if task.status != "kept" or not task.distractors:
            continue
        spec = view.domains[task.slot].spec
        for end in task.goal_ends or [len(task.golden.steps)]:
            step = task.golden.steps[end - 1]
            tool = spec.tool(step.tool)  # type: ignore[union-attr]
            if not tool.mutates:
                continue
            for table, key in task.distractors:
                param = next((p.name for p in tool.params if p.ref == table and p.name in step.args), None)
                if param is not None:
                    return task, end - 1, param, key
    pytest.skip("no kept task with a distractor of a mutating goal in this run")


def test_reward_is_one_for_the_golden_chain_zero_for_a_distractor_or_nothing(view: RunView) -> None:
    task, at, target_param, distractor_key = _goal_with_distractor(view)
    domain = view.domains[task.slot]
    goal = task.golden.steps[at]
    expected = task.expected_final
    answers = task.golden.expected_answers

    assert score(expected, expected, answers, answers).reward == 1.0

    nothing = score(expected, task.initial_state, answers, [])
    assert nothing.reward == 0.0 and nothing.diff

    # The same goal call on a look-alike record (the distractor) instead of the target; the
    # other goals as the golden chain does them.
    wrong_args = {**goal.args, target_param: distractor_key}

    async def act() -> DbState:
        async with SandboxPool(workers=1) as pool:
            await pool.open_session("wrong", domain.verified_code(), task.initial_state)
            for i, step in enumerate(task.golden.steps):
                await pool.call("wrong", step.tool, wrong_args if i == at else step.args)
            return await pool.get_state("wrong")

    acted = trio.run(act)
    wrong = score(expected, acted, answers, answers)
    assert wrong.reward == 0.0
    # The diff names what differs: the target left as it was, the look-alike changed, or a
    # record the call created pointing at the look-alike instead of the target.
    assert wrong.diff and any(k in line for line in wrong.diff
                              for k in (f"[{goal.args[target_param]}]", f"[{distractor_key}]", distractor_key)), wrong.diff


def test_canonical_state_ignores_key_order_int_vs_float_and_reads() -> None:
    a = {"orders": {"o1": {"total": 25, "status": "pending"}, "o2": {"total": 3.5}}}
    b = {"orders": {"o2": {"total": 3.5}, "o1": {"status": "pending", "total": 25.0}}}
    assert state_digest(a) == state_digest(b)
    assert canonical(25.0) == 25 and canonical(-0.0) == 0
    assert compute_delta(a, b) == []  # a read-only call (no change) leaves no delta...
    assert state_digest(apply_delta(a, [])) == state_digest(a)  # ...and no digest change
    c = {"orders": {"o1": {"total": 26, "status": "pending"}, "o2": {"total": 3.5}}}
    assert state_digest(a) != state_digest(c)
    assert score(a, b, [], []).reward == 1.0
    bad = score(a, c, [], [])
    assert bad.reward == 0.0 and bad.diff == ["orders[o1].total: expected 25, got 26"]


def test_required_answers_must_be_told_to_the_user() -> None:
    s = {"t": {}}
    assert score(s, s, ["Lisbon"], ["Your order ships to lisbon."]).reward == 1.0
    missing = score(s, s, ["Lisbon"], ["It ships soon."])
    assert missing.reward == 0.0 and "Lisbon" in missing.diff[0] and missing.breakdown["state"] == 1.0

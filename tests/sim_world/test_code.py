"""Coder code satisfies its contract; every injected bug kind is caught by some case."""

from __future__ import annotations

import copy
import random

import pytest

from scaleenv._agents.sim.world.codegen import BUG_KINDS, applicable_bugs, generate
from scaleenv._agents.sim.world.states import make_state
from scaleenv._agents.sim.world.testplan import plan_cases
from scaleenv._model.contracts import check_post, check_pre
from scaleenv._model.satisfy import satisfy

from .helpers import call, composed, failures

try:
    from scaleenv._sandbox import check_source
except ImportError:  # pragma: no cover - the sandbox is another engineer's work
    check_source = None

SAMPLE = range(0, 30, 3)  # ten themes of the catalogue, ~40 tools each


@pytest.mark.parametrize("index", SAMPLE)
def test_bug_free_code_satisfies_contract(index: int) -> None:
    d = composed(index)
    state = make_state(d, random.Random(index))
    rng = random.Random(index)
    for tool in d.tools:
        code = generate(d, tool).code
        compile(code, tool.name, "exec")
        if check_source is not None:
            assert check_source(code, tool.name) == [], (tool.name, code)
        cases = plan_cases(d, tool, state, rng)
        # a valid call exists: the tester found one, or the contract solver makes one
        assert any(c["expect"] == "ok" for c in cases) or satisfy(d, tool, state, rng) is not None, tool.name
        if any(c.when == "pre" for c in tool.contract):  # a tool with no pre-condition never refuses
            assert any(c["expect"] == "error" for c in cases), tool.name
        assert failures(code, tool, state, cases) == [], (tool.name, code)
        for case in cases:  # the contract itself, independent of the tester's labels
            db = copy.deepcopy(state)
            outcome, result = call(code, tool.name, db, case["args"])
            if check_pre(tool, case["args"], state):
                assert outcome == "error" and db == state, (tool.name, case)
            else:
                assert outcome in ("ok", "error"), (tool.name, case)
                if outcome == "ok":
                    assert check_post(tool, case["args"], state, db, result) == [], (tool.name, case)


def test_new_keys_come_from_the_state() -> None:
    d = composed(12)
    state = make_state(d, random.Random(1))
    tool = next(t for t in d.tools if t.name.startswith(("place_", "create_")) and t.writes[0] == "applications")
    table = d.table(tool.writes[0])
    cases = [c for c in plan_cases(d, tool, state, random.Random(1)) if c["expect"] == "ok"]
    results = []
    for _ in range(2):
        db = copy.deepcopy(state)
        outcome, result = call(generate(d, tool).code, tool.name, db, cases[0]["args"])
        assert outcome == "ok", result
        key = result[table.primary_key]
        assert key in db[table.name] and key not in state[table.name] and db[table.name][key][table.primary_key] == key
        results.append(result)
    assert results[0] == results[1]


def test_every_bug_kind_is_caught() -> None:
    caught = {k: 0 for k in BUG_KINDS}
    seen = {k: 0 for k in BUG_KINDS}
    for index in range(0, 30, 5):
        d = composed(index)
        state = make_state(d, random.Random(index))
        for tool in d.tools:
            cases = plan_cases(d, tool, state, random.Random(index))
            for kind in applicable_bugs(d, tool):
                buggy = generate(d, tool, kind, random.Random(index))
                assert buggy.code != generate(d, tool).code
                compile(buggy.code, tool.name, "exec")
                if check_source is not None:
                    assert check_source(buggy.code, tool.name) == [], buggy.code
                seen[kind] += 1
                if failures(buggy.code, tool, state, cases):
                    caught[kind] += 1
    for kind in BUG_KINDS:
        assert seen[kind] > 0 and caught[kind] / seen[kind] > 0.8, (kind, caught, seen)

"""Issue "Tool contracts": every sim tool has a contract the engine can test and the graph can use."""

from __future__ import annotations

import copy
import random

import pytest

from scaleenv._agents.sim.world.codegen import generate
from scaleenv._agents.sim.world.states import make_state
from scaleenv._model.contracts import check_post, evaluate, render
from scaleenv._model.graph import derive_edges
from scaleenv._model.satisfy import satisfy, violate
from scaleenv._model.specs_check import validate_domain

from .helpers import call, composed

ALL = [composed(i, tools=t, seed=s) for i in range(30) for t, s in ((28, 1), (60, 2))]


def test_every_tool_of_every_domain_has_a_valid_contract() -> None:
    assert len({d.name for d in ALL}) == 30
    for d in ALL:
        assert validate_domain(d) == [], d.name
        for tool in d.tools:
            assert tool.contract, (d.name, tool.name)


def test_lookup_creation_and_listing_contracts() -> None:
    kinds = {"find": 0, "create": 0, "list": 0, "count": 0}
    for d in ALL:
        for tool in d.tools:
            texts = {render(c) for c in tool.contract}
            if tool.name.startswith("find_"):
                field = tool.params[0].name
                assert any(t.startswith("some ") and t.endswith(f"[*].{field} == ${field}") for t in texts), tool.name
                kinds["find"] += 1
            created = [c for c in tool.contract if c.when == "post" and c.op == "exists" and "$result." in c.left]
            if created:
                table = d.table(created[0].left.split("[", 1)[0])
                assert table is not None and any(p.ref for p in tool.params) or not any(f.ref for f in table.fields)
                status = table.field("status")
                if status is not None:
                    assert f'after: {table.name}[$result.{table.primary_key}].status == "{status.enum[0]}"' in texts or \
                        any("status ==" in t and "$result" in t for t in texts), tool.name
                kinds["create"] += 1
            if any(c.op.startswith("selects_") for c in tool.contract):
                assert tool.returns_list, tool.name
                kinds["list"] += 1
            if any("count(" in str(c.right) for c in tool.contract):
                kinds["count"] += 1
    assert all(n > 20 for n in kinds.values()), kinds


@pytest.mark.parametrize("chunk", range(8))
def test_bug_free_code_meets_every_post_and_refuses_every_violation(chunk: int) -> None:
    """On contract-derived calls (engine/satisfy.py): all posts hold, with $result; every pre can be broken and is refused."""
    for index, d in list(enumerate(ALL))[chunk::8]:
        rng = random.Random(index)
        state = make_state(d, rng)
        for tool in d.tools:
            code = generate(d, tool).code
            solved = satisfy(d, tool, state, rng)
            assert solved is not None, (d.name, tool.name)
            args, before = solved
            after = copy.deepcopy(before)
            outcome, result = call(code, tool.name, after, args)
            assert outcome == "ok", (d.name, tool.name, args, result)
            assert check_post(tool, args, before, after, result) == [], (d.name, tool.name, args, result)
            for i, cond in enumerate(tool.contract):
                if cond.when != "pre":
                    continue
                broken = violate(d, tool, i, args, before, rng)
                assert broken is not None, (d.name, tool.name, render(cond))
                vargs, vdb = broken
                assert not evaluate(cond, vargs, vdb).holds
                db = copy.deepcopy(vdb)
                outcome, message = call(code, tool.name, db, vargs)
                assert outcome == "error" and db == vdb, (d.name, tool.name, render(cond), outcome, message)


def test_every_domain_has_state_edges_from_creation() -> None:
    for d in ALL:
        edges = derive_edges(d, [t.name for t in d.tools])
        state = [e for e in edges if e.kind == "state"]
        assert state, d.name
        assert any("creates" in e.why for e in state), d.name
        assert {e.kind for e in edges} >= {"data", "state"}

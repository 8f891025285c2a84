"""Issue "Tool contracts": every sim tool has a contract the engine can test and the graph can use."""

from __future__ import annotations

import copy
import random

import pytest

from scaleenv.agents.sim.world.codegen import generate
from scaleenv.agents.sim.world.states import make_state
from scaleenv.agents.sim.world.vocab import COMBOS, VOCABULARY_SIZE, build_domain
from scaleenv.model.contracts import check_post, evaluate, render, validate_contract
from scaleenv.model.graph import derive_edges
from scaleenv.model.satisfy import satisfy, violate
from scaleenv.store.specs import DomainSpec

from .helpers import call

ALL = [build_domain(c) for c in COMBOS]


def _creation_and_lookup(d: DomainSpec) -> tuple[str, str, str, str]:
    s = next(c for c in COMBOS if c.name == d.name).sector
    return f"{s.create_verb}_{s.txn_one}", f"find_{s.party_one}_by_email", s.txn, s.party


def test_every_tool_of_every_domain_has_a_valid_contract() -> None:
    assert len(ALL) == VOCABULARY_SIZE == 312
    for d in ALL:
        for tool in d.tools:
            assert tool.contract, (d.name, tool.name)
            assert validate_contract(d, tool) == [], (d.name, tool.name)


def test_lookup_and_creation_contracts() -> None:
    for d in ALL:
        create, find, T, P = _creation_and_lookup(d)
        txn = d.table(T)
        party = d.table(P)
        pk = txn.primary_key
        texts = {render(c) for c in d.tool(find).contract}
        assert f"some {P}[*].email == $email" in texts, d.name
        assert f"after: {P}[$result.{party.primary_key}].email == $email" in texts, d.name
        texts = {render(c) for c in d.tool(create).contract}
        initial = txn.field("status").enum[0]
        assert f"after: exists {T}[$result.{pk}]" in texts, d.name
        assert f'after: {T}[$result.{pk}].status == "{initial}"' in texts, d.name
        for p in d.tool(create).params:
            if p.ref:
                fk = next(f.name for f in txn.fields if f.ref == p.ref)
                assert f"after: {T}[$result.{pk}].{fk} == ${p.name}" in texts, (d.name, p.name)
        # The status a new record gets is one the cancel tool accepts.
        cancel = d.tool(f"cancel_{txn.primary_key[:-3]}")
        assert cancel is not None
        allowed = next(c.right for c in cancel.contract if c.when == "pre" and c.op == "in")
        assert initial in allowed, d.name


@pytest.mark.parametrize("chunk", range(8))
def test_bug_free_code_meets_every_post_and_refuses_every_violation(chunk: int) -> None:
    """On contract-derived calls (engine/satisfy.py): all posts hold, with $result; every pre can be broken and is refused."""
    for combo in COMBOS[chunk::8]:
        d = build_domain(combo)
        rng = random.Random(combo.index)
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
        create, _, T, _ = _creation_and_lookup(d)
        edges = derive_edges(d, [t.name for t in d.tools])
        state = [e for e in edges if e.kind == "state"]
        assert state, d.name
        cancel = f"cancel_{d.table(T).primary_key[:-3]}"
        initial = d.table(T).field("status").enum[0]
        for name in (cancel, f"pay_{d.table(T).primary_key[:-3]}"):
            if d.tool(name) is None:
                continue
            # create -> cancel/pay: the new record exists, and its status is one they require.
            edge = [e for e in state if e.src == create and e.dst == name]
            assert len(edge) == 1, (d.name, name)
            assert f"creates {T} records" in edge[0].why and f"status to {initial!r}" in edge[0].why, edge[0].why

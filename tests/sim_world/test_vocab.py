"""The architect's vocabulary: hundreds of distinct, rule-abiding domains with long chains."""

from __future__ import annotations

import networkx as nx
import pytest

from scaleenv.agents.sim.world.vocab import COMBOS, VOCABULARY_SIZE, build_domain, domain_for
from scaleenv.model.contracts import validate_contract
from scaleenv.store.specs import DomainSpec

try:
    from scaleenv.model.specs_check import validate_domain
except ImportError:  # pragma: no cover
    validate_domain = None

try:
    from scaleenv.sandbox.policy import FORBIDDEN_NAMES
except ImportError:  # pragma: no cover - the sandbox is another engineer's work
    FORBIDDEN_NAMES = frozenset()

ALL = [build_domain(c) for c in COMBOS]


def spec_problems(d: DomainSpec) -> list[str]:
    problems = list(validate_domain(d)) if validate_domain is not None else []
    tables = [t.name for t in d.tables]
    if len(set(tables)) != len(tables):
        problems.append("duplicate table")
    tools = [t.name for t in d.tools]
    if len(set(tools)) != len(tools):
        problems.append("duplicate tool")
    for t in d.tables:
        names = [f.name for f in t.fields]
        if len(set(names)) != len(names) or t.primary_key not in names:
            problems.append(f"table {t.name}: fields/pk")
        for f in t.fields:
            if f.ref is not None and d.table(f.ref) is None:
                problems.append(f"{t.name}.{f.name}: bad ref")
            if f.name in FORBIDDEN_NAMES:
                problems.append(f"{t.name}.{f.name}: forbidden name")
    for tool in d.tools:
        problems += validate_contract(d, tool)
        for p in tool.params:
            if p.ref is not None and d.table(p.ref) is None:
                problems.append(f"{tool.name}.{p.name}: bad ref")
            if p.name in FORBIDDEN_NAMES:
                problems.append(f"{tool.name}.{p.name}: forbidden name")
        if any(d.table(n) is None for n in tool.reads + tool.writes) or not set(tool.writes) <= set(tool.reads):
            problems.append(f"{tool.name}: reads/writes")
        if tool.mutates != bool(tool.writes):
            problems.append(f"{tool.name}: mutates flag")
        fields = {f.name for n in tool.reads for f in d.table(n).fields} if all(d.table(n) for n in tool.reads) else set()
        if not {f.name for f in tool.returns} <= fields:
            problems.append(f"{tool.name}: returns unknown fields")
        if not 6 <= len(d.tools) <= 10 or not 3 <= len(d.tables) <= 5:
            problems.append("size")
    return problems


def data_flow(d: DomainSpec) -> nx.DiGraph:
    g = nx.DiGraph()
    g.add_nodes_from(t.name for t in d.tools)
    for a in d.tools:
        outs = {f.name for f in a.returns}
        for b in d.tools:
            if a.name != b.name and outs & {p.name for p in b.params if p.ref}:
                g.add_edge(a.name, b.name)
    return g


def longest_simple_path(g: nx.DiGraph, cap: int = 4) -> int:
    best = 1
    def walk(node: str, seen: set[str]) -> None:
        nonlocal best
        best = max(best, len(seen))
        if best >= cap:
            return
        for nxt in g.successors(node):
            if nxt not in seen:
                walk(nxt, seen | {nxt})
    for n in g.nodes:
        walk(n, {n})
    return best


def test_vocabulary_is_large_and_names_distinct() -> None:
    assert VOCABULARY_SIZE >= 200
    names = {d.name for d in ALL}
    assert len(names) == VOCABULARY_SIZE
    digests = {repr(d) for d in ALL}
    assert len(digests) == VOCABULARY_SIZE


@pytest.mark.parametrize("seed", [0, 7])
def test_slots_give_distinct_domains(seed: int) -> None:
    names = [domain_for(slot, seed).name for slot in range(VOCABULARY_SIZE + 10)]
    assert len(set(names)) == len(names)
    assert names[:5] != [domain_for(slot, seed + 1).name for slot in range(5)]


def test_every_spec_is_valid_and_chains() -> None:
    for d in ALL:
        assert spec_problems(d) == [], d.name
        assert longest_simple_path(data_flow(d)) >= 3, d.name

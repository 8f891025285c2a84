"""The dependency graph's layered layout: deterministic, forward where it can be, readable."""

from __future__ import annotations

import itertools

from scaleenv._ui.layout import layered


def _positions(layout) -> set[tuple[int, int]]:
    return {(p.x, p.y) for p in layout.nodes.values()}


def test_a_chain_flows_left_to_right() -> None:
    layout = layered(["c", "a", "b", "d"], [("a", "b"), ("b", "c"), ("c", "d")])
    assert [layout.nodes[n].column for n in "abcd"] == [0, 1, 2, 3]
    assert not layout.reversed_edges


def test_cycles_are_broken_and_every_node_has_its_own_place() -> None:
    nodes = [f"t{i}" for i in range(12)]
    edges = [(a, b) for a, b in itertools.permutations(nodes[:6], 2) if (int(a[1:]) + int(b[1:])) % 3]
    edges += [("t6", "t7"), ("t7", "t6"), ("t8", "t9")]
    layout = layered(nodes, edges)
    assert set(layout.nodes) == set(nodes)
    assert len(_positions(layout)) == len(nodes)
    # an edge drawn against the flow is listed as reversed; every other edge goes forward or stays in its column
    for a, b in set(edges):
        ca, cb = layout.nodes[a].column, layout.nodes[b].column
        if (a, b) in layout.reversed_edges:
            assert ca >= cb
        else:
            assert ca <= cb
    assert ("t6", "t7") in layout.reversed_edges or ("t7", "t6") in layout.reversed_edges
    # isolated tools (t10, t11) sit in column 0, apart from the connected ones
    assert layout.nodes["t10"].column == layout.nodes["t11"].column == 0
    assert min(p.column for n, p in layout.nodes.items() if n not in ("t10", "t11")) == 1
    # a dense graph is folded into about sqrt(n) columns instead of one column per step
    assert max(p.column for p in layout.nodes.values()) <= 5


def test_same_graph_same_picture() -> None:
    nodes = [f"n{i}" for i in range(30)]
    edges = [(nodes[i], nodes[(i * 7 + 3) % 30]) for i in range(30)] + [(nodes[i], nodes[i + 1]) for i in range(29)]
    a = layered(nodes, edges).to_json()
    b = layered(list(reversed(nodes)), list(reversed(edges))).to_json()
    assert a == b

"""A layered drawing of a tool dependency graph: columns left to right, edges mostly forward.

Pure and deterministic (same graph, same picture): the tools are put in a sequence with
few edges going backwards (Eades-Lin-Smyth; those edges close cycles and are drawn
against the flow), each tool's column is the longest path to it from a source, unless
that makes more than about sqrt(n) columns (a dense graph: every order is nearly total),
when the sequence is cut into sqrt(n) columns instead. The tools of a column are ordered
by a few sweeps of the barycenter heuristic (the mean position of their neighbours in
the columns before, then after), ties broken by name. Tools with no edge at all (a
rejected tool) go in a column of their own at the left.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import attrs

COLUMN_GAP = 230
ROW_GAP = 44
MARGIN = 20
NODE_WIDTH = 190
NODE_HEIGHT = 28
SWEEPS = 6


@attrs.frozen
class Placed:
    name: str
    column: int
    row: int
    x: int
    y: int


@attrs.frozen
class Layout:
    nodes: dict[str, Placed]
    width: int
    height: int
    reversed_edges: frozenset[tuple[str, str]]
    """Edges drawn against the flow (they close a cycle)."""

    def to_json(self) -> dict[str, object]:
        return {
            "width": self.width, "height": self.height, "node_width": NODE_WIDTH, "node_height": NODE_HEIGHT,
            "nodes": [attrs.asdict(p) for p in sorted(self.nodes.values(), key=lambda p: (p.column, p.row))],
            "reversed": sorted([list(e) for e in self.reversed_edges]),
        }


def layered(nodes: Iterable[str], edges: Iterable[tuple[str, str]]) -> Layout:
    """Columns and rows for ``nodes`` with directed ``edges`` (src feeds dst); see the module doc."""
    names = sorted(set(nodes))
    known = set(names)
    pairs = sorted({(a, b) for a, b in edges if a in known and b in known and a != b})
    sequence = _greedy_order(names, pairs)
    rank = {n: i for i, n in enumerate(sequence)}
    back = {(a, b) for a, b in pairs if rank[a] > rank[b]}
    fsucc: dict[str, set[str]] = {n: set() for n in names}
    fpred: dict[str, set[str]] = {n: set() for n in names}
    for a, b in pairs:
        a, b = (a, b) if rank[a] < rank[b] else (b, a)
        fsucc[a].add(b)
        fpred[b].add(a)
    connected = [n for n in sequence if fsucc[n] or fpred[n]]
    column = {n: 0 for n in names}
    for n in connected:  # longest path from a source: `sequence` is a topological order of the forward edges
        for m in fsucc[n]:
            column[m] = max(column[m], column[n] + 1)
    widest = max(4, math.ceil(math.sqrt(len(connected))))
    if connected and max(column[n] for n in connected) + 1 > widest:
        # A dense graph has long paths (every order is nearly total): one column per step
        # would make a thin line of boxes. Cut the order into `widest` columns instead;
        # edges inside a column are drawn as bows.
        per = math.ceil(len(connected) / widest)
        for i, n in enumerate(connected):
            column[n] = i // per
    shift = 1 if len(connected) < len(names) else 0
    linked = set(connected)
    for n in names:
        column[n] = column[n] + shift if n in linked else 0
    columns: dict[int, list[str]] = {}
    for n in names:
        columns.setdefault(column[n], []).append(n)
    order = _order(columns, fpred, fsucc)
    placed: dict[str, Placed] = {}
    for c, members in order.items():
        for r, n in enumerate(members):
            placed[n] = Placed(n, c, r, MARGIN + c * COLUMN_GAP, MARGIN + r * ROW_GAP)
    width = MARGIN * 2 + (max(order, default=0)) * COLUMN_GAP + NODE_WIDTH
    height = MARGIN * 2 + max((len(m) for m in order.values()), default=1) * ROW_GAP
    return Layout(placed, width, height, frozenset(back))


def _greedy_order(names: list[str], pairs: list[tuple[str, str]]) -> list[str]:
    """A sequence with few edges going backwards (Eades, Lin and Smyth's greedy heuristic):
    sinks go to the end, sources to the front, otherwise the node with the most out- over
    in-edges goes next. Ties by name."""
    succ: dict[str, set[str]] = {n: set() for n in names}
    pred: dict[str, set[str]] = {n: set() for n in names}
    for a, b in pairs:
        succ[a].add(b)
        pred[b].add(a)
    remaining = set(names)
    front: list[str] = []
    back: list[str] = []
    while remaining:
        moved = True
        while moved:
            moved = False
            for n in sorted(n for n in remaining if not succ[n] & remaining):
                back.append(n)
                remaining.discard(n)
                moved = True
            for n in sorted(n for n in remaining if not pred[n] & remaining):
                front.append(n)
                remaining.discard(n)
                moved = True
        if remaining:
            best = max(sorted(remaining), key=lambda n: len(succ[n] & remaining) - len(pred[n] & remaining))
            front.append(best)
            remaining.discard(best)
    return front + back[::-1]


def _order(columns: dict[int, list[str]], fpred: dict[str, set[str]], fsucc: dict[str, set[str]]) -> dict[int, list[str]]:
    order = {c: sorted(m) for c, m in sorted(columns.items())}
    keys = sorted(order)

    def sweep(seq: list[int], neighbours: dict[str, set[str]]) -> None:
        for c in seq:
            pos = {n: i for col in order.values() for i, n in enumerate(col)}
            members = order[c]

            def centre(n: str, members: list[str] = members) -> tuple[float, str]:
                near = [pos[m] for m in neighbours[n] if m in pos]
                return (sum(near) / len(near) if near else float(members.index(n)), n)

            order[c] = sorted(members, key=centre)

    for _ in range(SWEEPS // 2):
        sweep(keys[1:], fpred)
        sweep(list(reversed(keys[:-1])), fsucc)
    return order

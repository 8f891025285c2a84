"""The tool dependency graph: which verified tool can feed which.

``derive_edges`` is the pure rule (stage 1 emits its result as GraphEdgeAdded events);
``graph_from_edges`` rebuilds the networkx DiGraph from those events, so replay rebuilds
the same graph from the log alone.
"""

from __future__ import annotations

from collections.abc import Iterable

import networkx as nx

from scaleenv._model.contracts import FieldRef, Literal, RecordRef, parse_term, right_term, term_tables_fields
from scaleenv._store.events.synth import GraphEdgeAdded
from scaleenv._store.specs import Condition, DomainSpec, ToolSpec


def data_feeds(src: ToolSpec, dst: ToolSpec) -> list[tuple[str, str]]:
    feeds: list[tuple[str, str]] = []
    outputs = {f.name: f for f in src.returns}
    for param in dst.params:
        if param.name in outputs:
            feeds.append((param.name, param.name))
            continue
        if param.ref is not None:
            for f in src.returns:
                if f.ref == param.ref:
                    feeds.append((f.name, param.name))
                    break
    return feeds


def _field_target(cond: Condition) -> tuple[str, str] | None:
    try:
        left = parse_term(cond.left)
    except ValueError:
        return None
    if isinstance(left, FieldRef):
        return left.record.table, left.field
    if isinstance(left, RecordRef):
        return left.table, ""
    return None


def _values(cond: Condition) -> list[object] | None:
    try:
        term = right_term(cond)
    except ValueError:
        return None
    if isinstance(term, Literal):
        return term.value if isinstance(term.value, list) else [term.value]
    return None


def _state_reasons(src: ToolSpec, dst: ToolSpec) -> list[str]:
    """Post-conditions of src that establish part of a pre-condition of dst."""
    reasons: list[str] = []
    for post in (c for c in src.contract if c.when == "post"):
        target = _field_target(post)
        if target is None or post.op not in ("eq", "exists"):
            continue
        produced = _values(post) if post.op == "eq" else None
        for pre in (c for c in dst.contract if c.when == "pre"):
            if _field_target(pre) != target:
                continue
            if post.op == "exists" and pre.op == "exists":
                reasons.append(f"{src.name} creates {target[0]} records that {dst.name} requires")
            elif post.op == "eq" and pre.op in ("eq", "in") and produced is not None:
                wanted = _values(pre) or []
                if any(v in wanted for v in produced):
                    reasons.append(
                        f"{src.name} sets {target[0]}.{target[1]} to {produced[0]!r}, which {dst.name} requires"
                    )
    return reasons


def _contract_tables(tool: ToolSpec) -> set[str]:
    out: set[str] = set()
    for cond in tool.contract:
        try:
            terms = [parse_term(cond.left), right_term(cond)]
        except ValueError:
            continue
        out |= {t for term in terms if term is not None for t, _ in term_tables_fields(term)}
    return out


def shared_tables(src: ToolSpec, dst: ToolSpec) -> list[str]:
    """Tables src writes that dst reads and depends on (names in its contract or parameters)."""
    if not src.mutates:
        return []
    relied = _contract_tables(dst) | {p.ref for p in dst.params if p.ref}
    return sorted(t for t in set(src.writes) & set(dst.reads) if t in relied)


def derive_edges(domain: DomainSpec, verified: Iterable[str]) -> list[GraphEdgeAdded]:
    """Every edge between verified tools, in a deterministic order."""
    names = sorted(set(verified))
    tools = {t.name: t for t in domain.tools if t.name in names}
    edges: list[GraphEdgeAdded] = []
    for a in names:
        for b in names:
            if a == b:
                continue
            feeds = data_feeds(tools[a], tools[b])
            if feeds:
                why = ", ".join(f"{a}.{f} -> {b}({p})" for f, p in feeds)
                edges.append(GraphEdgeAdded(domain=domain.name, src=a, dst=b, kind="data", feeds=feeds, why=why))
            reasons = _state_reasons(tools[a], tools[b])
            if reasons:
                edges.append(GraphEdgeAdded(domain=domain.name, src=a, dst=b, kind="state", why="; ".join(reasons)))
            shared = [] if feeds or reasons else shared_tables(tools[a], tools[b])
            if shared:
                edges.append(GraphEdgeAdded(domain=domain.name, src=a, dst=b, kind="shared",
                                            feeds=[("table", t) for t in shared],
                                            why=f"{a} writes {', '.join(shared)}, which {b} reads"))
    return edges


def graph_from_edges(edges: Iterable[GraphEdgeAdded], nodes: Iterable[str] = ()) -> nx.MultiDiGraph:
    """The dependency graph: one node per verified tool, one edge per GraphEdgeAdded (keyed by kind)."""
    g = nx.MultiDiGraph()
    g.add_nodes_from(sorted(nodes))
    for e in edges:
        g.add_edge(e.src, e.dst, key=e.kind, kind=e.kind, feeds=list(e.feeds), why=e.why)
    return g

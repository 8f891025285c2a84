"""A tool's view of its domain: the tables it touches and the tables those refer to directly.

The roles that work on one tool (coder, reviewer, tester, debugger, repairer) are given
:func:`tool_scope`, not the whole domain: the tables the tool names (reads, writes, a
parameter's reference, a contract term) and the tables *those* refer to through a foreign
key, one hop and no further. A table two hops away is a key the tool passes along at
most, never a record it reads, so what a call carries depends on the tool and its
neighbours, not on how long the domain's chains of references are or how many tables it
has (``bench/synth.py`` measures the per-tool prompt against the domain's size).

Test databases need more: every foreign key of every generated record must point at a
record that exists, so they are generated over :func:`state_scope`, the same tables
closed under foreign keys (transitively); a role is shown only the part of such a state
inside :func:`tool_scope` (:func:`scoped_state`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scaleenv._store.specs import DomainSpec, ToolSpec

from .contracts import ContractSyntaxError, parse_term, right_term, term_tables_fields


def named_tables(spec: DomainSpec, tool: ToolSpec) -> set[str]:
    """The tables ``tool`` reads, writes, names in a parameter's reference or in its contract
    (those of the domain; a name the domain lacks is left out)."""
    names = set(tool.reads) | set(tool.writes) | {p.ref for p in tool.params if p.ref}
    for cond in tool.contract:
        try:
            terms = [parse_term(cond.left), right_term(cond)]
        except ContractSyntaxError:
            continue
        names |= {t for term in terms if term is not None for t, _ in term_tables_fields(term)}
    return {n for n in names if spec.table(n) is not None}


def _refs_of(spec: DomainSpec, names: set[str]) -> set[str]:
    """The tables the tables ``names`` refer to through a foreign key (one hop)."""
    out: set[str] = set()
    for name in names:
        table = spec.table(name)
        if table is not None:
            out |= {f.ref for f in table.fields if f.ref and spec.table(f.ref) is not None}
    return out


def _in_domain_order(spec: DomainSpec, names: set[str]) -> list[str]:
    return [t.name for t in spec.tables if t.name in names]


def touched_tables(spec: DomainSpec, tool: ToolSpec) -> list[str]:
    """The tables ``tool`` names (:func:`named_tables`) and the tables they refer to through
    a foreign key, one hop only, in the domain's order."""
    names = named_tables(spec, tool)
    return _in_domain_order(spec, names | _refs_of(spec, names))


def closed_tables(spec: DomainSpec, tool: ToolSpec) -> list[str]:
    """:func:`touched_tables` closed under foreign keys (every table reachable from one the
    tool names), in the domain's order: what a consistent test database of the tool holds."""
    names = named_tables(spec, tool)
    frontier = set(names)
    while frontier:
        frontier = _refs_of(spec, frontier) - names
        names |= frontier
    return _in_domain_order(spec, names)


def _restricted(spec: DomainSpec, tool: ToolSpec, keep: set[str]) -> DomainSpec:
    return DomainSpec(name=spec.name, description=spec.description, keywords=list(spec.keywords),
                      tables=[t for t in spec.tables if t.name in keep], tools=[tool])


def tool_scope(spec: DomainSpec, tool: ToolSpec) -> DomainSpec:
    """The domain as a role working on ``tool`` is shown it: the :func:`touched_tables` and
    the tool itself."""
    return _restricted(spec, tool, set(touched_tables(spec, tool)))


def state_scope(spec: DomainSpec, tool: ToolSpec) -> DomainSpec:
    """The domain a test database of ``tool`` is generated over: the :func:`closed_tables`
    (so every foreign key can point at a record that exists) and the tool itself."""
    return _restricted(spec, tool, set(closed_tables(spec, tool)))


def scoped_state(spec: DomainSpec, tool: ToolSpec, state: Mapping[str, Any]) -> dict[str, Any]:
    """The tables of ``state`` inside :func:`tool_scope` (what a role is shown of a test
    database), in the state's own order."""
    keep = set(touched_tables(spec, tool))
    return {t: rows for t, rows in state.items() if t in keep}

"""A tool's view of its domain: the tables it touches and the tables those refer to.

The roles that work on one tool (coder, reviewer, tester, debugger) are given this, not
the whole domain, so what a call carries does not grow with the domain's size; test
databases are generated over it, every foreign key pointing at a record that exists.
"""

from __future__ import annotations

from scaleenv.store.specs import DomainSpec, ToolSpec

from .contracts import ContractSyntaxError, parse_term, right_term, term_tables_fields


def touched_tables(spec: DomainSpec, tool: ToolSpec) -> list[str]:
    """The tables ``tool`` reads, writes, names in a parameter or its contract, and every table
    they refer to through foreign keys (transitively), in the domain's order."""
    names = set(tool.reads) | set(tool.writes) | {p.ref for p in tool.params if p.ref}
    for cond in tool.contract:
        try:
            terms = [parse_term(cond.left), right_term(cond)]
        except ContractSyntaxError:
            continue
        names |= {t for term in terms if term is not None for t, _ in term_tables_fields(term)}
    frontier = list(names)
    while frontier:
        table = spec.table(frontier.pop())
        if table is None:
            continue
        for f in table.fields:
            if f.ref and f.ref not in names:
                names.add(f.ref)
                frontier.append(f.ref)
    return [t.name for t in spec.tables if t.name in names]


def tool_scope(spec: DomainSpec, tool: ToolSpec) -> DomainSpec:
    """The domain as ``tool`` needs it: its touched tables (:func:`touched_tables`) and itself."""
    keep = set(touched_tables(spec, tool))
    return DomainSpec(name=spec.name, description=spec.description, keywords=list(spec.keywords),
                      tables=[t for t in spec.tables if t.name in keep], tools=[tool])

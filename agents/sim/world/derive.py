"""The simulated database agent's method: tables derived from the tools that use them.

A table's primary key is the id parameter that refers to it (``order_id`` with
``ref: orders``); its columns are the fields a tool reading or writing it returns
alongside that key (the ``get_`` tool of a table returns them all), and any column a
contract names that no tool returns. Pure.
"""

from __future__ import annotations

from scaleenv._model.contracts import ContractSyntaxError, parse_term, right_term, term_tables_fields
from scaleenv._store.specs import FieldSpec, TableSpec, ToolSpec


def _richness(f: FieldSpec) -> int:
    return sum(x is not None and x is not False for x in (f.kind, f.ref, f.enum, f.minimum, f.maximum, f.reward)) + f.unique


def derive_tables(tools: list[ToolSpec]) -> list[TableSpec]:
    order: list[str] = []
    pks: dict[str, str] = {}
    for tool in tools:
        for t in (*tool.reads, *tool.writes):
            if t not in order:
                order.append(t)
        for p in tool.params:
            if p.ref and p.name.endswith("_id") and not p.name.startswith(("from_", "to_")):
                pks.setdefault(p.ref, p.name)
    columns: dict[str, dict[str, FieldSpec]] = {t: {} for t in order}
    for tool in tools:
        names = {f.name for f in tool.returns}
        for t in (*tool.writes, *tool.reads):
            pk = pks.get(t)
            if pk is None or pk not in names:
                continue
            for f in tool.returns:
                known = columns[t].get(f.name)
                if known is None or _richness(f) > _richness(known):
                    columns[t][f.name] = f
            break
    for tool in tools:  # columns a contract names that no tool returns
        for cond in tool.contract:
            try:
                terms = [parse_term(cond.left), right_term(cond)]
            except ContractSyntaxError:
                continue
            for term in terms:
                if term is None:
                    continue
                for table, field in term_tables_fields(term):
                    if field and table in columns and field not in columns[table]:
                        columns[table][field] = FieldSpec(name=field, type="str")
    out = []
    for t in order:
        pk = pks.get(t) or next((n for n in columns[t] if n.endswith("_id")), f"{t.rstrip('s')}_id")
        fields = dict(columns[t])
        if pk not in fields:
            fields = {pk: FieldSpec(name=pk, type="str", kind="id", unique=True, required=True, reward="exempt"), **fields}
        ordered = [fields[pk], *[f for n, f in fields.items() if n != pk]]
        out.append(TableSpec(name=t, description=f"the {t.replace('_', ' ')}", primary_key=pk, fields=ordered))
    return out

"""The rules a domain design must follow before any code is written.

Violations are returned as plain sentences naming the table, tool, field or condition;
stage 1 sends them back to the architect as feedback.
"""

from __future__ import annotations

import re

from scaleenv._store.specs import DomainSpec, ToolSpec

from .contracts import validate_contract

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_PY_KEYWORDS = {"db", "def", "class", "return", "lambda", "import", "from", "global", "None", "True", "False"}


def validate_domain(domain: DomainSpec) -> list[str]:
    problems: list[str] = []
    if not _NAME.match(domain.name):
        problems.append(f"domain name {domain.name!r} must be snake_case (a-z, 0-9, _)")
    if not domain.tables:
        problems.append("the domain has no tables")
    if not domain.tools:
        problems.append("the domain has no tools")
    seen_tables: set[str] = set()
    for table in domain.tables:
        if table.name in seen_tables:
            problems.append(f"duplicate table name {table.name!r}")
        seen_tables.add(table.name)
        if not _NAME.match(table.name):
            problems.append(f"table name {table.name!r} must be snake_case")
        field_names = [f.name for f in table.fields]
        if len(set(field_names)) != len(field_names):
            problems.append(f"table {table.name!r} has duplicate field names")
        if table.primary_key not in field_names:
            problems.append(f"table {table.name!r}: primary key {table.primary_key!r} is not one of its fields")
        for f in table.fields:
            if f.ref is not None and f.ref not in {t.name for t in domain.tables}:
                problems.append(f"table {table.name!r} field {f.name!r} references unknown table {f.ref!r}")
            if f.enum is not None and (not f.enum or f.type != "str"):
                problems.append(f"table {table.name!r} field {f.name!r}: an enum must be a non-empty list on a str field")
    seen_tools: set[str] = set()
    tables = {t.name for t in domain.tables}
    for tool in domain.tools:
        if tool.name in seen_tools:
            problems.append(f"duplicate tool name {tool.name!r}")
        seen_tools.add(tool.name)
        if not _NAME.match(tool.name) or tool.name in _PY_KEYWORDS:
            problems.append(f"tool name {tool.name!r} must be a snake_case Python identifier")
        pnames = [p.name for p in tool.params]
        if len(set(pnames)) != len(pnames):
            problems.append(f"tool {tool.name!r} has duplicate parameter names")
        for p in tool.params:
            if not _NAME.match(p.name) or p.name in _PY_KEYWORDS:
                problems.append(f"tool {tool.name!r}: parameter name {p.name!r} is not a valid identifier")
            if p.ref is not None and p.ref not in tables:
                problems.append(f"tool {tool.name!r}: parameter {p.name!r} references unknown table {p.ref!r}")
        for t in (*tool.reads, *tool.writes):
            if t not in tables:
                problems.append(f"tool {tool.name!r} reads or writes unknown table {t!r}")
        if tool.mutates and not tool.writes:
            problems.append(f"tool {tool.name!r} mutates state but writes no table")
        if not tool.mutates and tool.writes:
            problems.append(f"tool {tool.name!r} writes {tool.writes} but is marked read-only")
        if tool.mutates and not any(c.when == "post" for c in tool.contract):
            problems.append(f"tool {tool.name!r} mutates state but has no post-condition")
        problems.extend(validate_contract(domain, tool))
        problems.extend(_returns_problems(domain, tool))
    return problems


def _returns_problems(domain: DomainSpec, tool: ToolSpec) -> list[str]:
    """A tool returning records of a table (its key among the returned fields) returns columns of that table.

    Records of one table often carry another's key (an application its candidate's id): the
    returned fields are records of the first table whose key they hold and whose columns
    they all are; only when no such table exists are they checked against the first."""
    names = {f.name for f in tool.returns}
    first: tuple[str, list[str]] | None = None
    for tname in (*tool.writes, *tool.reads):
        table = domain.table(tname)
        if table is None or table.primary_key not in names:
            continue
        missing = sorted(names - {f.name for f in table.fields})
        if not missing or tool.mutates:
            return []
        first = first or (tname, missing)
    if first is not None:
        tname, missing = first
        return [f"tool {tool.name!r} returns {missing} of {tname} records, but table {tname!r} has no such column(s)"]
    return []

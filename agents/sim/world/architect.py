"""The simulated architect and database agent: a domain composed from the brief, tools first.

- architect, outline round (context ``brief``, ``taken``, ``round``, ``feedback``): the
  composition's entities and its tools grouped by workflow (:mod:`.composer`);
- architect, tool round (``brief``, ``outline``, ``group``, ...): that group's tools;
- database (``tools``, ...): the tables derived from the tools (:mod:`.derive`).

The composition depends only on the brief (its ``variety`` included), so every round
agrees with the others. Round 0 of each role breaks one rule the engine checks with rate
``call.mistake(0.5)`` (a duplicate tool, a contract naming a column that does not exist, a
column the database agent forgot); with the feedback, the next round is clean, so every
feedback loop really runs.
"""

from __future__ import annotations

from typing import Any

import msgspec

from scaleenv._agents.sim.call import SimCall, register_role
from scaleenv._model.briefs import Brief
from scaleenv._store.specs import ToolSpec

from .composer import Composition, compose, words
from .derive import derive_tables


def _brief(call: SimCall) -> Brief:
    b = call.context.get("brief") or {}
    return Brief(name=str(b.get("name", "domain")), description=str(b.get("description", "")),
                 keywords=tuple(b.get("keywords") or ()), tools=int(b.get("tools") or 40))


def composition(call: SimCall) -> Composition:
    brief = _brief(call)
    return compose(brief, int((call.context.get("brief") or {}).get("variety", 0)))


def _outline(call: SimCall) -> dict[str, Any]:
    comp = composition(call)
    spec = comp.spec
    tools = {t.name: t for t in spec.tools}
    groups = [{"name": g, "purpose": f"the {words(g)}",
               "tools": [{"name": n, "purpose": tools[n].description} for n in names]}
              for g, names in comp.groups.items()]
    outline = {"name": spec.name, "description": spec.description, "keywords": list(spec.keywords),
               "entities": [{"name": t.name, "purpose": t.description} for t in spec.tables], "groups": groups}
    if call.context.get("round", 0) == 0 and not call.context.get("feedback") and call.mistake(0.5) and len(groups) > 1:
        # one tool planned in two groups
        first = groups[0]["tools"][0]
        groups[-1]["tools"].append(dict(first))
    return outline


def _group_tools(call: SimCall) -> dict[str, Any]:
    comp = composition(call)
    wanted = comp.groups.get(str(call.context.get("group")), [])
    tools = [msgspec.to_builtins(t) for t in comp.spec.tools if t.name in wanted]
    if call.context.get("round", 0) == 0 and call.mistake(0.3):
        with_fields = [t for t in tools if any("." in c["left"] for c in t["contract"])]
        if with_fields:
            tool = call.rng.choice(with_fields)
            cond = next(c for c in tool["contract"] if "." in c["left"])
            head, _, field = cond["left"].rpartition(".")
            cond["left"] = f"{head}.{field}_value"  # a column nothing defines
    return {"tools": tools}


@register_role("architect", answers=("DomainOutline", "ToolGroupDesign"))
def architect(call: SimCall) -> dict[str, Any]:
    if call.schema_name == "ToolGroupDesign" or "group" in call.context:
        return _group_tools(call)
    return _outline(call)


@register_role("database", answers="SchemaDesign")
def database(call: SimCall) -> dict[str, Any]:
    tools = [msgspec.convert(t, ToolSpec) for t in call.context.get("tools") or []]
    tables = [msgspec.to_builtins(t) for t in derive_tables(tools)]
    if call.context.get("round", 0) == 0 and not call.context.get("feedback") and call.mistake(0.5) and tables:
        table = call.rng.choice(tables)
        keep = [f for f in table["fields"] if f["name"] == table["primary_key"] or f.get("ref") or f.get("required")]
        if len(keep) < len(table["fields"]):
            table["fields"] = keep  # forgot the optional columns some tools return or check
    return {"tables": tables}

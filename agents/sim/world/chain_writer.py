"""The simulated chain writer and gate (stage 2).

- chain_writer (context ``domain``, ``goal_tool``: the tool the goal ends with,
  ``candidates``: tools that can come before it, ``length``: [min, max], ``goal``: its
  index, ``known``: what the customer gave for earlier goals, ``round``/``feedback``):
  walks back from the goal tool along data feeds through read tools, then writes
  the chain as a program (:mod:`scaleenv._model.program`): each argument an earlier result
  can supply is a reference to it, every other one a plausible literal (an id, an email, a
  quantity, a value from the parameter's closed set; what ``known`` holds for a parameter of
  that name: the same customer). Noise (``call.mistake(0.3)``): a
  program that names a parameter the tool does not have, which the engine's parser
  refuses and the writer fixes on the retry.
- gate (context ``unused``, ``complexity``, ``feasibility``, ``tau``): p = feasibility x (1 - c/5),
  a little noise; the engine continues while p >= tau.
"""

from __future__ import annotations

import random
from typing import Any

import msgspec

from scaleenv._agents.sim.call import SimCall, register_role
from scaleenv._model import program as prog
from scaleenv._model.contracts import Literal, Param, parse_term, right_term
from scaleenv._model.dbgen import field_value
from scaleenv._model.graph import data_feeds
from scaleenv._store.specs import FieldSpec, ParamSpec, TableSpec, ToolSpec


def _literal(tool: ToolSpec, param: ParamSpec, tables: dict[str, TableSpec], rng: random.Random) -> Any:
    for c in tool.contract:  # a closed set the contract names
        if c.when == "pre" and c.op == "in" and isinstance(parse_term(c.left), Param) and parse_term(c.left).name == param.name:
            r = right_term(c)
            if isinstance(r, Literal) and isinstance(r.value, list) and r.value:
                return rng.choice(r.value)
    if param.ref is not None:
        table = tables.get(param.ref)
        stem = (table.primary_key if table else param.name).removesuffix("_id")
        return f"{stem}_{rng.randrange(16**4):04x}"
    for table in tables.values():
        col = table.field(param.name)
        if col is not None and not col.ref:
            value = field_value(col, table, {}, rng, "x")
            if value is not None:
                return value
    if param.type == "int":
        return rng.randint(1, 3)
    if param.type == "float":
        return round(rng.uniform(5, 50), 2)
    if param.type == "bool":
        return True
    if param.type == "list[str]":
        return []
    shape = FieldSpec(name=param.name, type="str")
    return field_value(shape, TableSpec(name="x", description="", primary_key="x_id", fields=[shape]), {}, rng, "x")


def write_program(goal: ToolSpec, candidates: list[ToolSpec], tables: dict[str, TableSpec], length: tuple[int, int],
                  rng: random.Random, known: dict[str, Any] | None = None) -> str:
    """A chain ending in ``goal``: read tools before it that feed its inputs, then the goal.
    A literal the customer already gave for an earlier goal (``known``) is used again."""
    known = known or {}
    want = rng.randint(*length)
    chain = [goal]
    readers = [t for t in candidates if not t.mutates and t.name != goal.name]

    def ids_needed(t: ToolSpec) -> bool:
        return any(p.required and p.ref for p in t.params)

    # Walk back along data feeds to what a customer knows (an email, a title): past the
    # chosen length while the first call still needs an id, up to the longest allowed.
    while len(chain) < length[1]:
        if len(chain) >= want and not ids_needed(chain[0]):
            break
        feeding = sorted((t for t in readers if t not in chain and data_feeds(t, chain[0])
                          and any(p.required for p in t.params)), key=lambda t: t.name)
        if not feeding:
            break
        knowable = [t for t in feeding if not ids_needed(t)]
        chain.insert(0, rng.choice(knowable if knowable and rng.random() < 0.7 else feeding))
    steps: list[prog.Step] = []
    for i, tool in enumerate(chain):
        args: dict[str, Any] = {}
        refs: dict[str, prog.Ref] = {}
        for p in tool.params:
            source = None
            for j in range(i - 1, -1, -1):
                feeds = [f for f, q in data_feeds(chain[j], tool) if q == p.name]
                if feeds:
                    path: list[str | int] = [0, feeds[0]] if chain[j].returns_list else [feeds[0]]
                    source = prog.Ref(j, path)
                    break
            if source is not None:
                refs[p.name] = source
            elif p.required and p.name in known and not isinstance(known[p.name], list | dict):
                args[p.name] = known[p.name]
            elif p.required:
                args[p.name] = _literal(tool, p, tables, rng)
        steps.append(prog.Step(tool=tool.name, args=args, refs=refs, name=f"r{i}"))
    return prog.render(steps)


@register_role("chain_writer", answers="ChainAnswer")
def chain_writer(call: SimCall) -> dict[str, Any]:
    ctx = call.context
    domain = ctx.get("domain") or {}
    tables = {t["name"]: msgspec.convert(t, TableSpec) for t in domain.get("tables") or []}
    goal = msgspec.convert(ctx["goal_tool"], ToolSpec)
    candidates = [msgspec.convert(t, ToolSpec) for t in ctx.get("candidates") or []]
    lo, hi = ctx.get("length") or (2, 4)
    source = write_program(goal, candidates, tables, (int(lo), int(hi)), call.rng, ctx.get("known") or {})
    if not ctx.get("round") and call.attempt == 0 and call.mistake(0.3):
        source = source.replace("call(", "call(", 1).replace(")\n", ", priority_hint=1)\n", 1)  # a parameter that does not exist
    return {"program": source, "summary": f"ends with {goal.name}"}


@register_role("gate", answers="GateAnswer")
def gate(call: SimCall) -> dict[str, Any]:
    ctx = call.context
    c = float(ctx.get("complexity") or 0.0)
    g = float(ctx.get("feasibility") or 0.0)
    p = max(0.0, min(1.0, g * (1.0 - c / 5.0) + call.rng.uniform(-0.05, 0.05)))
    if call.mistake(0.2):
        p = max(0.0, min(1.0, p + call.rng.choice((-0.3, 0.3))))
    return {"p": round(p, 3), "reason": f"complexity {c:.2f}, feasibility {g:.2f}"}


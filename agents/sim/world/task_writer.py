"""The simulated task writer (stage 2): a natural user instruction for a golden chain.

Context: {"domain", "steps": [{"tool", "args"}], "user_facts": {name: value},
"goal_tool", "targets"}. The instruction states what the user wants (every state
change of the chain, plus the goal) in plain words, never a tool name or the order of
calls, and lists the facts the user knows and will share when asked.
"""

from __future__ import annotations

from typing import Any

import msgspec

from scaleenv.agents.sim.call import SimCall, register_role
from scaleenv.model.contracts import Literal, parse_term, right_term
from scaleenv.store.specs import DomainSpec, ToolSpec

from .codegen import created_table, is_result_post

PERSONAS = (
    ("busy professional", "You are a busy professional with little time.", "Keep it short; you want this done quickly."),
    ("polite retiree", "You are a polite retiree who is not very technical.", "Ask the assistant to confirm when it is done."),
    ("student on a budget", "You are a student watching every dollar.", "Double-check any amounts before agreeing."),
    ("small business owner", "You run a small business and handle this for your account.", "You prefer a clear confirmation at the end."),
    ("first-time user", "You are using this service for the first time.", "If something is unclear, ask rather than guess."),
    ("frequent customer", "You use this service often and know how it works.", "You get a bit impatient with unnecessary questions."),
)
OPENERS = ("I need to {goal}.", "Could you help me {goal}?", "I'd like to {goal}.", "Please {goal}.", "My goal today: {goal}.")
FACT_LEADS = ("Things you know and can share when asked: ", "If the assistant asks, you can tell it: ",
              "You have this information at hand: ")


def _words(ident: str) -> str:
    return ident.replace("_", " ")


def _quoted(v: Any) -> str:
    text = _value_text(v)
    return f'"{text}"' if isinstance(v, str) and (" " in text or "," in text) else text


def _status_target(tool: ToolSpec) -> str | None:
    for c in tool.contract:
        if c.when == "post" and c.op == "eq" and isinstance(c.right, str) and not is_result_post(c) \
                and parse_term(c.left).__class__.__name__ == "FieldRef":
            r = right_term(c)
            if isinstance(r, Literal) and isinstance(r.value, str):
                return r.value
    return None


def _value_text(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.2f}"
    return str(v)


def phrase(domain: DomainSpec, tool: ToolSpec, args: dict[str, Any]) -> str:
    """What calling this tool achieves, as the user would say it (no tool name)."""
    verb, _, rest = tool.name.partition("_")
    obj = _words(rest)
    plain = {p.name: args[p.name] for p in tool.params if p.ref is None and p.name in args}
    if tool.mutates:
        created = created_table(domain, tool)
        if created is not None:
            amounts = ", ".join(f"{_words(k)}: {_quoted(v)}" for k, v in plain.items())
            return f"make a new {_words(created.name).rstrip('s')} ({amounts})" if amounts \
                else f"create a new {obj}"
        if verb == "cancel":
            return f"cancel my {obj}"
        if verb == "pay":
            return f"pay for my {obj}"
        if verb == "update" or verb == "change":
            changes = ", ".join(f"the {_words(k)} to \"{_value_text(v)}\"" for k, v in plain.items())
            return f"change {changes}" if changes else f"update my {obj}"
        if verb == "add" and plain:
            return f"add {', '.join(_value_text(v) for v in plain.values())} to my {obj}"
        if verb in ("restock", "upgrade"):
            extra = f" by {', '.join(_value_text(v) for v in plain.values())}" if plain else ""
            return f"{verb} the {obj}{extra}"
        target = _status_target(tool)
        if target:
            return f"get my {_words(tool.params[0].ref or obj).rstrip('s')} marked as {_words(target)}"
        return tool.description.rstrip(".").lower()
    if verb == "list":
        return f"see all my {_words(rest.split('_', 1)[-1])}"
    if verb == "search":
        crit = ", ".join(f"{_words(k)} \"{_value_text(v)}\"" for k, v in plain.items())
        return f"find out which {obj} are available" + (f" for {crit}" if crit else "")
    if verb == "find":
        return "find my account"
    return f"find out the details of the {obj}"


def _same_as(domain: DomainSpec, steps: list[dict[str, Any]], goal: str, facts: dict[str, Any],
             targets: dict[str, Any]) -> str:
    """Where a new record's references come from, when the user does not hold them but an earlier record has them:
    "for the same performance as my ticket purchase ticket_purchase_596d"."""
    tool = domain.tool(goal)
    if tool is None or not steps or steps[-1].get("tool") != goal or created_table(domain, tool) is None:
        return ""
    args = steps[-1].get("args") or {}
    held = {str(v) for v in facts.values()}
    parts: list[str] = []
    for p in tool.params:
        if p.ref is None or p.name not in args or str(args[p.name]) in held:
            continue
        table = domain.table(p.ref)
        if table is None or table.field("email") is not None:
            continue  # the user's own account: "my" says it
        source = _source_record(domain, steps[:-1], p.name, args[p.name], facts, targets)
        if source:
            parts.append(f"the same {_words(table.name).rstrip('s')} as {source}")
    return ("for " + " and ".join(parts)) if parts else ""


def _source_record(domain: DomainSpec, steps: list[dict[str, Any]], name: str, value: Any, facts: dict[str, Any],
                   targets: dict[str, Any]) -> str:
    record = targets.get("record") or {}
    table = domain.table(str(targets.get("table") or ""))
    if table is not None and str(record.get(name)) == str(value):
        noun = _words(table.name).rstrip("s")
        if str(targets.get("key")) in {str(v) for v in facts.values()}:
            return f"my {noun} {targets.get('key')}"
        for k, v in sorted(facts.items()):
            if k in record and str(record[k]) == str(v) and not k.endswith("_id"):
                return f"my {noun} with the {_words(k)} \"{_value_text(v)}\""
    for step in reversed(steps):
        t = domain.tool(step.get("tool", ""))
        for k, v in (step.get("args") or {}).items():
            ref = next((p.ref for p in (t.params if t else []) if p.name == k and p.ref), None)
            rt = domain.table(ref) if ref else None
            if rt is not None and rt.primary_key == k and k in facts and str(facts[k]) == str(v) \
                    and rt.field(name) is not None:
                return f"my {_words(rt.name).rstrip('s')} {v}"
    return ""


@register_role("task_writer", answers="InstructionAnswer")
def task_writer(call: SimCall) -> dict[str, Any]:
    ctx = call.context
    domain = msgspec.convert(ctx["domain"], DomainSpec)
    steps = ctx.get("steps") or []
    goal = ctx.get("goal_tool") or (steps[-1]["tool"] if steps else "")
    rng = call.rng
    goals: list[str] = []
    for step in steps:
        tool = domain.tool(step.get("tool", ""))
        if tool is None:
            continue
        if tool.mutates or tool.name == goal:
            text = phrase(domain, tool, step.get("args") or {})
            if text not in goals:
                goals.append(text)
    if not goals:
        goals = [f"get help with my account at {_words(domain.name)}"]
    same = _same_as(domain, steps, goal, ctx.get("user_facts") or {}, ctx.get("targets") or {})
    if same and goals:
        goals[-1] += f" {same}"
    goal_text = goals[0] if len(goals) == 1 else ", then ".join(goals[:-1]) + " and finally " + goals[-1]
    persona, intro, style = rng.choice(PERSONAS)
    parts = [intro, rng.choice(OPENERS).format(goal=goal_text)]
    facts = ctx.get("user_facts") or {}
    if facts:
        listed = "; ".join(f"your {_words(k)} is {_value_text(v)}" for k, v in sorted(facts.items()))
        parts.append(rng.choice(FACT_LEADS) + listed + ".")
        parts.append("Do not volunteer everything at once; answer what the assistant asks.")
    targets = ctx.get("targets") or {}
    if targets.get("answer") is not None or targets.get("answers"):
        parts.append("At the end, make sure the assistant tells you the result.")
    parts.append(style)
    return {"instruction": " ".join(parts), "persona": persona}

"""The simulated task writer (stage 2): a natural user instruction for a golden chain.

Context: {"domain", "goals": [{"goal_tool", "steps": [{"tool", "args"}], "user_facts",
"targets"}], "user_facts": {name: value}}. For each goal a request in the customer's
voice (every state change of its chain, plus its end, in plain words; never a tool name
or the order of calls; a later request opens with "Also, ..."), and an instruction for
whoever plays the customer: the goals in order and the facts they will share when asked.
"""

from __future__ import annotations

from typing import Any

import msgspec

from scaleenv._agents.sim.call import SimCall, register_role
from scaleenv._model.contracts import Literal, parse_term, right_term
from scaleenv._store.specs import DomainSpec, ToolSpec

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


def phrase(domain: DomainSpec, tool: ToolSpec, args: dict[str, Any], held: frozenset[str] | None = None) -> str:
    """What calling this tool achieves, as the user would say it (no tool name). ``held``: the
    values the user holds, when known (a lookup by a value the user does not hold is about
    someone else's record, not "my account")."""
    verb, _, rest = tool.name.partition("_")
    obj = _words(rest)
    plain = {p.name: args[p.name] for p in tool.params if p.ref is None and args.get(p.name) is not None}
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
        if held is None or any(str(v) in held for v in args.values()):
            return "find my account"
        return f"find out the details of the {_words(rest.split('_by_')[0])}"
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


REASONS = ("", "", " It's a bit urgent.", " I've been meaning to sort this out.", " I want to get it right this time.",
           " My plans changed.", " Someone asked me to take care of it.")
NEXT = ("Also, ", "One more thing: ", "Next, ", "While I'm here, ", "And another thing: ", "")


def _goal_phrase(domain: DomainSpec, goal: dict[str, Any], facts: dict[str, Any]) -> str:
    """What one goal achieves, as the customer would say it (its state changes and its end)."""
    steps = goal.get("steps") or []
    name = goal.get("goal_tool") or (steps[-1]["tool"] if steps else "")
    said: list[str] = []
    for step in steps:
        tool = domain.tool(step.get("tool", ""))
        if tool is None:
            continue
        if tool.mutates or tool.name == name:
            held = frozenset(str(v) for v in (goal.get("user_facts") or facts).values())
            text = phrase(domain, tool, step.get("args") or {}, held)
            if text not in said:
                said.append(text)
    if not said:
        said = [f"get help with my account at {_words(domain.name)}"]
    same = _same_as(domain, steps, name, goal.get("user_facts") or facts, goal.get("targets") or {})
    if same:
        said[-1] += f" {same}"
    else:
        which = _which(goal)
        if which:
            said[-1] += f" ({which})"
    return said[0] if len(said) == 1 else ", then ".join(said[:-1]) + " and finally " + said[-1]


def _which(goal: dict[str, Any]) -> str:
    """What tells the goal's record apart, as the customer knows it (a title, a date; never an
    id): the goal's facts that the record holds."""
    record = (goal.get("targets") or {}).get("record") or {}
    facts = goal.get("user_facts") or {}
    steps = goal.get("steps") or []
    setting = set((steps[-1].get("args") or {}) if steps else {})  # new values, not what tells the record apart
    said = [f"{_words(k)}: {_quoted(v)}" for k, v in sorted(facts.items())
            if not k.endswith("_id") and k not in setting and k in record and str(record[k]) == str(v)]
    return ", ".join(said)


def _request(text: str, first: bool, rng: Any) -> str:
    lead = "" if first else rng.choice(NEXT)
    body = rng.choice(OPENERS).format(goal=text)
    if lead:
        body = lead + body[0].lower() + body[1:]
    return body + rng.choice(REASONS)


@register_role("task_writer", answers="InstructionAnswer")
def task_writer(call: SimCall) -> dict[str, Any]:
    ctx = call.context
    domain = msgspec.convert(ctx["domain"], DomainSpec)
    rng = call.rng
    facts = ctx.get("user_facts") or {}
    goals = ctx.get("goals")
    if goals is None:  # one goal given as its steps (the older shape of the context)
        goals = [{"goal_tool": ctx.get("goal_tool"), "steps": ctx.get("steps") or [], "user_facts": facts,
                  "targets": ctx.get("targets") or {}}]
    phrases = [_goal_phrase(domain, g, facts) for g in goals]
    requests = [_request(p, i == 0, rng) for i, p in enumerate(phrases)]
    persona, intro, style = rng.choice(PERSONAS)
    if len(phrases) == 1:
        parts = [intro, requests[0]]
    else:
        listed = " ".join(f"({i + 1}) {p}." for i, p in enumerate(phrases))
        parts = [intro, f"You have {len(phrases)} things to sort out, one after another, raising the next once the "
                        f"previous one is settled: {listed}"]
    if facts:
        listed = "; ".join(f"your {_words(k)} is {_value_text(v)}" for k, v in sorted(facts.items()))
        parts.append(rng.choice(FACT_LEADS) + listed + ".")
        parts.append("Do not volunteer everything at once; answer what the assistant asks.")
    if any((g.get("targets") or {}).get("answer") is not None or (g.get("targets") or {}).get("answers") for g in goals):
        parts.append("At the end, make sure the assistant tells you the result.")
    parts.append(style)
    return {"instruction": " ".join(parts), "persona": persona, "requests": requests}

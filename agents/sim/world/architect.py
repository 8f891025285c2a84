"""The simulated architect: a DomainSpec from the vocabulary, sometimes with a rule broken.

Context: {"slot", "variety_seed", "round", "feedback"}. Round 0 breaks one rule the
engine validates with rate ``call.mistake(0.5)``; a later round with feedback returns
the clean design (the problems fixed), so the schema-feedback loop really runs.
"""

from __future__ import annotations

from typing import Any

import msgspec

from scaleenv.agents.sim.call import SimCall, register_role

from .vocab import domain_for

DESIGN_MISTAKES = ("duplicate_tool", "unknown_field", "unknown_param", "unknown_ref", "bad_primary_key", "unknown_table")


def break_design(spec: dict[str, Any], kind: str, rng: Any) -> dict[str, Any]:
    """One rule broken in a design (builtins form; still decodes as a DomainSpec)."""
    tools = spec["tools"]
    with_contract = [t for t in tools if t["contract"]]
    if kind == "duplicate_tool":
        dup = dict(rng.choice(tools))
        dup["description"] = dup["description"] + " (alternate version)"
        tools.append(dup)
    elif kind == "unknown_field":
        tool = rng.choice([t for t in with_contract if any("." in c["left"] for c in t["contract"])] or with_contract)
        cond = next((c for c in tool["contract"] if "." in c["left"]), tool["contract"][0])
        if "." in cond["left"]:
            head, _, field = cond["left"].rpartition(".")
            cond["left"] = f"{head}.{field}_value"
        else:
            cond["left"] = cond["left"].replace("[", "_records[", 1)
    elif kind == "unknown_param":
        tool = rng.choice(with_contract)
        cond = tool["contract"][0]
        cond["left"] = cond["left"].replace("$", "$the_", 1) if "$" in cond["left"] else cond["left"]
        if "$the_" not in cond["left"]:
            cond["right"] = "$the_id"
    elif kind == "unknown_ref":
        table = next(t for t in spec["tables"] if any(f.get("ref") for f in t["fields"]))
        field = next(f for f in table["fields"] if f.get("ref"))
        field["ref"] = field["ref"].rstrip("s") + "_table"
    elif kind == "bad_primary_key":
        table = rng.choice(spec["tables"])
        table["primary_key"] = "id"
    elif kind == "unknown_table":
        tool = rng.choice(tools)
        tool["reads"] = [*tool["reads"], "audit_log"]
    return spec


@register_role("architect", answers="DomainSpec")
def architect(call: SimCall) -> dict[str, Any]:
    ctx = call.context
    spec = msgspec.to_builtins(domain_for(int(ctx.get("slot", 0)), int(ctx.get("variety_seed", 0))))
    rnd = int(ctx.get("round", 0))
    if rnd == 0 and not ctx.get("feedback") and call.mistake(0.5):
        spec = break_design(spec, call.rng.choice(DESIGN_MISTAKES), call.rng)
    return spec

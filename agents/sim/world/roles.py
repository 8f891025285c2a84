"""Stage 1 role simulators: coder, reviewer, tester, repairer (contexts: scaleenv._agents.synth.answers)."""

from __future__ import annotations

from typing import Any

import msgspec

from scaleenv._agents.sim.call import SimCall, register_role
from scaleenv._model.contracts import check_pre
from scaleenv._store.specs import DomainSpec, TableSpec, ToolSpec

from .codegen import applicable_bugs, generate, is_result_post
from .review import findings
from .testplan import corrupt, plan_cases

# The reviewer overlooks each real problem with this probability.
REVIEW_MISS = 0.3
# First drafts are buggy more often than other answers are wrong (scale of noise.mistakes):
# at the default rate 0.15, about 30% of first drafts carry a bug, and a repair fails
# about 45% of the time, so a few tools are rejected after every repair round.
CODER_BUG_SCALE = 2.0
REPAIR_FAIL_SCALE = 3.0


def _domain_tool(call: SimCall) -> tuple[DomainSpec, ToolSpec]:
    """The tool a call is about and its domain as the call gives it (the tables the tool touches)."""
    d = call.context["domain"]
    tool = msgspec.convert(call.context["tool"], ToolSpec)
    domain = DomainSpec(name=d.get("name", "domain"), description=d.get("description", ""),
                        tables=msgspec.convert(d.get("tables") or [], list[TableSpec]), tools=[tool])
    return domain, tool


def write_code(domain: DomainSpec, tool: ToolSpec, call: SimCall, scale: float = 1.0) -> tuple[str, str | None]:
    """Correct code, or (on a mistake) code with one bug chosen by the call's rng."""
    bug = None
    if call.mistake(scale):
        kinds = applicable_bugs(domain, tool)
        if kinds:
            bug = call.rng.choice(kinds)
    return generate(domain, tool, bug, call.rng).code, bug


def _summary(tool: ToolSpec) -> str:
    pre = sum(1 for c in tool.contract if c.when == "pre")
    post = sum(1 for c in tool.contract if c.when == "post" and not is_result_post(c))
    returned = sum(1 for c in tool.contract if is_result_post(c))
    extra = f", {returned} post-condition(s) met by the record it returns" if returned else ""
    return f"Implements {tool.name}: {pre} pre-condition guard(s) raising ToolError, {post} post-condition update(s){extra}."


@register_role("coder", answers="CodeAnswer")
def coder(call: SimCall) -> dict[str, Any]:
    domain, tool = _domain_tool(call)
    code, _ = write_code(domain, tool, call, CODER_BUG_SCALE)
    return {"code": code, "notes": _summary(tool)}


@register_role("reviewer", answers="ReviewAnswer")
def reviewer(call: SimCall) -> dict[str, Any]:
    domain, tool = _domain_tool(call)
    wrong, right = findings(domain, tool, str(call.context.get("code", "")))
    objections = [w for w in wrong if call.rng.random() >= REVIEW_MISS]
    if right and call.mistake(0.3):
        objections.append(call.rng.choice(right))
    return {"accept": not objections, "objections": objections}


@register_role("tester", answers="TestPlan")
def tester(call: SimCall) -> dict[str, Any]:
    domain, tool = _domain_tool(call)
    state = call.context.get("state") or {}
    cases = plan_cases(domain, tool, state, call.rng)
    if call.mistake(0.3):
        corrupt(cases, call.rng)
    return {"cases": cases}


@register_role("repairer", answers="RepairAnswer")
def repairer(call: SimCall) -> dict[str, Any]:
    domain, tool = _domain_tool(call)
    failures = call.context.get("failures") or []
    objections = call.context.get("objections") or []
    old = str(call.context.get("code", ""))
    addressed = [f"case {f.get('case')}" for f in failures[:5]] + [f"objection {i + 1}" for i in range(min(len(objections), 5))]
    if call.mistake(REPAIR_FAIL_SCALE):
        if call.rng.random() < 0.5 and old:
            return {"code": old, "notes": "I believe the code is right; the failing cases look wrong to me."}
        kinds = applicable_bugs(domain, tool)
        bug = call.rng.choice(kinds) if kinds else None
        return {"code": generate(domain, tool, bug, call.rng).code,
                "notes": "Rewrote the tool to address " + (", ".join(addressed) or "the review") + "."}
    return {"code": generate(domain, tool, None, call.rng).code,
            "notes": "Rewrote the tool from its contract to address " + (", ".join(addressed) or "the review") + "."}


# A debugger blames the wrong side with this probability (scale of noise.mistakes).
DEBUG_MISTAKE_SCALE = 0.5


@register_role("debugger", answers="DebugAnswer")
def debugger(call: SimCall) -> dict[str, Any]:
    """Which side of the failing tests is wrong: the sim compares the code with the code its
    contract implies; a wrong test is relabelled by the contract, or dropped."""
    domain, tool = _domain_tool(call)
    code = str(call.context.get("code", ""))
    correct = generate(domain, tool, None, call.rng).code
    tool_is_right = code.strip() == correct.strip()
    if call.mistake(DEBUG_MISTAKE_SCALE):
        tool_is_right = not tool_is_right
    failures = call.context.get("failures") or []
    if tool_is_right:
        fixes = []
        for f in failures:
            state = f.get("state") or {}
            should = "error" if check_pre(tool, f.get("args") or {}, state) else "ok"
            if should != f.get("expect"):
                fixes.append({"case": f["case"], "action": f"expect_{should}", "reason": f"the contract says {should}"})
            else:
                fixes.append({"case": f["case"], "action": "drop",
                              "reason": "it asserts changes the contract does not promise"})
        return {"verdict": "test", "reason": "the code does what its contract says; these cases expect otherwise",
                "case_fixes": fixes}
    kinds = applicable_bugs(domain, tool)
    if call.mistake(REPAIR_FAIL_SCALE) and kinds:
        return {"verdict": "tool", "reason": "rewrote the failing branch", "code": generate(domain, tool, call.rng.choice(kinds), call.rng).code}
    return {"verdict": "tool", "reason": f"{len(failures)} case(s) show the tool breaks its contract; rewritten from it",
            "code": correct}


@register_role("graph_judge", answers="GraphJudgeAnswer")
def graph_judge(call: SimCall) -> dict[str, Any]:
    """Keeps data and state edges; a shared-table edge only when the destination reads a
    column the source writes (a column its contract or its returns name)."""
    tools = {n: msgspec.convert(t, ToolSpec) for n, t in (call.context.get("tools") or {}).items()}
    out = []
    for c in call.context.get("candidates") or []:
        keep, reason = True, f"{c['kind']}: {c.get('why', '')}"[:200]
        if c["kind"] == "shared":
            src, dst = tools.get(c["src"]), tools.get(c["dst"])
            written = {f.name for f in src.returns} if src else set()
            read = {f.name for f in dst.returns} | {p.name for p in dst.params} if dst else set()
            keep = bool(written & read - {"status"}) or call.rng.random() < 0.5
            reason = "the destination reads what the source writes" if keep else "they share a table but no column"
        if call.mistake(0.2):
            keep = not keep
            reason = "judged the other way"
        out.append({"src": c["src"], "dst": c["dst"], "keep": keep, "reason": reason})
    return {"verdicts": out}

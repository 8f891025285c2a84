"""The sim's ``oracle`` role: a policy told the solution (stage 2's gate feasibility g(D)).

It sees what a real model sees: the conversation, whose system message holds the
candidate goal's program between ``<solution>`` tags, and the offered tools. On every
call it re-derives where it is from the conversation: the program's steps done are the
successful calls made in order; the next step's arguments are its literals and its
references resolved from the earlier results (:func:`scaleenv._model.program.resolve`).
A failed call is made again (up to ``RETRIES`` times); once the last step has succeeded
it says so in a message.

Noise (``call.mistake(scale)``, as the sim policy's): a reference into a list result
resolved to a neighbouring element (a wrong record among look-alikes), a literal argument
mistyped, and ending early with a claim that the work is done.
"""

from __future__ import annotations

import json
from typing import Any

from scaleenv._agents.sim.call import SimCall, register_role
from scaleenv._agents.sim.tools import parse_conversation
from scaleenv._model import program as prog

SOLUTION_OPEN, SOLUTION_CLOSE = "<solution>", "</solution>"
"""How the engine's oracle prompt marks the solution (``scaleenv._agents.rollout.oracle``)."""
WRONG_ELEMENT = 1.0
MISTYPE = 0.2
CLAIM_DONE = 0.1
RETRIES = 2


def _system(messages: list[dict[str, Any]]) -> str:
    for m in messages:
        if m.get("role") == "system" and isinstance(m.get("content"), str):
            return m["content"]
    return ""


def solution_of(text: str) -> str:
    """The program between the solution tags of a system message ("" when none)."""
    start = text.rfind(SOLUTION_OPEN)
    end = text.find(SOLUTION_CLOSE, start + 1)
    if start < 0 or end < 0:
        return ""
    return text[start + len(SOLUTION_OPEN):end].strip() + "\n"


def _say(text: str) -> dict[str, Any]:
    return {"content": text, "tool_calls": []}


def _slip(step: prog.Step, results: list[Any], call: SimCall) -> prog.Step:
    """The step with one list reference moved to a neighbouring element, when a result
    offers one (as a careless operator picks the wrong row); the step as it is otherwise."""
    for param, ref in sorted(step.refs.items()):
        idx = next((i for i, k in enumerate(ref.path) if isinstance(k, int)), None)
        value = results[ref.step] if ref.step < len(results) else None
        if idx is None or not isinstance(value, list) or len(value) < 2:
            continue
        k = ref.path[idx]
        assert isinstance(k, int)
        moved = (k + 1) % len(value)
        refs = dict(step.refs)
        refs[param] = prog.Ref(ref.step, [*ref.path[:idx], moved, *ref.path[idx + 1:]])
        return prog.Step(tool=step.tool, args=step.args, refs=refs, name=step.name)
    return step


@register_role("oracle")
def simulate_oracle(call: SimCall) -> dict[str, Any]:
    source = solution_of(_system(call.messages))
    try:
        steps = prog.parse(source, None)
    except prog.ProgramError as exc:
        return _say(f"I cannot read the solution: {exc}")
    conv = parse_conversation(call.messages)
    results: list[Any] = []
    failures = 0
    for c in conv.calls:  # the steps done: successful calls of the program's tools, in order
        if len(results) < len(steps) and c.name == steps[len(results)].tool:
            if c.ok:
                results.append(c.result)
                failures = 0
            elif c.answered:
                failures += 1
    if len(results) == len(steps):
        return _say(f"Done: {steps[-1].tool} has gone through as requested.")
    if failures > RETRIES:
        return _say(f"I could not complete {steps[len(results)].tool}: it keeps failing.")
    if results and call.mistake(CLAIM_DONE):
        return _say("All done, the request has been handled.")
    step = steps[len(results)]
    if failures == 0 and call.mistake(WRONG_ELEMENT):
        step = _slip(step, results, call)
    try:
        args = prog.resolve(step, results)
    except prog.Unresolved as exc:
        return _say(f"I cannot carry out {step.tool}: {exc}")
    if failures == 0 and args and step.args and call.mistake(MISTYPE):
        name = call.rng.choice(sorted(step.args))
        value = args[name]
        args[name] = str(value) if not isinstance(value, str) else value.upper()
    turn = sum(1 for m in call.messages if m.get("role") == "assistant")
    return {"content": "", "tool_calls": [{"id": f"call_{turn}_0", "name": step.tool,
                                           "arguments": json.dumps(args, sort_keys=True, default=str)}]}

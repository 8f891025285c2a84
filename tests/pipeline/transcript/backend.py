"""A scripted model backend for tests: answers each request from a hand-written transcript.

A transcript maps a request's *key* to the answer a model gives. The key is the role and
what the request is about, read from the request's structured context, never the request's
digest, so the pipeline's prompts and context layout may change without breaking it:

=================  =====================================  ======================
role               key                                    round from
=================  =====================================  ======================
architect          ``outline`` or ``group:<group name>``  ``context["round"]``
database           ``tables``                             ``context["round"]``
coder, tester      ``<tool name>``                        0
reviewer,          ``<tool name>``                        ``context["round"]``
debugger, repairer
graph_judge        ``edges``                              the judge's call count
chain_writer       ``<goal tool name>``                   ``context["round"]``
gate               ``goal<number of goals so far>``       0
task_writer        ``requests``                           0
=================  =====================================  ======================

An answer is a JSON-able value, or a callable taking the request's context and returning
one (a tester reading the test database it was shown). A graph judge's answer maps
``"src->dst"`` to ``[keep, reason]``; it is given for exactly the candidates the request
holds. A request the transcript does not answer raises :class:`TranscriptGap` naming the
role and key; :attr:`TranscriptBackend.asked` lists every key answered, in order, so a
test can check that each answer was used.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs
import msgspec
import trio

from scaleenv._agents.llm.port import Completion, LlmRequest

Key = tuple[str, str, int]
"""(role, subject, round)."""


class TranscriptGap(LookupError):
    """The transcript holds no answer for a request (names the role and the key)."""


def request_key(request: LlmRequest, judged: int = 0) -> Key:
    """The transcript key of ``request`` (see the module doc)."""
    role, ctx = request.role, request.context
    if role == "architect":
        subject = f"group:{ctx['group']}" if "group" in ctx else "outline"
        return role, subject, int(ctx.get("round", 0))
    if role == "database":
        return role, "tables", int(ctx.get("round", 0))
    if role in ("coder", "tester"):
        return role, str(ctx["tool"]["name"]), 0
    if role in ("reviewer", "debugger", "repairer"):
        return role, str(ctx["tool"]["name"]), int(ctx.get("round", 0))
    if role == "graph_judge":
        return role, "edges", judged
    if role == "chain_writer":
        return role, str(ctx["goal_tool"]["name"]), int(ctx.get("round", 0))
    if role == "gate":
        return role, f"goal{ctx['goals']}", 0
    if role == "task_writer":
        return role, "requests", 0
    raise TranscriptGap(f"transcript has no answers for role {role!r} (request keys are defined for the "
                        "synthesizer roles only)")


@attrs.define
class TranscriptBackend:
    """A :class:`~scaleenv._agents.llm.port.Backend` that plays a hand-written transcript."""

    answers: Mapping[Key, Any]
    name: str = "transcript"
    model: str = "hand-written"
    asked: list[Key] = attrs.field(factory=list)
    _judged: int = 0

    async def complete(self, request: LlmRequest, json_schema: dict[str, Any], schema_name: str) -> Completion:
        await trio.lowlevel.checkpoint()  # as any model call would: other tasks run meanwhile
        key = request_key(request, self._judged)
        if key not in self.answers:
            known = sorted(k for k in self.answers if k[0] == key[0])
            raise TranscriptGap(f"transcript has no answer for role {key[0]!r}, key {key[1]!r}, round {key[2]} "
                                f"(its {key[0]} answers: {known[:12]})")
        answer = self.answers[key]
        if isinstance(answer, Callable):  # type: ignore[arg-type]
            answer = answer(request.context)
        if key[0] == "graph_judge":
            self._judged += 1
            answer = _verdicts(answer, request.context, key)
        self.asked.append(key)
        text = msgspec.json.encode(answer).decode()
        prompt = sum(len(str(m.get("content", ""))) for m in request.messages)
        return Completion(text=text, prompt_tokens=prompt // 4, completion_tokens=len(text) // 4)

    async def aclose(self) -> None:
        return None


def _verdicts(answer: Mapping[str, list[Any]], context: Mapping[str, Any], key: Key) -> dict[str, Any]:
    pairs = list(dict.fromkeys(f"{c['src']}->{c['dst']}" for c in context["candidates"]))
    missing = [p for p in pairs if p not in answer]
    if missing:
        raise TranscriptGap(f"transcript has no verdict for role 'graph_judge', key {key[1]!r}, round {key[2]}, "
                            f"candidates {missing}")
    verdicts = []
    for pair in pairs:
        src, _, dst = pair.partition("->")
        keep, reason = answer[pair]
        verdicts.append({"src": src, "dst": dst, "keep": keep, "reason": reason})
    return {"verdicts": verdicts}

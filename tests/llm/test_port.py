"""The port's retry rule: malformed answers are retried with the error fed back; every attempt is an event."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from scaleenv._agents.llm.port import REJECTED_PREFIX, Completion, Llm, LlmExhaustedError, LlmRequest, render_messages
from scaleenv._agents.sim import NoiseModel, SimBackend
from scaleenv._store.events.llm import LlmCalled, LlmExhausted

from .conftest import events_of, stream
from .structs import Pair


@attrs.define
class ScriptedBackend:
    """A backend that answers from a script, and keeps the requests it got."""

    script: list[str]
    name: str = "scripted"
    model: str = "script-1"
    requests: list[LlmRequest] = attrs.field(factory=list)

    async def complete(self, request: LlmRequest, json_schema: dict[str, Any], schema_name: str) -> Completion:
        self.requests.append(request)
        return Completion(text=self.script[len(self.requests) - 1], prompt_tokens=3, completion_tokens=2)

    async def aclose(self) -> None:
        return None


def _request(role: str = "test/counter") -> LlmRequest:
    return LlmRequest(role=role, messages=render_messages("Count things.", {"k": 1}, "Count."), context={"k": 1})


async def test_malformed_is_retried_with_error_fed_back(writer, log) -> None:
    backend = ScriptedBackend(['{"label": "a"', '{"label": "a", "count": "x"}', '{"label": "a", "count": 2}'])
    llm = Llm(backend, run_seed=7)
    got = await llm.generate(stream(writer), _request(), Pair)
    assert got.value == Pair("a", 2) and got.attempts == 3
    second, third = backend.requests[1].messages, backend.requests[2].messages
    assert second[-2] == {"role": "assistant", "content": '{"label": "a"'}
    assert second[-1]["content"].startswith(f"{REJECTED_PREFIX} not valid JSON")
    assert third[-1]["content"].startswith(f"{REJECTED_PREFIX} schema violation")
    # each attempt has its own seed (derived from the stream position)
    assert len({r.seed for r in backend.requests}) == 3
    await writer.aclose()
    calls = events_of(log)
    assert [type(e) for e in calls] == [LlmCalled] * 3
    assert [c.attempt for c in calls] == [0, 1, 2]
    assert [c.error is None for c in calls] == [False, False, True]
    assert calls[2].parsed == {"label": "a", "count": 2}
    assert calls[0].raw == '{"label": "a"' and calls[0].prompt_tokens == 3


async def test_exhaustion_raises_and_emits_llm_exhausted(writer, log) -> None:
    # a server that ignores the constraint: every answer is malformed
    unconstrained = SimBackend(noise=NoiseModel(malformed=1.0, schema_violation=0.0, mistakes=0.0), constrained=False)
    llm = Llm(unconstrained, run_seed=1, max_attempts=4)
    with pytest.raises(LlmExhaustedError) as info:
        await llm.generate(stream(writer), _request(), Pair)
    assert info.value.attempts == 4 and info.value.role == "test/counter"
    assert info.value.ref.n == 4
    await writer.aclose()
    events = events_of(log)
    assert [type(e) for e in events] == [LlmCalled] * 4 + [LlmExhausted]
    assert all(e.error for e in events[:4])
    assert events[4].last_error == events[3].error


async def test_cause_is_recorded(writer, log) -> None:
    llm = Llm(ScriptedBackend(['{"label": "a", "count": 1}'] * 2), run_seed=0)
    s = stream(writer)
    first = await llm.generate(s, _request(), Pair)
    await llm.generate(s, _request(), Pair, cause=first.ref)
    await writer.aclose()
    records = list(log.read())
    assert records[1].cause == first.ref

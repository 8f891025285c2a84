"""The recorded backend: serves an earlier log's outputs; reports divergence with the differing field."""

from __future__ import annotations

import msgspec
import pytest

from scaleenv._agents.llm.errors import RecordedDivergence
from scaleenv._agents.llm.port import Llm, LlmRequest, render_messages, request_digest, schema_for
from scaleenv._agents.llm.recorded import RecordedBackend
from scaleenv._agents.sim import SimBackend
from scaleenv._store import Log, Stream
from scaleenv._store.events.llm import LlmCalled

from .conftest import llm_calls
from .structs import Pair, Person, Plan


def _request(i: int, role: str = "test/writer") -> LlmRequest:
    ctx = {"item": i, "text": "a fairly long context string " * 5}
    return LlmRequest(role=role, messages=render_messages("Write.", ctx, f"Write item {i}."), context=ctx)


async def _record(path, run_seed: int = 4) -> list[tuple]:
    llm = Llm(SimBackend(), run_seed=run_seed)
    with Log.open(path, sync=False) as log:
        async with log.writer() as w:
            for i in range(10):
                for t in (Person, Plan):
                    try:
                        await llm.generate(Stream(w, f"agent/{i}"), _request(i), t)
                    except Exception:  # noqa: BLE001 - exhaustion is recorded too
                        pass
        return [(c.request_digest, c.raw, c.attempt) for c in llm_calls(log)]


async def test_rerun_serves_the_recorded_outputs(tmp_path) -> None:
    first = await _record(tmp_path / "first")
    backend = RecordedBackend.from_log(tmp_path / "first")
    assert backend.model == "scaleenv-sim-1" and len(backend.calls) == len(first)
    llm = Llm(backend, run_seed=4)
    with Log.open(tmp_path / "second", sync=False) as log:
        async with log.writer() as w:
            for i in range(10):
                for t in (Person, Plan):
                    try:
                        await llm.generate(Stream(w, f"agent/{i}"), _request(i), t)
                    except Exception:  # noqa: BLE001
                        pass
        second = [(c.request_digest, c.raw, c.attempt) for c in llm_calls(log)]
        # A replayed call names who really produced the text, so a re-run's events equal the original's.
        assert {c.backend for c in llm_calls(log)} == {"sim"}
    assert second == first


def _call(request: LlmRequest, schema: dict, name: str, raw: str) -> LlmCalled:
    return LlmCalled(role=request.role, backend="sim", model="m", request_digest=request_digest(request, schema),
                     messages=request.messages, schema_name=name, json_schema=schema, seed=request.seed,
                     attempt=0, raw=raw)


async def test_shared_digests_are_served_in_recorded_order() -> None:
    schema, name = schema_for(Pair)
    req = _request(1)
    backend = RecordedBackend([_call(req, schema, name, "first"), _call(_request(2), schema, name, "other"),
                               _call(req, schema, name, "second")])
    assert (await backend.complete(req, schema, name)).text == "first"
    assert (await backend.complete(req, schema, name)).text == "second"
    with pytest.raises(RecordedDivergence, match="call count exceeded"):
        await backend.complete(req, schema, name)


async def test_divergence_names_the_first_differing_field() -> None:
    schema, name = schema_for(Pair)
    recorded = [_call(_request(i), schema, name, f"r{i}") for i in range(3)]
    backend = RecordedBackend(recorded)
    changed = _request(1)
    msgs = [dict(m) for m in changed.messages]
    content = msgs[1]["content"]
    at = content.index("fairly") + 2
    msgs[1]["content"] = content[:at] + "X" + content[at + 1:]
    with pytest.raises(RecordedDivergence) as info:
        await backend.complete(LlmRequest(role="test/writer", messages=msgs, context={}), schema, name)
    assert info.value.field == "messages[1].content"
    assert f"differs at char {at}" in str(info.value) and "expected" in str(info.value)

    with pytest.raises(RecordedDivergence) as info:
        await backend.complete(LlmRequest(role="test/writer", messages=_request(2).messages, context={}, seed=99), schema, name)
    assert info.value.field == "seed" and "expected 0 got 99" in str(info.value)

    other_schema, other_name = schema_for(Plan)
    with pytest.raises(RecordedDivergence) as info:
        await backend.complete(_request(0), other_schema, other_name)
    assert info.value.field == "schema" and "'Pair'" in str(info.value)

    with pytest.raises(RecordedDivergence) as info:
        await backend.complete(LlmRequest(role="test/writer", messages=_request(0).messages, context={}, temperature=0.1), schema, name)
    assert info.value.field == "temperature/max_tokens/tools"

    with pytest.raises(RecordedDivergence) as info:
        await backend.complete(_request(0, role="test/reviewer"), schema, name)
    assert info.value.field == "role" and "test/writer" in str(info.value)


async def test_divergence_names_other_tools_where_the_call_recorded_its_own() -> None:
    schema, name = schema_for(Pair)
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]
    offered = LlmRequest(role="policy", messages=_request(0).messages, context={}, tools=tuple(tools))
    call = msgspec.structs.replace(_call(offered, schema, name, "r0"), tools=tools)  # format 3: tools recorded
    backend = RecordedBackend([call])
    assert (await backend.complete(offered, schema, name)).text == "r0"
    with pytest.raises(RecordedDivergence) as info:
        await backend.complete(msgspec.structs.replace(offered, tools=(*tools, *tools)), schema, name)
    assert info.value.field == "tools" and "expected 1 tools, got 2" in str(info.value)
    # a call of an older log recorded no tools: only the digest tells
    old = RecordedBackend([_call(offered, schema, name, "r0")])
    with pytest.raises(RecordedDivergence) as info:
        await old.complete(msgspec.structs.replace(offered, tools=(*tools, *tools)), schema, name)
    assert info.value.field == "temperature/max_tokens/tools"

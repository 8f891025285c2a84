"""The ``openai`` flavor sends schemas OpenAI's strict mode accepts, and reads answers in that shape.

Every role's request is built by the real backend (``OpenAIBackend.body``, the bytes that
go on the wire); the schema in its ``response_format`` must keep strict mode's rules. An
answer a strict server gives (``null`` for every optional field left out, maps as pairs,
free-form values as JSON text) arrives from a server on a loopback socket and must become
the answer struct the type's own shape would give; the log keeps the answer as it came,
and replaying the log validates it the same way.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any

import jsonschema
import msgspec
import openai
import pytest
import trio

from scaleenv._agents.llm.openai_backend import OpenAIBackend
from scaleenv._agents.llm.port import (Llm, LlmRequest, render_messages, schema_for, strict_schema_for,
                                      validation_error)
from scaleenv._agents.llm.recorded import RecordedBackend
from scaleenv._agents.llm.strict import STRICT_SHAPE, strict_problems
from scaleenv._agents.rollout.answers import UserTurn
from scaleenv._agents.sim import SimBackend
from scaleenv._agents.synth import answers as synth  # (not its TestPlan by name: pytest would collect it)
from scaleenv._serve.sim_http import SimServer, serve_sim, strict_answer
from scaleenv._store import Log, Stream

from .conftest import llm_calls
from .scripted_server import ScriptedServer, completion, reply
from .structs import Plan
from .test_request_bodies import OUTPUT_TYPES, ROLES, TOOLS, _request


@pytest.mark.parametrize("output", sorted(OUTPUT_TYPES))
def test_every_roles_openai_request_keeps_strict_modes_rules(output: str) -> None:
    role = ROLES[output]
    schema, _ = schema_for(OUTPUT_TYPES[output])
    openai_backend = OpenAIBackend(base_url="http://127.0.0.1:9/v1", model="m", flavor="openai")
    vllm_backend = OpenAIBackend(base_url="http://127.0.0.1:9/v1", model="m", flavor="vllm")
    if role == "policy":  # offered tools, no response format: nothing to constrain
        req = LlmRequest(role="policy", messages=[{"role": "user", "content": "hi"}], context={}, tools=TOOLS)
        body = json.loads(openai_backend.body(req, schema))
        assert "response_format" not in body and body["tools"] == list(TOOLS)
        return
    req = _request(role)
    fmt = json.loads(openai_backend.body(req, schema))["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    sent = fmt["json_schema"]["schema"]
    assert strict_problems(sent) == [], output
    jsonschema.Draft202012Validator.check_schema(sent)
    # vLLM takes full JSON Schema: it gets the type's own schema
    assert json.loads(vllm_backend.body(req, schema))["structured_outputs"]["json"] == json.loads(json.dumps(schema))


def test_the_roles_own_schemas_would_be_refused() -> None:
    """msgspec's schemas break strict mode's rules for most roles (what the rewrite is for)."""
    broken = [name for name, t in OUTPUT_TYPES.items() if strict_problems(schema_for(t)[0])]
    assert {"CodeAnswer", "TestPlan", "UserTurn"} <= set(broken)


STRICT_ANSWERS: list[tuple[type, dict[str, Any], Any]] = [
    (UserTurn, {"message": "Where is my order?", "done": None, "gave_up": True, "reason": None},
     UserTurn(message="Where is my order?", gave_up=True)),
    (synth.TestPlan, {"cases": [
        {"name": "finds it", "args": [{"name": "order_id", "value": '"o-1"'}, {"name": "limit", "value": "2"}],
         "expect": "ok", "expect_changes": None, "note": None},
        {"name": "cancels", "args": [], "expect": "ok", "note": "x", "expect_changes": [
            {"table": "orders", "key": "o-1", "field": "status", "value": '"cancelled"', "deleted": None}]}]},
     synth.TestPlan(cases=[synth.PlannedCase(name="finds it", args={"order_id": "o-1", "limit": 2}, expect="ok"),
                           synth.PlannedCase(name="cancels", args={}, expect="ok", note="x", expect_changes=[
                               synth.ExpectedChange(table="orders", key="o-1", field="status", value="cancelled")])])),
    (Plan, {"steps": ["a"], "done": True, "notes": [{"name": "k", "value": 2}], "priority": None},
     Plan(steps=["a"], done=True, notes={"k": 2})),
]


@pytest.mark.parametrize(("output_type", "answer", "expected"), STRICT_ANSWERS, ids=lambda v: getattr(v, "__name__", ""))
async def test_a_strict_shaped_answer_becomes_the_answer_struct(nursery: trio.Nursery, tmp_path: Path,
                                                                  output_type: type, answer: dict[str, Any],
                                                                  expected: Any) -> None:
    jsonschema.validate(answer, strict_schema_for(output_type))  # what a strict server may say
    content = json.dumps(answer)
    server = await ScriptedServer([reply(body=completion(content))]).start(nursery)
    ctx = {"item": 1}
    request = LlmRequest(role="test/strict", messages=render_messages("Answer.", ctx, "Now."), context=ctx)
    llm = Llm(OpenAIBackend(base_url=server.url, model="m"), run_seed=5)
    with Log.open(tmp_path / "wire", sync=False) as log:
        async with log.writer() as w:
            got = await llm.generate(Stream(w, "agent/0"), request, output_type)
        (call,) = llm_calls(log)
    await llm.aclose()
    assert got.value == expected and got.attempts == 1
    # the log holds the answer as it came over the wire, and the shape it was asked in
    assert call.raw == content and call.answer_shape == STRICT_SHAPE and call.error is None
    assert call.parsed == msgspec.to_builtins(expected)
    # read in the type's own shape the same text is refused: the shape is what makes it valid
    assert validation_error(content, output_type)[1] is not None
    # replaying the log reads it in the same shape
    replay = Llm(RecordedBackend.from_log(tmp_path / "wire"), run_seed=5)
    with Log.open(tmp_path / "again", sync=False) as log:
        async with log.writer() as w:
            again = await replay.generate(Stream(w, "agent/0"), request, output_type)
        (replayed,) = llm_calls(log)
    assert again.value == expected and replayed.raw == content and replayed.answer_shape == STRICT_SHAPE
    assert server.received[0].json["response_format"]["json_schema"]["schema"] == json.loads(
        json.dumps(strict_schema_for(output_type)))


async def test_sim_server_answers_a_marked_schema_in_its_shape_and_others_as_before(nursery: trio.Nursery) -> None:
    """Through the official SDK (not scaleenv's client): the strict form of a schema gets the
    strict shape; the schema itself, strict or not, gets the sim's answer as it is."""
    port = await nursery.start(partial(serve_sim, "127.0.0.1", 0, server=SimServer()))
    client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="EMPTY", max_retries=0)
    schema, name = schema_for(Plan)
    messages = render_messages("Plan.", {"a": 1}, "Now.")
    said = SimBackend().answer(messages, schema, name, 4, constrained=True)[0]
    try:
        for sent, expected in ((strict_schema_for(Plan), strict_answer(said, strict_schema_for(Plan))), (schema, said)):
            fmt = {"type": "json_schema", "json_schema": {"name": name, "schema": sent, "strict": True}}
            reply = await client.chat.completions.create(model="m", messages=messages, seed=4, response_format=fmt,
                                                         extra_headers={"x-scaleenv-role": "test/plan"})
            assert reply.choices[0].message.content == expected
    finally:
        await client.close()
    assert strict_answer("Sure! {oops", strict_schema_for(Plan)) == "Sure! {oops"  # not JSON: left as it is

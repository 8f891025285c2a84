"""The tool-calls path: the policy's output type through OpenAI tool_calls and back."""

from __future__ import annotations

import json

from scaleenv._agents.llm.openai_backend import OpenAIBackend
from scaleenv._agents.llm.port import Llm, LlmRequest, render_messages, schema_for
from scaleenv._agents.sim import NoiseModel, SimBackend, SimCall, register_role
from scaleenv._agents.llm.tool_calls import message_to_text, text_to_message
from scaleenv._store import Stream

from .conftest import llm_calls
from .structs import PolicyTurn

TOOLS = [
    {"type": "function", "function": {"name": "find_order", "description": "Find an order.",
                                      "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}}}},
    {"type": "function", "function": {"name": "cancel_order", "description": "Cancel an order.",
                                      "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}}}},
]


@register_role("test/policy")
def _policy(call: SimCall) -> dict:
    """A tiny policy: call a tool most turns, otherwise answer in words."""
    if call.tools and call.rng.random() < 0.7:
        n = call.rng.randint(1, 2)
        names = [t["function"]["name"] for t in call.tools]
        return {"content": "", "tool_calls": [
            {"id": f"call_{i}", "name": call.rng.choice(names),
             "arguments": json.dumps({"order_id": f"o{call.rng.randint(1, 99)}"})} for i in range(n)]}
    return {"content": f"Done with {call.context.get('turn')}.", "tool_calls": []}


def _request(turn: int, seed: int) -> LlmRequest:
    ctx = {"turn": turn}
    return LlmRequest(role="test/policy", messages=render_messages("Help the user.", ctx, "Next step."),
                      context=ctx, tools=TOOLS, seed=seed)


async def test_tool_calls_over_http_equal_in_process(sim_url: str) -> None:
    backend = OpenAIBackend(base_url=sim_url, model="m")
    sim = SimBackend(noise=NoiseModel.off())
    schema, name = schema_for(PolicyTurn)
    kinds = set()
    for i in range(40):
        req = _request(i, seed=500 + i)
        got = await backend.complete(req, schema, name)
        text = sim.answer(req.messages, schema, name, req.seed, req.tools, role=req.role)[0]
        assert got.text == text
        kinds.add(bool(json.loads(text)["tool_calls"]))
    await backend.aclose()
    assert kinds == {True, False}  # both a tool-call turn and a plain answer went over the wire


async def test_policy_turn_through_the_port(sim_url: str, log, writer) -> None:
    llm = Llm(OpenAIBackend(base_url=sim_url, model="m"), run_seed=3)
    turns = [await llm.generate(Stream(writer, f"episode/{i}"), _request(i, 0), PolicyTurn) for i in range(10)]
    await llm.aclose()
    assert any(t.value.tool_calls for t in turns)
    for t in turns:
        for c in t.value.tool_calls:
            assert c.name in {"find_order", "cancel_order"} and json.loads(c.arguments)["order_id"].startswith("o")
    assert all(c.backend == "openai" for c in llm_calls(log))


def test_message_to_text_shapes_calls_after_the_schema() -> None:
    calls = [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}}]
    schema, _ = schema_for(PolicyTurn)
    assert json.loads(message_to_text(None, calls, schema)) == {
        "content": "", "tool_calls": [{"id": "c1", "name": "f", "arguments": '{"x": 1}'}]}
    object_args = {"type": "object", "properties": {"tool_calls": {"type": "array", "items": {
        "type": "object", "properties": {"name": {"type": "string"}, "arguments": {"type": "object"}}}}}}
    assert json.loads(message_to_text("hi", calls, object_args)) == {"tool_calls": [{"name": "f", "arguments": {"x": 1}}]}
    assert json.loads(message_to_text("just words", None, schema)) == {"content": "just words", "tool_calls": []}


def test_text_to_message_keeps_malformed_answers_verbatim() -> None:
    assert text_to_message('{"content": "x", "tool_calls": [') == ('{"content": "x", "tool_calls": [', None)
    assert text_to_message('{"content": 3, "tool_calls": []}') == ('{"content": 3, "tool_calls": []}', None)
    content, calls = text_to_message('{"content": "", "tool_calls": [{"id": "a", "name": "f", "arguments": {"k": 1}}]}')
    assert content == "" and calls == [{"id": "a", "type": "function", "function": {"name": "f", "arguments": '{"k": 1}'}}]

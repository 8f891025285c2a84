"""What scaleenv's client sends is what outlines + the openai SDK send, request for request.

For every output type the roles use, the same request goes through outlines (its
``from_openai``/``from_vllm`` models over the official ``AsyncOpenAI`` client: the path
the backend used before) and through ``OpenAIBackend``, to a server on a loopback socket
that records what arrives; the two JSON bodies must be equal. outlines is given the schema
each flavor sends: for ``openai`` the output type's schema in OpenAI's strict-mode subset
(``strict_schema``; a real OpenAI endpoint refuses msgspec's own), for ``vllm`` the schema
itself. Requests with tools
(the policy) are compared with the SDK's own ``chat.completions.create``, which is what
the old backend called for them (outlines has no tool calls).
"""

from __future__ import annotations

from typing import Any

import msgspec
import outlines
import openai
import pytest
import trio
from outlines.inputs import Chat
from outlines.types import JsonSchema

from scaleenv._agents.llm.openai_backend import OpenAIBackend
from scaleenv._agents.llm.port import LlmRequest, REJECTED_PREFIX, render_messages, schema_for
from scaleenv._agents.llm.strict import strict_problems, strict_schema
from scaleenv._agents.llm.user_chat import user_request
from scaleenv._agents.rollout import answers as rollout_answers
from scaleenv._agents.sim.call import answer_types
from scaleenv._agents.synth import answers as synth
from scaleenv._store import specs

from .scripted_server import ScriptedServer

MODULES = (synth, specs, rollout_answers)
ROLES = answer_types()
"""Every output type a registered role answers with (schema name -> role)."""
OUTPUT_TYPES: dict[str, Any] = {name: next((getattr(m, name) for m in MODULES if hasattr(m, name)), None)
                                for name in ROLES}
TOOLS = ({"type": "function", "function": {
    "name": "get_order", "description": "Find an order. Returns: order_id, status.",
    "parameters": {"type": "object", "properties": {"order_id": {"type": "string", "description": "the id"}},
                   "required": ["order_id"], "additionalProperties": False}}},)


def test_every_output_type_a_role_answers_with_is_compared() -> None:
    missing = sorted(name for name, t in OUTPUT_TYPES.items() if t is None)
    assert not missing, f"output types of roles not found in {[m.__name__ for m in MODULES]}: {missing}"
    assert {"PolicyTurn", "UserTurn", "CodeAnswer", "TestPlan"} <= set(OUTPUT_TYPES)


def _request(role: str) -> LlmRequest:
    ctx = {"domain": "retail", "note": "é ✓ \u2028", "round": 1}
    if role == "user":
        req = user_request("Play a customer.", ctx, [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello?"}])
    else:
        req = LlmRequest(role=role, messages=render_messages(f"You are the {role}.", ctx, "Answer."), context=ctx)
    # as the port sends a retry: the rejected answer and the rejection follow
    messages = [*req.messages, {"role": "assistant", "content": '{"oops": '},
                {"role": "user", "content": f"{REJECTED_PREFIX} not valid JSON\nAnswer again."}]
    return msgspec.structs.replace(req, messages=messages, seed=123456789012345678, temperature=0.3, max_tokens=777)


POLICY_MESSAGES = [
    {"role": "system", "content": "You are the support agent."},
    {"role": "user", "content": "Where is my order o-1?"},
    {"role": "assistant", "content": "", "tool_calls": [
        {"id": "call_0", "type": "function", "function": {"name": "get_order", "arguments": '{"order_id": "o-1"}'}}]},
    {"role": "tool", "tool_call_id": "call_0", "content": '{"status": "shipped"}'},
]


async def _sent(server: ScriptedServer) -> dict[str, Any]:
    got = server.received[-1]
    assert got.header("content-type") == "application/json" and got.header("authorization") == "Bearer sk-x"
    return got.json


@pytest.mark.parametrize("flavor", ["openai", "vllm"])
@pytest.mark.parametrize("output", sorted(OUTPUT_TYPES))
async def test_same_body_as_outlines_and_the_sdk(nursery: trio.Nursery, flavor: str, output: str) -> None:
    role = ROLES[output]
    server = await ScriptedServer().start(nursery)
    schema, name = schema_for(OUTPUT_TYPES[output])
    sdk = openai.AsyncOpenAI(base_url=server.url, api_key="sk-x", max_retries=0)
    ours = OpenAIBackend(base_url=server.url, model="qwen-x", api_key="sk-x", flavor=flavor)
    try:
        if role == "policy":
            req = LlmRequest(role="policy", messages=POLICY_MESSAGES, context={}, tools=TOOLS, seed=77,
                             temperature=0.7, max_tokens=4096)
            await sdk.chat.completions.create(model="qwen-x", messages=req.messages, tools=list(req.tools),
                                              seed=req.seed, temperature=req.temperature, max_tokens=req.max_tokens)
        else:
            req = _request(role)
            model = (outlines.from_vllm if flavor == "vllm" else outlines.from_openai)(sdk, "qwen-x")
            given = schema if flavor == "vllm" else strict_schema(schema)
            await model(Chat(list(req.messages)), JsonSchema(given), seed=req.seed,
                        temperature=req.temperature, max_tokens=req.max_tokens)
        theirs = await _sent(server)
        await ours.complete(req, schema, name)
        mine = await _sent(server)
    finally:
        await sdk.close()
        await ours.aclose()
    assert mine == theirs
    key = "tools" if role == "policy" else ("structured_outputs" if flavor == "vllm" else "response_format")
    assert key in mine  # the comparison is not of two empty constraints
    if key == "response_format":  # what a real OpenAI endpoint takes in strict mode
        sent = mine["response_format"]["json_schema"]
        assert sent["strict"] is True and strict_problems(sent["schema"]) == []

"""``scaleenv sim-server`` as the openai SDK sees it: tools, streaming (server-sent events) and ``n``."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from scaleenv._agents.llm.port import LlmRequest, schema_for, shape_for
from scaleenv._agents.llm.tool_calls import message_to_text
from scaleenv._agents.rollout.answers import PolicyTurn, UserTurn
from scaleenv._agents.sim import SimBackend

TOOLS = [{"type": "function", "function": {
    "name": "get_order", "description": "Find an order by its id. Returns: order_id, status.",
    "parameters": {"type": "object", "properties": {"order_id": {"type": "string", "description": "the order id"}},
                   "required": ["order_id"], "additionalProperties": False}}}]
POLICY_CHAT = [{"role": "system", "content": "You are the support agent of a shop."},
               {"role": "user", "content": "Where is my order order_1a2b?"}]
USER_CHAT = [{"role": "system", "content": f"You play a customer.\n\n{shape_for(UserTurn)}"},  # as the port sends it
             {"role": "user", "content": 'Open.\n\n<context>\n{"instruction": "Ask where order o-1 is.", "max_turns": 4, '
                                         '"persona": "terse", "user_facts": {"order_id": "o-1"}}\n</context>'}]


@pytest.fixture
async def client(sim_url: str) -> Any:
    c = openai.AsyncOpenAI(base_url=sim_url, api_key="EMPTY", max_retries=0)
    yield c
    await c.close()


def _strict(output: type) -> dict[str, Any]:
    schema, name = schema_for(output)
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}


async def test_tools_get_the_policy_without_any_role_hint(client: Any) -> None:
    kinds = set()
    for seed in range(12):
        reply = await client.chat.completions.create(model="m", messages=POLICY_CHAT, tools=TOOLS, seed=seed)
        message = reply.choices[0].message
        calls = [c.model_dump() for c in message.tool_calls or []]
        kinds.add(bool(calls))
        want = await SimBackend().complete(_policy_request(seed), *schema_for(PolicyTurn))
        assert message_to_text(message.content, calls, schema_for(PolicyTurn)[0]) == want.text
        assert reply.choices[0].finish_reason == ("tool_calls" if calls else "stop")
    assert True in kinds  # the sim policy looked the order up at least once


def _policy_request(seed: int) -> LlmRequest:
    return LlmRequest(role="policy", messages=POLICY_CHAT, context={}, tools=TOOLS, seed=seed)


# The SDK stops reading its event iterator at [DONE] (it drains the response, not the
# iterator) and leaves its async generators to the garbage collector, which trio reports:
# that is the SDK's, with any server, and only those generators are let through here.
SDK_GENERATORS = ("ignore:Exception ignored in. <async_generator object "
                  "(AsyncStream._iter_events|PoolByteStream.__aiter__|Response.aiter_bytes|SSEDecoder.aiter_bytes)"
                  ":pytest.PytestUnraisableExceptionWarning")


@pytest.mark.filterwarnings(SDK_GENERATORS)
@pytest.mark.parametrize("with_tools", [False, True])
async def test_stream_adds_up_to_the_answer(client: Any, with_tools: bool) -> None:
    kwargs: dict[str, Any] = {"tools": TOOLS} if with_tools else {"response_format": _strict(UserTurn)}
    messages = POLICY_CHAT if with_tools else USER_CHAT
    for seed in range(6):
        whole = await client.chat.completions.create(model="m", messages=messages, seed=seed, **kwargs)
        stream = await client.chat.completions.create(model="m", messages=messages, seed=seed, stream=True,
                                                      stream_options={"include_usage": True}, **kwargs)
        async with stream:
            chunks = [c async for c in stream]
        assert len(chunks) > 3 and chunks[-1].usage is not None and chunks[-1].usage == whole.usage
        content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        calls: dict[int, list[str]] = {}
        for c in chunks:
            for t in (c.choices[0].delta.tool_calls or []) if c.choices else []:
                entry = calls.setdefault(t.index, [t.id or "", "", ""])
                entry[1] += (t.function.name or "") if t.function else ""
                entry[2] += (t.function.arguments or "") if t.function else ""
        message = whole.choices[0].message
        assert content == (message.content or "")
        assert [tuple(v) for _, v in sorted(calls.items())] == [
            (t.id, t.function.name, t.function.arguments) for t in message.tool_calls or []]
        finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        assert finish == [whole.choices[0].finish_reason]


async def test_n_choices(client: Any) -> None:
    one = await client.chat.completions.create(model="m", messages=USER_CHAT, seed=5, response_format=_strict(UserTurn))
    three = await client.chat.completions.create(model="m", messages=USER_CHAT, seed=5, n=3,
                                                 response_format=_strict(UserTurn))
    assert [c.index for c in three.choices] == [0, 1, 2]
    assert three.choices[0].message.content == one.choices[0].message.content
    assert three.usage.completion_tokens > one.usage.completion_tokens
    with pytest.raises(openai.BadRequestError, match="n must be an integer from 1 to 16"):
        await client.chat.completions.create(model="m", messages=USER_CHAT, n=0)
